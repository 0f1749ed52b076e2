"""The store's records of team mode: role grants and change requests, on both backends."""

from __future__ import annotations

import pytest

from promotion import InvalidTransitionError
from promotion.store import Change, open_store

STORE_BACKENDS = ("sqlite", "postgresql")
ANSWERS = {"business_impact": "impact", "risk_assessment": "risk"}


def test_requests_persist_and_are_decided_once(store, models_root, store_url):
    change = Change("deployment", mode="canary", canary_model="m", canary_share=0.75)
    with store.decision("s") as tx:
        asked = tx.record_request(change, actor="ana", reason="ramp up", **ANSWERS)
        assert tx.request(asked.id) == asked
    reopened = open_store(models_root, store_url)
    assert reopened.requests("s") == [asked] and reopened.requests("other") == []
    with reopened.decision("s") as tx:
        done = tx.decide_request(asked.id, "rejected", actor="bob", reason="too fast")
    assert (done.status, done.decided_by, done.decision_reason, done.change) == (
        "rejected", "bob", "too fast", change)
    with pytest.raises(InvalidTransitionError, match=f"no pending request #{asked.id}"), \
            store.decision("s") as tx:
        tx.decide_request(asked.id, "approved", actor="carl", reason="late")
    with pytest.raises(InvalidTransitionError, match="no pending request"), \
            store.decision("other") as tx:  # a request belongs to its scope
        tx.decide_request(asked.id, "approved", actor="carl", reason="wrong scope")
    assert store.requests("s")[0].decided_by == "bob"
    reopened.close()


@pytest.mark.parametrize(("field", "answers"), [
    ("business impact", {"business_impact": " ", "risk_assessment": "r"}),
    ("risk assessment", {"business_impact": "b", "risk_assessment": ""}),
])
def test_a_request_records_the_manual_gates_answers(store, field, answers):
    with pytest.raises(InvalidTransitionError, match=f"needs its {field}"), \
            store.decision("s") as tx:
        tx.record_request(Change("rollback", model_name="m"), actor="ana", reason="r",
                          **answers)
    assert store.requests("s") == []


def test_roles_are_set_replaced_and_removed(store):
    store.set_role("ana@example.com", "analyst", actor="boss")
    store.set_role("ana@example.com", "approver", actor="boss2")
    grant = store.roles()["ana@example.com"]
    assert (grant.role, grant.granted_by) == ("approver", "boss2")
    assert store.set_role("ana@example.com", None, actor="boss") is None
    assert store.roles() == {}
    with pytest.raises(InvalidTransitionError, match="unknown role 'owner'"):
        store.set_role("ana@example.com", "owner", actor="boss")
