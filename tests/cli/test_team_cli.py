"""The command line in team mode: recorded as cli:<account>, same roles, same approval rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from promotion.auth import cli_actor, grant_role
from promotion.cli import main
from promotion.lifecycle import request_change
from promotion.scopes import load_scope
from promotion.store import Change, open_store

ANA = "ana@example.com"
ANSWERS = ["--business-impact", "fewer missed defaults", "--risk-assessment", "rollback ready"]


@pytest.fixture
def team_root(models_root: Path, tiny_scope: Path, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Path:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\n')
    monkeypatch.setenv("PROMOTION_SECRETS_FILE", str(secrets))
    monkeypatch.setenv("PROMOTION_ADMIN", "boss@example.com")
    monkeypatch.delenv("PROMOTION_DB_URL", raising=False)
    store = open_store(models_root)
    grant_role(store, ANA, "analyst", actor="boss@example.com")
    grant_role(store, cli_actor(), "approver", actor="boss@example.com")
    store.close()
    return models_root


def cli(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    status = main([*args, "--models-dir", str(root)])
    out, err = capsys.readouterr()
    return status, out, err


def test_an_approver_on_the_command_line_approves_an_analysts_request(team_root, capsys):
    me = cli_actor()
    status, out, err = cli(capsys, team_root, "promote", "--scope", "tiny", "--model", "logreg",
                           "--reason", "best baseline")
    assert status == 0, err
    assert f"by {me}" in out
    store = open_store(team_root)
    asked = request_change(store, load_scope(team_root, "tiny"),
                           Change("move", "logreg", "champion", override=True), actor=ANA,
                           reason="crown the baseline", business_impact="stable scores",
                           risk_assessment="low: previous model kept archived")
    status, out, _ = cli(capsys, team_root, "requests", "--scope", "tiny")
    assert f"#{asked.id}" in out and "logreg to champion" in out and "pending" in out

    status, out, err = cli(capsys, team_root, "approve", "--scope", "tiny", "--id",
                           str(asked.id), "--reason", "impact and risk reviewed")
    assert status == 0, err
    assert f"approved by {me}" in out
    assert store.stages("tiny")["logreg"].stage == "champion"

    status, out, _ = cli(capsys, team_root, "history", "--scope", "tiny")
    crowned = next(line for line in out.splitlines() if "-> champion" in line)
    assert f"by {ANA}" in crowned and f"approved by {me}: impact and risk reviewed" in crowned
    asked_line = next(line for line in out.splitlines() if f"request #{asked.id}" in line)
    assert "by ana@example.com: crown the baseline" in asked_line
    assert f"approved by {me} at " in asked_line
    store.close()


def test_the_command_line_files_requests_and_never_approves_its_own(team_root, capsys):
    me = cli_actor()
    cli(capsys, team_root, "promote", "--scope", "tiny", "--model", "logreg", "--reason", "r")
    status, _, err = cli(capsys, team_root, "promote", "--scope", "tiny", "--model", "logreg",
                         "--stage", "champion", "--override-gates", "--reason", "crown")
    assert status == 2 and "needs a second person's approval" in err
    status, out, err = cli(capsys, team_root, "promote", "--scope", "tiny", "--model", "logreg",
                           "--stage", "champion", "--override-gates", "--reason", "crown",
                           *ANSWERS)
    assert status == 0, err
    assert out.startswith("request #1 pending: logreg to champion") and f"by {me}" in out
    status, _, err = cli(capsys, team_root, "approve", "--scope", "tiny", "--id", "1",
                         "--reason", "mine")
    assert status == 2 and f"{me} made request #1: a request needs a second person" in err
    status, _, err = cli(capsys, team_root, "promote", "--scope", "tiny", "--model", "bayes",
                         "--reason", "r", "--user", "bob")
    assert status == 2 and "--user is not accepted" in err
    status, _, err = cli(capsys, team_root, "roles", "--grant", f"{me}=admin")
    assert status == 2 and "changing roles needs the admin role" in err
    status, out, _ = cli(capsys, team_root, "roles")
    assert f"{ANA}\tanalyst" in out and f"you: {me}\tapprover" in out
