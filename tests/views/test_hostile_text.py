"""Every string from files and users is shown as text on every page, never as Markdown.

The models root of ``hostile_scope`` names its scope, models, feature, classes, actor and
reasons with Markdown (images, links, KaTeX, bold, HTML, colour directives, bare URLs and
e-mail addresses GFM links on its own). Each page is walked element by element: every string
Streamlit reads as Markdown (bodies, labels, options of button groups, metric values, help,
progress text) may hold the data only escaped, and every Plotly chart only with its HTML
escaped. An element type the walk does not know fails the test, so a new kind of element is
classified before it can show data unchecked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_scope import (
    ACTOR,
    BROKEN_SCOPE,
    CANARY,
    CHAMPION,
    DESCRIPTION,
    EMPTY_SCOPE,
    FEATURE,
    FOLDER,
    REASON,
    SCOPE,
    build_hostile_root,
    markdown_problems,
)
from streamlit.testing.v1 import AppTest

from promotion.store import open_store

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGES = ["views/leaderboard.py", "views/explorer.py", "views/comparison.py",
         "views/lifecycle.py", "views/monitoring.py"]

_LABELLED = ("label", "help")
#: Element type -> the fields Streamlit renders as Markdown.
MARKDOWN_FIELDS: dict[str, tuple[str, ...]] = {
    "markdown": ("body", "help"), "caption": ("body", "help"), "divider": ("body",),
    "title": ("body", "help"), "header": ("body", "help"), "subheader": ("body", "help"),
    "success": ("body",), "info": ("body",), "warning": ("body",), "error": ("body",),
    "toast": ("body",), "metric": ("label", "body", "delta", "help"), "progress": ("text",),
    "expander": ("label",), "status": ("label",), "tab": ("label",), "text": ("help",),
    **{kind: _LABELLED for kind in (
        "button", "download_button", "checkbox", "toggle", "text_input", "text_area",
        "number_input", "slider", "selectbox", "multiselect", "button_group")},
}
#: Element types that show their content as text (or hold none): nothing to check.
TEXT_ONLY = {"root", "main", "sidebar", "event", "flex_container", "column", "vertical",
             "horizontal", "container", "grid", "code", "json", "dataframe",
             "arrow_data_frame", "empty", "space"}
_HTML_TOKENS = ("<b>html", "<b>x</b>", "<b>0</b>")


def walk(node: object) -> Iterator[object]:
    yield node
    for child in getattr(node, "children", {}).values():
        yield from walk(child)


def markdown_strings(node: object) -> list[tuple[str, str]]:
    """(field, value) of every string of ``node`` that Streamlit renders as Markdown."""
    kind = node.type  # type: ignore[attr-defined]
    proto = node.proto  # type: ignore[attr-defined]
    found = [(name, getattr(proto, name)) for name in MARKDOWN_FIELDS[kind]
             if getattr(proto, name, "")]
    if kind == "button_group":  # segmented control and pills options are Markdown too
        found += [("option", option.content) for option in proto.options]
    return found


def plotly_strings(spec: str) -> list[str]:
    def strings(value: object) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    return list(strings(json.loads(spec)))


def problems(at: AppTest) -> list[str]:
    """Every place of the page where the data's Markdown or HTML is live."""
    found = []
    for node in walk(at._tree):
        kind = getattr(node, "type", "root")
        if kind == "plotly_chart":
            found += [f"plotly: {token} in {text[:80]!r}"
                      for text in plotly_strings(node.proto.spec)  # type: ignore[attr-defined]
                      for token in _HTML_TOKENS if token in text]
            continue
        if kind in TEXT_ONLY:
            continue
        assert kind in MARKDOWN_FIELDS, f"unclassified element type {kind!r}: add it above"
        for field, value in markdown_strings(node):
            found += [f"{kind}.{field}: {bad!r} in {value[:120]!r}"
                      for bad in markdown_problems(value)]
    return found


def shown(markdown: str) -> str:
    """What a reader sees of escaped Markdown: the escapes and word joiners removed."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


@pytest.fixture(scope="module")
def hostile_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = build_hostile_root(tmp_path_factory.mktemp("hostile") / "models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROMOTION_MODELS_DIR", str(root))
        patch.setenv("PROMOTION_USER", ACTOR)
        patch.delenv("PROMOTION_DB_URL", raising=False)
        yield root


def open_page(scope: str, page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["scope"] = scope
    at.session_state[f"cards:{scope}"] = "score"  # the cards section, as after its button
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def page_states(at: AppTest, scope: str, page: str) -> Iterator[AppTest]:
    """The page as first drawn, then with each hostile model chosen where a page offers it."""
    yield at
    if scope != SCOPE:
        return
    if page == "views/explorer.py":
        for model in (CHAMPION, CANARY):
            at.selectbox(key=f"explore_model:{scope}").set_value(model)
            yield at.run()
    elif page == "views/lifecycle.py":
        at.selectbox(key=f"lifecycle_model:{scope}").set_value(CHAMPION)
        at.selectbox(key=f"lifecycle_target:{scope}").set_value("champion")
        yield at.run()
    elif page == "views/comparison.py":
        at.multiselect(key=f"compare:{scope}").set_value([CHAMPION, CANARY, "logreg"])
        yield at.run()


@pytest.mark.parametrize("scope", [SCOPE, EMPTY_SCOPE], ids=["decided", "unexported"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_shows_hostile_names_and_texts_as_text(hostile_root, page, scope):
    at = open_page(scope, page)
    for state in page_states(at, scope, page):
        assert not state.exception, state.exception
        assert problems(state) == []
        title = shown(state.title[0].value)
        assert title.endswith(f" · {scope}")
        assert DESCRIPTION in [shown(c.value) for c in state.caption]
        if page == "views/leaderboard.py":  # the broken scope is named in its warning
            assert any(f"Scope {BROKEN_SCOPE} cannot be read" in shown(w.value)
                       for w in state.warning)


def test_the_names_are_on_the_pages_as_written(hostile_root):
    lifecycle = open_page(SCOPE, "views/lifecycle.py")
    rollback = [b for b in lifecycle.button if b.key == f"rollback:{SCOPE}"][0]
    assert shown(rollback.label) == f"↩️ Roll back to {CHAMPION}"
    assert any(t.value.startswith(f"Rolling back: {CHAMPION} becomes champion again")
               for t in lifecycle.text)
    champion = shown(lifecycle.success[0].value)
    assert f"by {ACTOR} · rollback: {REASON}" in champion  # logreg came back by rollback
    in_force = [shown(c.value) for c in lifecycle.caption if "In force" in c.value][0]
    assert f"canary: {CANARY} answers 10% of requests" in in_force

    monitoring = open_page(SCOPE, "views/monitoring.py")
    assert any(f"drifted (PSI > 0.2): {FEATURE}" in shown(w.value) for w in monitoring.warning)
    assert any(CANARY in t.value for t in monitoring.text)  # the plan names the canary
    legend = {trace["name"] for trace in json.loads(monitoring.get("plotly_chart")[0].proto.spec)
              ["data"]}
    assert CANARY.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in legend

    leaderboard = open_page(SCOPE, "views/leaderboard.py")
    assert any(shown(e.label).startswith(f"{CANARY} · weight") for e in leaderboard.expander)
    assert any(shown(c.value).endswith(f", by {ACTOR}") for c in leaderboard.caption)

    explorer = open_page(SCOPE, "views/explorer.py")
    explorer.selectbox(key=f"explore_model:{SCOPE}").set_value(CANARY).run()
    assert shown(explorer.subheader[0].value) == CANARY


def test_a_rollback_clicked_in_the_app_names_the_model_as_written(tmp_path, monkeypatch):
    root = build_hostile_root(tmp_path / "models")
    monkeypatch.setenv("PROMOTION_MODELS_DIR", str(root))
    monkeypatch.setenv("PROMOTION_USER", ACTOR)
    monkeypatch.delenv("PROMOTION_DB_URL", raising=False)
    at = open_page(SCOPE, "views/lifecycle.py")
    at.text_input(key="rollback_reason").input(REASON).run()
    [b for b in at.button if b.key == f"rollback:{SCOPE}"][0].click().run()
    [b for b in at.button if b.key == f"confirm_yes:{SCOPE}"][0].click().run()
    assert not at.exception, at.exception
    assert problems(at) == []
    assert any(shown(s.value).startswith(f"Rolled back: {CHAMPION} becomes champion again")
               for s in at.success)
    assert open_store(root).stages(SCOPE)[CHAMPION].stage == "champion"
    assert FOLDER in CHAMPION
