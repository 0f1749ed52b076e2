"""The decisions an analyst clicks, in a real browser, checked against what the engine serves.

One app, one scope, one walk through: a rollback that restores, a blocked promote answered
beside its row, traffic replayed from Monitoring and a recommendation applied from two tabs,
and the champion demoted in canary mode. Screenshots at 1280×720 and 1920×1080 go to
test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from browser import ARTIFACTS, launched_chromium, running_app
from factories import make_scope

from promotion.engine import PredictionEngine
from promotion.store import open_store
from promotion.usecases import build_leaderboard, change_stage, deploy

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")

SIZES = {"1280x720": {"width": 1280, "height": 720}, "1920x1080": {"width": 1920, "height": 1080}}


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory):
    """tiny: logreg champion replaced by bayes (logreg archived), tree_d3 a 10% canary,
    exported; tree_d1 below the production gate's minimum composite."""
    root = tmp_path_factory.mktemp("flows") / "models"
    scope_dir = make_scope(root, "tiny")
    store = open_store(root)
    board, _ = build_leaderboard(root, "tiny", store, n_jobs=1)
    weakest = board.row("tree_d1").composite_score
    others = min(r.composite_score for r in board.ranked if r.model_name != "tree_d1")
    config = json.loads((scope_dir / "scope.json").read_text())
    config["gates"] = {"min_composite": round((weakest + others) / 2, 4)}
    (scope_dir / "scope.json").write_text(json.dumps(config))
    for name in ("logreg", "bayes", "tree_d3"):
        change_stage(root, "tiny", store, name, "production", actor="ana", reason="set up")
    change_stage(root, "tiny", store, "logreg", "champion", actor="ana", reason="set up")
    deploy(root, "tiny", store, "canary", canary="tree_d3", canary_share=0.10, actor="ana",
           reason="set up")
    change_stage(root, "tiny", store, "bayes", "champion", actor="ana", reason="try bayes",
                 override=True)
    store.close()
    with running_app(root) as url:
        yield url, root


@pytest.fixture(scope="module")
def browser():
    yield from launched_chromium()


def settled(page, text: str, timeout: float = 120_000) -> None:
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def shoot(page, name: str) -> None:
    """The page at both sizes (the top of it: what is seen without scrolling)."""
    ARTIFACTS.mkdir(exist_ok=True)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.wait_for_timeout(800)
        page.screenshot(path=str(ARTIFACTS / f"flow-{name}-{size}.png"))
    page.set_viewport_size(SIZES["1280x720"])


def type_reason(page, label: str, text: str) -> None:
    page.get_by_label(label).fill(text)
    page.get_by_label(label).press("Enter")
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def key(page, widget_key: str):
    """The element of a widget by its key (Streamlit's st-key-… class)."""
    return page.locator(".st-key-" + "".join(c if c.isalnum() or c in "_-" else "-"
                                             for c in widget_key))


def serving(root: Path) -> tuple[str, str | None, set[str]]:
    engine = PredictionEngine.load("tiny", root, log=False)
    return engine.mode, engine.champion, {c.model_name for c in engine.cards}


def test_decisions_in_the_browser_are_what_the_engine_serves(browser, walked):
    url, root = walked
    page = browser.new_page(viewport=SIZES["1280x720"])
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))

    # Rollback: said before, confirmed, and bayes goes back to production (not archived).
    page.goto(f"{url}/lifecycle?scope=tiny")
    settled(page, "Rolling back: logreg becomes champion again; bayes goes back to production")
    shoot(page, "lifecycle")
    type_reason(page, "Reason for the rollback (required, recorded)", "bayes slipped live")
    key(page, "rollback:tiny").get_by_role("button").click()
    settled(page, "After it, the engine serves")
    shoot(page, "rollback-confirm")
    key(page, "confirm_yes:tiny").get_by_role("button").click()
    settled(page, "Rolled back: logreg becomes champion again")
    stages = {n: r.stage for n, r in open_store(root).stages("tiny").items()}
    assert stages == {"logreg": "champion", "bayes": "production", "tree_d3": "production"}
    assert serving(root) == ("canary", "logreg", {"logreg", "bayes", "tree_d3"})

    # A blocked promote answers beside its row, not at the top of the page.
    page.goto(f"{url}/?scope=tiny")
    settled(page, "Promoted Models Summary")
    type_reason(page, "Reason for your decisions (required, recorded with each)", "try it")
    key(page, "promote:tiny:tree_d1").get_by_role("button").click()
    settled(page, "cannot move to production: gates fail")
    error = page.get_by_text("cannot move to production: gates fail").first
    row = key(page, "promote:tiny:tree_d1")
    gap = error.bounding_box()["y"] - row.bounding_box()["y"]
    assert 0 < gap < 200, gap  # just under the clicked row
    shoot(page, "leaderboard-blocked")

    # Traffic from Monitoring, then one recommendation applied from two tabs: once only.
    page.goto(f"{url}/monitoring?scope=tiny")
    settled(page, "No prediction logged yet")  # the replay is open when nothing is logged
    key(page, "simulate:tiny").get_by_role("button").click()
    settled(page, "requests served and logged")
    settled(page, "Recommendation")
    other = browser.new_page(viewport=SIZES["1280x720"])
    other.goto(f"{url}/monitoring?scope=tiny")
    settled(other, "Recommendation")
    shoot(page, "monitoring")
    # 1,500 outcomes over 8 days at 10%: the rules decide (increase or roll back).
    assert key(page, "apply:tiny").count() == 1
    for tab in (page, other):
        type_reason(tab, "Reason (required, recorded)", "weekly review")
    store = open_store(root)
    key(page, "apply:tiny").get_by_role("button").click()
    settled(page, "Applied:")
    before = (len(store.history("tiny")), len(store.deployments("tiny")))
    key(other, "apply:tiny").get_by_role("button").click()
    settled(other, "this recommendation is no longer current")
    assert (len(store.history("tiny")), len(store.deployments("tiny"))) == before
    store.close()
    other.close()

    # The champion demoted in canary mode: confirmed, and no longer served.
    store = open_store(root)
    deploy(root, "tiny", store, "canary", canary="tree_d3", canary_share=0.10, actor="ana",
           reason="canary again for the next check")
    store.close()
    assert serving(root)[:2] == ("canary", "logreg")
    page.goto(f"{url}/?scope=tiny")
    settled(page, "Promoted Models Summary")
    type_reason(page, "Reason for your decisions (required, recorded with each)",
                "bad data source")
    key(page, "demote:tiny:logreg").get_by_role("button").click()
    settled(page, "Demote the champion")
    shoot(page, "demote-confirm")
    key(page, "confirm_demote:tiny").get_by_role("button").click()
    settled(page, "logreg: champion → archived")
    mode, champion, served = serving(root)
    assert (mode, champion) == ("ensemble", None) and "logreg" not in served
    shoot(page, "leaderboard-after")
    assert page.get_by_text("Traceback").count() == 0
    assert not errors
    page.close()
