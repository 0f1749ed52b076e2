"""Team mode end to end: a real OpenID Connect provider on loopback (oidc-provider-mock), the
real app signing people in with st.login, and Chromium acting as three different people."""

from __future__ import annotations

import secrets as random_secrets
import threading

import pytest
from browser import free_port, launched_chromium, running_app
from factories import make_scope

from promotion import PermissionDeniedError
from promotion.auth import grant_role
from promotion.lifecycle import champion_of
from promotion.store import open_store
from promotion.usecases import change_stage, scope_state

pytestmark = [pytest.mark.browser,
              # the provider's own Authlib calls, not this project's code
              pytest.mark.filterwarnings("ignore::DeprecationWarning:authlib")]

playwright_api = pytest.importorskip("playwright.sync_api")
oidc_provider_mock = pytest.importorskip("oidc_provider_mock")

ANA, BOB, VIC = "ana@example.com", "bob@example.com", "vic@example.com"
DECISIONS = ("Promote", "Demote", "👑 Make Champion", "✅ Promote to production",
             "🧪 Mark as candidate", "❌ Demote (archive)", "📨 Request approval",
             "🚦 Deploy and export", "Save role")


@pytest.fixture(scope="module")
def provider() -> str:
    """A real OpenID Connect provider on a free loopback port; any client id is accepted and
    its authorization page signs in whoever's email is typed there."""
    import werkzeug.serving

    patch = pytest.MonkeyPatch()
    patch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP, on loopback only
    server = werkzeug.serving.make_server("127.0.0.1", free_port(), oidc_provider_mock.app(),
                                          threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)
    patch.undo()


@pytest.fixture(scope="module")
def team_app(provider: str, tmp_path_factory: pytest.TempPathFactory):
    """The app in team mode (a secrets file with [auth] pointing at the provider), a scope
    whose best model is in production, Ana an analyst and Bob an approver."""
    root = tmp_path_factory.mktemp("team") / "models"
    make_scope(root, "tiny")
    port = free_port()
    secrets = root.parent / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{random_secrets.token_hex(32)}"\n'
        'client_id = "model-promotion"\n'
        f'client_secret = "{random_secrets.token_hex(16)}"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n')
    env = {"PROMOTION_SECRETS_FILE": str(secrets), "PROMOTION_ADMIN": "boss@example.com",
           "AUTHLIB_INSECURE_TRANSPORT": "1"}
    patch = pytest.MonkeyPatch()
    for name, value in env.items():
        patch.setenv(name, value)
    patch.delenv("PROMOTION_DB_URL", raising=False)
    store = open_store(root)
    grant_role(store, ANA, "analyst", actor="boss@example.com")
    grant_role(store, BOB, "approver", actor="boss@example.com")
    best = scope_state(root, "tiny", store).board.ranked[0].model_name
    change_stage(root, "tiny", store, best, "production", actor=ANA, reason="best of the zoo")
    try:
        with running_app(root, extra_env=env, port=port,
                         streamlit_args=("--secrets.files", str(secrets))) as url:
            yield url, root, store, best
    finally:
        store.close()
        patch.undo()


@pytest.fixture(scope="module")
def browser():
    yield from launched_chromium()


def settled(page, text: str) -> None:
    """Wait until ``text`` shows and the app's run has finished."""
    page.get_by_text(text, exact=False).first.wait_for(timeout=120_000)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)


def sign_in(browser, url: str, email: str, path: str):
    """A browser of its own (its own cookies) signed in as ``email``, showing ``path``."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/oauth2/authorize**", timeout=60_000)
    page.locator("input[name=sub]").fill(email)
    page.get_by_role("button", name="Authorize", exact=True).click()
    settled(page, "Signed in as")
    page.goto(f"{url}/{path}?scope=tiny")
    settled(page, "Signed in as")
    # An email is shown with an invisible word joiner after the @ (never a mailto link).
    shown = page.get_by_text("Signed in as").first.inner_text().replace("\u2060", "")
    assert email in shown
    return page


def type_into(page, label: str, text: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(text)
    box.press("Control+Enter" if box.evaluate("e => e.tagName") == "TEXTAREA" else "Enter")
    page.wait_for_timeout(300)  # let the widget's rerun start before waiting for its end
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def test_an_analyst_requests_a_champion_and_another_approver_approves_it(browser, team_app):
    url, root, store, best = team_app
    ana = sign_in(browser, url, ANA, "lifecycle")
    settled(ana, "Requests (four eyes)")
    type_into(ana, "Reason (required, recorded with this decision)", "clear leader on the holdout")
    override = ana.get_by_text("Override the failing gates", exact=False)
    if override.count():  # the tiny zoo may not beat chance significantly: say so, recorded
        override.first.click()
        settled(ana, "Business impact review")
    type_into(ana, "Business impact review (required)", "fewer misread digits")
    type_into(ana, "Risk assessment (required)", "low: the old stage is kept in history")
    ana.get_by_role("button", name="📨 Request approval").click()
    settled(ana, "Request #1 pending")
    own = ana.get_by_role("button", name="✅ Approve #1 and carry it out")
    assert own.is_disabled()  # a requester never approves their own request
    assert champion_of(store.stages("tiny")) is None

    bob = sign_in(browser, url, BOB, "lifecycle")
    settled(bob, "#1 ·")
    type_into(bob, "Reason for your decision (required, recorded)", "impact and risk reviewed")
    bob.get_by_role("button", name="✅ Approve #1 and carry it out").click()
    settled(bob, "Request #1 approved")
    assert champion_of(store.stages("tiny")) == best
    decided = store.requests("tiny")[0]
    assert (decided.requested_by, decided.decided_by, decided.decision_reason) == (
        ANA, BOB, "impact and risk reviewed")
    crowned = store.history("tiny")[-1]
    assert (crowned.actor, crowned.to_stage) == (ANA, "champion")
    assert "approved by bob@example.com: impact and risk reviewed" in crowned.reason
    ana.context.close()
    bob.context.close()


def test_a_viewer_sees_no_enabled_decision_and_is_refused_in_the_domain(browser, team_app):
    url, root, store, best = team_app
    vic = sign_in(browser, url, VIC, "lifecycle")
    assert vic.get_by_text("Signed in as").first.inner_text().endswith("· viewer")
    vic.get_by_role("button", name="🚦 Deploy and export").wait_for(timeout=60_000)
    decisions_are_disabled(vic)
    vic.goto(f"{url}/?scope=tiny")  # the leaderboard, with a decision on every row
    vic.get_by_role("button", name="Promote", exact=True).nth(2).wait_for(timeout=60_000)
    decisions_are_disabled(vic)
    vic.context.close()
    others = [r.model_name for r in scope_state(root, "tiny", store).board.ranked
              if r.model_name != best]
    with pytest.raises(PermissionDeniedError, match="vic@example.com is a viewer"):
        change_stage(root, "tiny", store, others[0], "production", actor=VIC, reason="mine")


def decisions_are_disabled(page) -> None:
    settled(page, "Signed in as")
    shown = [b for name in DECISIONS for b in page.get_by_role("button", name=name).all()]
    assert shown and all(b.is_disabled() for b in shown)
