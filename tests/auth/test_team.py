"""Team mode: roles checked in the domain, and four-eyes approval of the changes that reach
production, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import make_scope

from promotion import ApprovalRequiredError, InvalidInputError, PermissionDeniedError
from promotion.auth import grant_role, may, require_role, role_of, team_mode
from promotion.lifecycle import (
    GateFailure,
    approving,
    pending_requests,
    reject_request,
    request_change,
    rollback,
    set_deployment,
)
from promotion.scopes import load_scope
from promotion.store import Change
from promotion.usecases import approve_request, change_stage, edit_card_text

STORE_BACKENDS = ("sqlite", "postgresql")
ANA, BOB, VIC = "ana@example.com", "bob@example.com", "vic@elsewhere.org"
ANSWERS = {"business_impact": "fewer false alarms", "risk_assessment": "rollback ready"}


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Team mode: a secrets file with an [auth] section, and a first admin."""
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[auth]\nredirect_uri = "http://localhost:8501/oauth2callback"\n')
    monkeypatch.setenv("PROMOTION_SECRETS_FILE", str(secrets))
    monkeypatch.setenv("PROMOTION_ADMIN", "boss@example.com")


@pytest.fixture
def staffed(team, store):
    """Ana is an analyst, Bob an approver, everyone at example.com a viewer."""
    grant_role(store, ANA, "analyst", actor="boss@example.com")
    grant_role(store, BOB, "approver", actor="boss@example.com")
    grant_role(store, "@example.com", "viewer", actor="boss@example.com")
    return store


def test_local_mode_checks_no_role(store, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMOTION_SECRETS_FILE", str(tmp_path / "absent.toml"))
    assert not team_mode()
    require_role(store, "anyone", "roles")  # local mode: names are not verified


def test_a_broken_secrets_file_is_one_message(tmp_path, monkeypatch):
    broken = tmp_path / "secrets.toml"
    broken.write_text("[auth\n")
    monkeypatch.setenv("PROMOTION_SECRETS_FILE", str(broken))
    with pytest.raises(InvalidInputError, match="secrets.toml: is not valid TOML"):
        team_mode()


def test_roles_by_email_then_domain_then_viewer(staffed):
    assert role_of(staffed, "Ana@Example.com") == "analyst"
    assert role_of(staffed, "carl@example.com") == "viewer"  # the domain's role
    assert role_of(staffed, VIC) == "viewer"  # nobody said anything
    grant_role(staffed, "@elsewhere.org", "approver", actor="boss@example.com")
    assert role_of(staffed, VIC) == "approver"
    assert role_of(staffed, "boss@example.com") == "admin"  # the first admin, always
    grant_role(staffed, "@elsewhere.org", None, actor="boss@example.com")
    assert role_of(staffed, VIC) == "viewer"
    assert set(staffed.roles()) == {ANA, BOB, "@example.com"}
    assert staffed.roles()[ANA].granted_by == "boss@example.com"


def test_only_an_admin_changes_roles_and_subjects_are_checked(staffed):
    with pytest.raises(PermissionDeniedError, match="changing roles needs the admin role"):
        grant_role(staffed, ANA, "admin", actor=BOB)
    with pytest.raises(InvalidInputError, match="not an email, @domain or cli:account"):
        grant_role(staffed, "ana", "analyst", actor="boss@example.com")
    with pytest.raises(Exception, match="unknown role 'owner'"):
        grant_role(staffed, ANA, "owner", actor="boss@example.com")
    assert staffed.roles()[ANA].role == "analyst"


def test_a_viewer_is_refused_in_the_domain(staffed, models_root, tiny_scope):
    viewer = "carl@example.com"
    assert not may(staffed, viewer, "move")
    with pytest.raises(PermissionDeniedError, match="carl@example.com is a viewer: moving "
                                                    "models needs the analyst role"):
        change_stage(models_root, "tiny", staffed, "logreg", "production", actor=viewer,
                     reason="looks good")
    with pytest.raises(PermissionDeniedError, match="editing a card's texts"):
        edit_card_text(staffed, "tiny", "logreg", "strength", "great", actor=viewer)
    with pytest.raises(PermissionDeniedError, match="changing the deployment needs the admin"):
        set_deployment(staffed, load_scope(models_root, "tiny"), "ensemble", actor=ANA,
                       reason="r")
    assert staffed.history("tiny") == []


def test_a_champion_waits_for_a_second_person(staffed, models_root, tiny_scope):
    grant_role(staffed, ANA, "approver", actor="boss@example.com")  # may approve, not her own
    change_stage(models_root, "tiny", staffed, "logreg", "production", actor=ANA,
                 reason="best baseline")  # no approval needed to reach production
    with pytest.raises(ApprovalRequiredError, match="logreg to champion \\(may override "
                                                    "failing gates\\) in scope 'tiny' needs "
                                                    "a second person's approval"):
        change_stage(models_root, "tiny", staffed, "logreg", "champion", actor=ANA,
                     reason="crown it", override=True)
    scope = load_scope(models_root, "tiny")
    asked = request_change(staffed, scope, Change("move", "logreg", "champion", override=True),
                           actor=ANA, reason="crown it", **ANSWERS)
    assert pending_requests(staffed, "tiny") == [asked]
    with pytest.raises(PermissionDeniedError, match="a request needs a second person's"):
        approve_request(models_root, "tiny", staffed, asked.id, actor=ANA.upper(),
                        reason="mine")
    with pytest.raises(PermissionDeniedError, match="needs the approver role"):
        approve_request(models_root, "tiny", staffed, asked.id, actor="carl@example.com",
                        reason="sure")
    assert staffed.stages("tiny")["logreg"].stage == "production"

    done = approve_request(models_root, "tiny", staffed, asked.id, actor=BOB,
                           reason="impact reviewed")
    assert (done.status, done.decided_by, done.decision_reason) == (
        "approved", BOB, "impact reviewed")
    assert done.decided_at is not None and done.decided_at >= done.requested_at
    crowned = staffed.history("tiny")[-1]
    assert (crowned.to_stage, crowned.actor) == ("champion", ANA)
    assert crowned.reason == f"crown it (request #{asked.id}, approved by {BOB}: impact reviewed)"
    assert crowned.at == done.decided_at  # one decision: the move and its approval
    assert pending_requests(staffed, "tiny") == []
    with pytest.raises(Exception, match=f"no pending request #{asked.id}"):
        approve_request(models_root, "tiny", staffed, asked.id, actor=BOB, reason="again")


def test_approval_checks_the_gates_again_and_keeps_the_request_when_they_fail(
        staffed, models_root):
    folder = make_scope(models_root, "strict")
    change_stage(models_root, "strict", staffed, "logreg", "production", actor=ANA, reason="r")
    scope = load_scope(models_root, "strict")
    asked = request_change(staffed, scope, Change("move", "logreg", "champion"), actor=ANA,
                           reason="no override asked", **ANSWERS)
    config = json.loads((folder / "scope.json").read_text())
    config["gates"] = {"min_composite": 0.999}  # stricter by the time it is approved
    (folder / "scope.json").write_text(json.dumps(config))
    with pytest.raises(GateFailure, match="gates fail"):
        approve_request(models_root, "strict", staffed, asked.id, actor=BOB, reason="ok")
    assert staffed.stages("strict")["logreg"].stage == "production"
    assert [r.id for r in pending_requests(staffed, "strict")] == [asked.id]


def test_rejection_and_rollback_and_deployment_requests(staffed, models_root, tiny_scope):
    scope = load_scope(models_root, "tiny")
    grant_role(staffed, ANA, "admin", actor="boss@example.com")
    for model in ("logreg", "tree_d3"):
        change_stage(models_root, "tiny", staffed, model, "production", actor=ANA, reason="r",
                     override=True)
        request = request_change(staffed, scope, Change("move", model, "champion",
                                                        override=True),
                                 actor=ANA, reason=f"{model} first", **ANSWERS)
        approve_request(models_root, "tiny", staffed, request.id, actor=BOB, reason="yes")
    with pytest.raises(ApprovalRequiredError):
        rollback(staffed, scope, actor=ANA, reason="tree_d3 misbehaves")
    back = request_change(staffed, scope, Change("rollback"), actor=ANA,
                          reason="tree_d3 misbehaves", **ANSWERS)
    assert back.change.model_name == "logreg"
    refused = reject_request(staffed, scope, back.id, actor=BOB, reason="not yet")
    assert (refused.status, refused.decided_by) == ("rejected", BOB)
    assert staffed.stages("tiny")["tree_d3"].stage == "champion"

    with pytest.raises(ApprovalRequiredError, match="deployment: champion mode"):
        set_deployment(staffed, scope, "champion", actor=ANA, reason="shadow the rest")
    mode = request_change(staffed, scope, Change("deployment", mode="champion"), actor=ANA,
                          reason="shadow the rest", **ANSWERS)
    approve_request(models_root, "tiny", staffed, mode.id, actor=BOB, reason="fine")
    assert staffed.deployments("tiny")[-1].mode == "champion"
    assert staffed.deployments("tiny")[-1].actor == ANA


def test_an_approval_for_a_changed_scope_is_refused(staffed, models_root, tiny_scope):
    scope = load_scope(models_root, "tiny")
    asked = request_change(staffed, scope, Change("move", "logreg", "champion"), actor=ANA,
                           reason="r", **ANSWERS)
    with pytest.raises(Exception, match="changed meanwhile"), \
            approving(staffed, scope, asked.id, actor=BOB, reason="ok"):
        rollback_change = Change("move", "tree_d3", "champion")
        with staffed.decision("tiny") as tx:
            from promotion.lifecycle._approvals import settle

            settle(tx, scope, rollback_change, needed=True)
    assert pending_requests(staffed, "tiny")[0].id == asked.id


def test_a_request_needs_its_manual_gate_answers(staffed, models_root, tiny_scope):
    scope = load_scope(models_root, "tiny")
    with pytest.raises(Exception, match="needs its risk assessment"):
        request_change(staffed, scope, Change("move", "logreg", "champion"), actor=ANA,
                       reason="r", business_impact="big", risk_assessment=" ")
    with pytest.raises(PermissionDeniedError, match="requesting a change"):
        request_change(staffed, scope, Change("move", "logreg", "champion"),
                       actor="carl@example.com", reason="r", **ANSWERS)
