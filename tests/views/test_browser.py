"""End to end in a real browser: streamlit run + Debian's Chromium driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, running_app
from factories import make_scope

from promotion.lifecycle import promoted_models
from promotion.store import open_store

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: ./scripts/test installs it with apt-get")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


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
    page.get_by_role("button", name="✅ Promote").first.click()
    page.get_by_role("button", name="❌ Demote").first.wait_for(timeout=30_000)
    wait_for_app(page, "Total Promoted: 1")

    page.reload()
    wait_for_app(page, "Promoted Models Summary")
    page.get_by_role("button", name="❌ Demote").first.wait_for(timeout=30_000)
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
