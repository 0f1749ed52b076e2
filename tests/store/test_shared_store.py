"""Two app processes on one PostgreSQL store: each sees the other's decisions on its next rerun,
and the one-champion rule holds across them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, running_app
from factories import make_scope

from promotion.lifecycle import champion_of
from promotion.scoring import gate_report
from promotion.store import open_store
from promotion.usecases import scope_state

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")

REASON = "Reason for your decisions (required, recorded with each)"


def settle(page, text: str) -> None:
    page.get_by_text(text, exact=False).first.wait_for(timeout=120_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)


def rerun_with_reason(page, reason: str) -> None:
    """Type the decision reason: a real widget change, so the page reruns."""
    page.get_by_label(REASON).fill(reason)
    page.keyboard.press("Enter")
    settle(page, "Promoted Models Summary")


def gates_pass(root: Path, store, model: str) -> bool:
    """What the page's gate report will say for crowning ``model`` now."""
    state = scope_state(root, "tiny", store, n_jobs=1)
    return gate_report(model, "champion", state.board, state.evaluation,
                                 state.scope.config.gates,
                                 champion_of(store.stages("tiny"))).passed


def make_champion(page, url: str, model: str, reason: str, *, override: bool) -> None:
    page.goto(f"{url}/lifecycle?scope=tiny")
    settle(page, "Move a model")
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Model").first.click()
    page.get_by_role("option", name=f"{model} (production)").click()
    # The default model's report is on the page already: wait for this model's.
    settle(page, f"for {model} → champion")
    page.get_by_label("Reason (required, recorded with this decision)").fill(reason)
    page.keyboard.press("Enter")
    settle(page, f"for {model} → champion")
    if override:  # known beforehand: the checkbox may arrive a moment after the report
        box = page.get_by_role("checkbox", name=re.compile("Override the failing gates"))
        box.wait_for(timeout=120_000)
        page.get_by_text("Override the failing gates", exact=False).click()
        playwright_api.expect(box).to_be_checked()
        settle(page, f"for {model} → champion")
    page.get_by_role("button", name="👑 Make Champion").click()
    settle(page, f"{model}: production → champion")


def test_two_app_processes_share_decisions_on_postgresql(tmp_path: Path, postgres):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: ./scripts/test installs it with apt-get")
    root = tmp_path / "models"
    make_scope(root, "tiny")
    url = postgres.database()
    env = {"PROMOTION_DB_URL": url}
    store = open_store(root, url)
    with running_app(root, env) as first, running_app(root, env) as second, \
            playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        a, b = (browser.new_page(viewport={"width": 1500, "height": 1100}) for _ in range(2))
        for page, base in ((a, first), (b, second)):
            page.goto(f"{base}/?scope=tiny")
            settle(page, "Promoted Models Summary")

        rerun_with_reason(a, "promoted in the first app")
        a.get_by_role("button", name="Promote", exact=True).first.click()
        settle(a, "Total Promoted: 1")
        rerun_with_reason(b, "promoted in the second app")
        settle(b, "Total Promoted: 1")  # the second app's next rerun shows the first's decision
        b.get_by_role("button", name="Promote", exact=True).first.click()
        settle(b, "Total Promoted: 2")
        rerun_with_reason(a, "looking again")
        settle(a, "Total Promoted: 2")

        by_reason = {r.reason: r.model_name for r in store.stages("tiny").values()}
        from_a, from_b = by_reason["promoted in the first app"], by_reason[
            "promoted in the second app"]
        make_champion(a, first, from_a, "crowned in the first app",
                      override=not gates_pass(root, store, from_a))
        make_champion(b, second, from_b, "crowned in the second app",
                      override=not gates_pass(root, store, from_b))
        browser.close()

    stages = {name: record.stage for name, record in store.stages("tiny").items()}
    assert stages[from_b] == "champion" and stages[from_a] == "archived"
    assert list(stages.values()).count("champion") == 1
    crowned = [t for t in store.history("tiny") if t.to_stage == "champion"]
    assert [(t.model_name, t.reason) for t in crowned] == [
        (from_a, "crowned in the first app"), (from_b, "crowned in the second app")]
    store.close()
