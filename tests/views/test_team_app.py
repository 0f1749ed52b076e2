"""Local mode as before, and team mode's pages, through Streamlit's AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import make_scope
from streamlit.testing.v1 import AppTest

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
