"""The demo's regression scope, ``1H``, on all five pages: in AppTest and in a real browser
(streamlit run + Debian's Chromium) at a laptop's and a desktop's size, with live data on the
Monitoring page (the three best promoted, a champion, a 10% canary, replayed requests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import ARTIFACTS, launched_chromium, running_app
from streamlit.testing.v1 import AppTest

from demo import build_demo_monitoring, build_demo_zoo
from demo._hourly import HOURLY_SCOPE
from promotion.store import open_store

APP = str(Path(__file__).resolve().parents[2] / "app.py")
#: Each page, and a text it shows only once its regression content is drawn.
PAGES = {
    "": "RMSE ↓",
    "explorer": "Residuals by feature",
    "comparison": "RMSE by group",
    "lifecycle": "Gate report",
    "monitoring": "Live RMSE and MAE per day",
}


@pytest.fixture(scope="module")
def hourly_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hourly") / "models"
    build_demo_zoo(root, scopes=(HOURLY_SCOPE,), progress=lambda _: None)
    store = open_store(root)
    try:
        build_demo_monitoring(root, store, scope=HOURLY_SCOPE, requests=800,
                              progress=lambda _: None)
    finally:
        store.close()
    return root


@pytest.fixture
def app_env(hourly_root, monkeypatch) -> Path:
    monkeypatch.setenv("PROMOTION_MODELS_DIR", str(hourly_root))
    monkeypatch.setenv("PROMOTION_USER", "ana")
    monkeypatch.delenv("PROMOTION_DB_URL", raising=False)
    return hourly_root


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_the_1h_scope_in_apptest(app_env, page):
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["scope"] = HOURLY_SCOPE
    at.run()
    if page:
        at.switch_page(f"views/{page}.py")
        at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value.endswith(HOURLY_SCOPE)
    shown = [e.value for kind in ("subheader", "header", "markdown", "caption", "text")
             for e in at.get(kind)]
    shown += [str(c) for frame in at.dataframe for c in frame.value.columns]
    assert any(PAGES[page] in str(text) for text in shown), PAGES[page]
    assert not any("Top-5" in str(text) or "ROC" in str(text) for text in shown)


@pytest.fixture(scope="module")
def browser():
    yield from launched_chromium()


@pytest.fixture(scope="module")
def served(hourly_root):
    with running_app(hourly_root, timeout=300) as url:
        yield url


@pytest.mark.browser
@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_page_renders_the_1h_scope_in_the_browser(browser, served, page, size):
    width, height = size
    tab = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    tab.goto(f"{served}/{page}?scope={HOURLY_SCOPE}")
    tab.get_by_text(PAGES[page], exact=False).first.wait_for(timeout=180_000)
    tab.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=180_000)
    tab.wait_for_timeout(3000)  # plotly and the tables draw after the app is idle
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"1h-{page or 'leaderboard'}-{width}.png"))
    assert tab.get_by_text("Traceback").count() == 0
    assert tab.locator('[data-testid="stException"]').count() == 0
    assert not errors
    tab.close()
