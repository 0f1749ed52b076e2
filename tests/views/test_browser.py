"""End to end in a real browser: streamlit run + Debian's Chromium driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import ARTIFACTS, launched_chromium, running_app
from factories import make_scope

from promotion.lifecycle import promoted_models
from promotion.store import open_store

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser():
    yield from launched_chromium()


@pytest.fixture
def served(tmp_path: Path):
    root = tmp_path / "models"
    make_scope(root, "tiny")
    make_scope(root, "bin", task="binary")
    with running_app(root) as url:
        yield url, root


def wait_for_app(page, text: str, timeout: float = 120_000) -> None:
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def test_promote_survives_a_reload(browser, served):
    url, root = served
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.goto(f"{url}/?scope=tiny")
    wait_for_app(page, "Promoted Models Summary")
    page.get_by_label("Reason for your decisions (required, recorded with each)").fill(
        "best linear baseline")
    page.keyboard.press("Enter")
    wait_for_app(page, "Promoted Models Summary")
    page.get_by_role("button", name="Promote").first.click()
    page.get_by_role("button", name="Demote").first.wait_for(timeout=30_000)
    wait_for_app(page, "Total Promoted: 1")

    page.reload()
    wait_for_app(page, "Promoted Models Summary")
    page.get_by_role("button", name="Demote").first.wait_for(timeout=30_000)
    assert page.get_by_text("Total Promoted: 1").count() == 1
    page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)

    promoted = promoted_models(open_store(root), "tiny")
    assert len(promoted) == 1
    record = next(iter(promoted.values()))
    assert (record.updated_by, record.reason) == ("ana", "best linear baseline")
    page.close()


@pytest.mark.parametrize(("path", "scope", "text"), [
    ("explorer", "tiny", "Confusion matrix"),
    ("explorer", "bin", "ROC curve"),
    ("comparison", "tiny", "Pareto front"),
    ("lifecycle", "tiny", "Gate report"),
    ("monitoring", "tiny", "Nothing exported to serve yet"),
])
def test_pages_render_in_the_browser(browser, served, path, scope, text):
    url, _ = served
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(f"{url}/{path}?scope={scope}")
    wait_for_app(page, text)
    page.wait_for_timeout(1500)  # let plotly finish drawing before the screenshot
    page.screenshot(path=str(ARTIFACTS / f"{path}-{scope}.png"), full_page=True)
    assert page.get_by_text("Traceback").count() == 0
    assert not errors
    page.close()


# --- hostile names and texts, as the browser draws them ----------------------------------

#: What GFM, KaTeX and Streamlit would make of the data if it were read as Markdown.
FROM_DATA = """() => {
    const main = document.querySelector('[data-testid="stMain"]') || document.body;
    const data = /i\\.png|a\\.png|127\\.0\\.0\\.1:9|javascript|example\\.com|b\\.co/;
    return {
        images: [...main.querySelectorAll('img')].map(e => e.src).filter(s => data.test(s)),
        // Streamlit's own heading anchors point at this page, whose address names the scope.
        links: [...main.querySelectorAll('a')].map(e => e.href)
            .filter(s => s.split('#')[0] !== location.href.split('#')[0] && data.test(s)),
        katex: main.querySelectorAll('.katex').length,
        emphasis: [...main.querySelectorAll('strong, b, em')].map(e => e.textContent)
            .filter(t => ['bold', 'eve', 'x', 'f2', 'tree', 'html'].includes(t.trim())),
    };
}"""


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory: pytest.TempPathFactory):
    """One app over the hostile models root for every page (the pages only read it)."""
    from hostile_scope import ACTOR, build_hostile_root

    root = build_hostile_root(tmp_path_factory.mktemp("hostile-browser") / "models")
    with running_app(root, {"PROMOTION_USER": ACTOR}) as url:
        yield url


def page_text(page) -> str:
    """The page's text as a reader sees it (word joiners are invisible)."""
    return page.inner_text("body").replace("\u2060", "")


@pytest.mark.parametrize(("path", "ready"), [
    ("", "Promoted Models Summary"), ("explorer", "Health score"),
    ("comparison", "Model against model"), ("lifecycle", "Rollback"),
    ("monitoring", "Drift: population stability index"),
])
def test_hostile_names_show_as_text_in_the_browser(browser, hostile_app, path, ready):
    from urllib.parse import quote

    from hostile_scope import CANARY, CHAMPION, CLASSES, DESCRIPTION, FEATURE, SCOPE

    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(f"{hostile_app}/{path}?scope={quote(SCOPE, safe='')}")
    wait_for_app(page, ready)
    if path == "":
        page.get_by_role("button", name="🎫 Generate Model Cards").click()
        wait_for_app(page, "What the ensemble buys")
    page.wait_for_timeout(1500)  # plotly draws after the app is idle
    text = page_text(page)
    assert SCOPE in text and DESCRIPTION in text
    expected = {"": [CANARY], "lifecycle": [f"↩️ Roll back to {CHAMPION}"],
                "monitoring": [FEATURE, CANARY], "comparison": [], "explorer": []}[path]
    for literal in expected:
        assert literal in text
    assert page.evaluate(FROM_DATA) == {"images": [], "links": [], "katex": 0, "emphasis": []}
    if path in ("monitoring", "explorer"):  # a chart below the fold is drawn once seen
        page.locator('[data-testid="stPlotlyChart"]').first.scroll_into_view_if_needed()
        page.wait_for_timeout(1500)
    chart_text = " ".join(page.locator(".legendtext, .xtick text, .ytick text")
                          .all_text_contents())
    if path == "monitoring":  # Plotly reads HTML in legends: the names are escaped for it
        assert CANARY in chart_text
    if path == "explorer":
        assert CLASSES[0] in chart_text
    assert not errors
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"hostile-{path or 'leaderboard'}"
    page.screenshot(path=f"{shot}.png")
    detail = {"lifecycle": page.get_by_role("button", name="↩️ Roll back to"),
              "monitoring": page.locator(".legendtext"),
              "": page.get_by_text("What the ensemble buys")}.get(path)
    if detail is not None:  # the hostile names where they were Markdown before
        detail.first.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        page.screenshot(path=f"{shot}-detail.png")
    page.close()
