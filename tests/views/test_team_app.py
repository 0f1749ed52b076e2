"""Local mode as before, and team mode's pages, through Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import make_scope
from streamlit.testing.v1 import AppTest

from promotion.lifecycle import champion_of
from promotion.lifecycle._transitions import apply_move
from promotion.store import open_store

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def root(models_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    make_scope(models_root, "tiny")
    monkeypatch.setenv("PROMOTION_MODELS_DIR", str(models_root))
    monkeypatch.setenv("PROMOTION_USER", "ana")
    monkeypatch.delenv("PROMOTION_DB_URL", raising=False)
    monkeypatch.setenv("PROMOTION_SECRETS_FILE", str(models_root.parent / "absent.toml"))
    return models_root


@pytest.fixture
def team(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    secrets = root.parent / "secrets.toml"
    secrets.write_text('[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\n')
    monkeypatch.setenv("PROMOTION_SECRETS_FILE", str(secrets))
    monkeypatch.setenv("PROMOTION_ADMIN", "boss@example.com")
    return root


def run(user: dict | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["scope"] = "tiny"
    if user is not None:
        at.user = user
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def test_local_mode_is_as_before_and_says_names_are_not_verified(root):
    at = run()
    assert at.sidebar.text_input(key="user_field").value == "ana"
    assert "local mode: names are not verified" in [c.value for c in at.sidebar.caption]
    assert not [b for b in at.button if b.label == "Sign in"]


def test_team_mode_shows_nothing_before_sign_in(team):
    at = run(user={"is_logged_in": False})
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.sidebar.text_input  # no typed names in team mode
    assert not [t for t in at.title if "Leaderboard" in t.value]


def test_an_admin_gives_a_role_on_the_roles_page(team):
    at = run(user={"is_logged_in": True, "email": "Boss@Example.com"}, page="views/roles.py")
    assert any("boss@" in c.value and "admin" in c.value for c in at.sidebar.caption)
    at.text_input(key="role_subject").input("@example.com")
    at.selectbox(key="role_choice").set_value("approver")
    at.run()
    at.button(key="save_role").click()
    at.run()
    assert not at.exception
    store = open_store(team)
    grant = store.roles()["@example.com"]
    assert (grant.role, grant.granted_by) == ("approver", "boss@example.com")
    store.close()


def test_a_viewer_cannot_use_the_roles_page(team):
    at = run(user={"is_logged_in": True, "email": "vic@example.com"}, page="views/roles.py")
    assert at.text_input(key="role_subject").disabled
    assert at.button(key="save_role").disabled


def test_a_rollback_is_requested_on_the_lifecycle_page_and_approved_by_another(team):
    store = open_store(team)
    store.set_role("ana@example.com", "analyst", actor="boss@example.com")
    store.set_role("bob@example.com", "approver", actor="boss@example.com")
    for model in ("logreg", "tree_d3"):  # two champions in turn: a previous one to go back to
        with store.decision("tiny") as tx:
            apply_move(tx, model, "production", actor="ana", reason="r", model_sha256=None)
            apply_move(tx, model, "champion", actor="ana", reason="r", model_sha256=None)

    ana = run(user={"is_logged_in": True, "email": "ana@example.com"},
              page="views/lifecycle.py")
    ana.text_input(key="rollback_reason").input("tree_d3 misbehaves live")
    ana.text_area(key="impact:rollback:tiny").input("wrong answers reach customers")
    ana.text_area(key="risk:rollback:tiny").input("logreg served for months")
    ana.run()
    ana.button(key="request:rollback:tiny").click()
    ana.run()
    assert not ana.exception
    (asked,) = store.requests("tiny")
    assert (asked.change.kind, asked.change.model_name, asked.requested_by) == (
        "rollback", "logreg", "ana@example.com")
    assert ana.button(key=f"approve:{asked.id}").disabled  # not her own

    bob = run(user={"is_logged_in": True, "email": "bob@example.com"},
              page="views/lifecycle.py")
    bob.text_input(key=f"decision_reason:{asked.id}").input("confirmed on the monitoring page")
    bob.run()
    bob.button(key=f"approve:{asked.id}").click()
    bob.run()
    assert not bob.exception
    assert champion_of(store.stages("tiny")) == "logreg"
    assert store.requests("tiny")[0].decided_by == "bob@example.com"
    assert store.history("tiny")[-1].action == "rollback"
    store.close()
