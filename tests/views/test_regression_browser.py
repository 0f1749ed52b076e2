"""The regression pages in a real browser (streamlit run + Debian's Chromium): each draws
its regression content with no script error, at a laptop's and a desktop's size."""

from __future__ import annotations

import pytest
from browser import ARTIFACTS, launched_chromium, running_app
from factories import make_regression_scope

pytestmark = pytest.mark.browser

playwright_api = pytest.importorskip("playwright.sync_api")

SIZES = [(1280, 720), (1920, 1080)]


@pytest.fixture(scope="module")
def browser():
    yield from launched_chromium()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("regression-browser") / "models"
    make_regression_scope(root)
    with running_app(root) as url:
        yield url


def wait_for_app(page, text: str, timeout: float = 120_000) -> None:
    page.get_by_text(text, exact=False).first.wait_for(timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)


def chart_titles(page) -> list[str]:
    """The titles Plotly drew: a chart below the fold is drawn once scrolled into view."""
    charts = page.locator('[data-testid="stPlotlyChart"]')
    for i in range(charts.count()):
        charts.nth(i).scroll_into_view_if_needed()
        page.wait_for_timeout(700)
    return page.locator(".gtitle").all_text_contents()


@pytest.mark.parametrize(("path", "ready", "titles"), [
    ("", "RMSE ↓", []),
    ("explorer", "Residuals by feature", ["Predicted against actual (RMSE 53.54, R² 0.511)",
                                          "Residuals (predicted − actual)",
                                          "Mean residual by age bin"]),
    ("comparison", "Model against model", ["Composite score by group",
                                           "RMSE by group (lower is better)"]),
    ("lifecycle", "Gate report", []),
])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_regression_pages_render_in_the_browser(browser, served, path, ready, titles, size):
    width, height = size
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(f"{served}/{path}?scope=diabetes")
    wait_for_app(page, ready)
    page.wait_for_timeout(1500)  # plotly draws after the app is idle
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"regression-{path or 'leaderboard'}-{width}.png"))
    drawn = chart_titles(page)
    for title in titles:
        assert title in drawn
    assert page.get_by_text("Traceback").count() == 0
    assert not errors
    page.close()
