"""Four-eyes approval of the changes that reach production.

When a scope asks for it (``scope.json`` ``approval``; on by default in team mode), a new
champion, failing gates overridden, a rollback, a deployment mode change and a canary raised
above 50% are not made directly: they are requested (with a reason and the manual gates'
answers: business impact, risk assessment), and a second person with the approver role
approves or rejects them with a reason. Approval carries the change out through the same
lifecycle function, gates checked again at that moment; the approval is recorded in the
change's own decision, so both commit together or neither does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from ..auth import require_role, team_mode
from ..errors import ApprovalRequiredError, InvalidTransitionError, PermissionDeniedError
from ..scopes._discovery import Scope
from ..store._abstract import Decision, Store
from ..store._entities import Change, ChangeRequest, DeploymentRecord
from ..vocabulary import MODES

#: Above this share, raising a canary needs approval.
CANARY_SHARE_NEEDING_APPROVAL = 0.5


@dataclass(frozen=True)
class _Approval:
    request: ChangeRequest
    approver: str
    reason: str


#: The approved request being carried out in this thread or task, if any.
_CARRYING_OUT: ContextVar[_Approval | None] = ContextVar("approved request", default=None)


def approval_required(scope: Scope) -> bool:
    """Whether the scope's changes that reach production wait for approval."""
    asked = scope.config.approval
    return team_mode() if asked is None else asked


def move_needs_approval(scope: Scope, to_stage: str, overridden: bool) -> bool:
    """Whether a stage move waits for approval: a new champion, or gates overridden."""
    return approval_required(scope) and (to_stage == "champion" or overridden)


def deployment_needs_approval(scope: Scope, current: DeploymentRecord, mode: str,
                              canary_share: float | None) -> bool:
    """Whether a deployment change waits for approval: another mode, or a canary raised
    above 50%."""
    raised = (mode == "canary" and canary_share is not None
              and canary_share > CANARY_SHARE_NEEDING_APPROVAL
              and canary_share > (current.canary_share or 0.0))
    return approval_required(scope) and (mode != current.mode or raised)


def describe(change: Change) -> str:
    """A change in a few words, for lists and messages."""
    if change.kind == "move":
        flag = " (may override failing gates)" if change.override else ""
        return f"{change.model_name} to {change.to_stage}{flag}"
    if change.kind == "rollback":
        return f"roll back to {change.model_name}"
    canary = (f", canary {change.canary_model} at {change.canary_share:.0%}"
              if change.mode == "canary" and change.canary_share is not None else "")
    return f"deployment: {change.mode} mode{canary}"


def settle(tx: Decision, scope: Scope, change: Change, *, needed: bool) -> None:
    """In the decision that makes ``change``: refuse it when it ``needed`` approval (see the
    ``*_needs_approval`` functions) and is not an approved request being carried out; when it
    is one, record the approval in ``tx``."""
    approval = _CARRYING_OUT.get()
    if approval is not None and approval.request.scope == tx.scope:
        if approval.request.change != change:
            raise InvalidTransitionError(
                f"request #{approval.request.id} asked for {describe(approval.request.change)}"
                f"; carried out now it would be {describe(change)}: scope '{scope.name}' "
                "changed meanwhile. Hint: reject it and request again")
        tx.decide_request(approval.request.id, "approved", actor=approval.approver,
                          reason=approval.reason)
        return
    if needed:
        raise ApprovalRequiredError(
            f"{describe(change)} in scope '{scope.name}' needs a second person's approval. "
            "Hint: request it on the Lifecycle page, or give the command --business-impact and "
            "--risk-assessment")


def request_change(store: Store, scope: Scope, change: Change, *, actor: str, reason: str,
                   business_impact: str, risk_assessment: str) -> ChangeRequest:
    """Ask for ``change``; it waits, pending, for a second person (see :func:`approving`).

    A rollback's target is the previous champion now, recorded with the request."""
    from ._stages import previous_champion
    from ._transitions import ALLOWED_FROM

    require_role(store, actor, "deploy" if change.kind == "deployment" else "request")
    if change.kind == "move":
        if change.to_stage not in ALLOWED_FROM:
            raise InvalidTransitionError(f"cannot request a move to '{change.to_stage}'. "
                                         f"Hint: stages are {', '.join(ALLOWED_FROM)}")
        scope.model(str(change.model_name))  # an unknown model is an error now, not later
    elif change.kind == "rollback":
        previous = previous_champion(store, scope.name)
        if previous is None:
            raise InvalidTransitionError(f"scope '{scope.name}' has no previous champion to "
                                         "roll back to")
        change = Change("rollback", model_name=previous[0])
    elif change.kind == "deployment":
        if change.mode not in MODES:
            raise InvalidTransitionError(f"unknown deployment mode '{change.mode}'. Hint: "
                                         f"modes are {', '.join(MODES)}")
        if change.mode != "canary":
            change = Change("deployment", mode=change.mode)
    else:
        raise InvalidTransitionError(f"unknown kind of request '{change.kind}'. Hint: move, "
                                     "rollback or deployment")
    with store.decision(scope.name) as tx:
        return tx.record_request(change, actor=actor, reason=reason,
                                 business_impact=business_impact,
                                 risk_assessment=risk_assessment)


def pending_requests(store: Store, scope_name: str) -> list[ChangeRequest]:
    """The scope's requests waiting for a decision, oldest first."""
    return [r for r in store.requests(scope_name) if r.status == "pending"]


@contextmanager
def approving(store: Store, scope: Scope, request_id: int, *, actor: str, reason: str
              ) -> Iterator[ChangeRequest]:
    """Approve a pending request: inside the block, carry its change out through the usual
    lifecycle function (as its requester, with its reason); the approval is recorded in that
    change's decision. A change that turns out to change nothing is approved on leaving."""
    request = _decidable(store, scope, request_id, actor=actor, reason=reason)
    token = _CARRYING_OUT.set(_Approval(request, actor, reason))
    try:
        yield request
    finally:
        _CARRYING_OUT.reset(token)
    with store.decision(scope.name) as tx:
        current = tx.request(request_id)
        if current is not None and current.status == "pending":
            tx.decide_request(request_id, "approved", actor=actor,
                              reason=f"{reason} (nothing to change)")


def reject_request(store: Store, scope: Scope, request_id: int, *, actor: str,
                   reason: str) -> ChangeRequest:
    """Reject a pending request, with a reason; nothing else changes."""
    _decidable(store, scope, request_id, actor=actor, reason=reason)
    with store.decision(scope.name) as tx:
        return tx.decide_request(request_id, "rejected", actor=actor, reason=reason)


def _decidable(store: Store, scope: Scope, request_id: int, *, actor: str,
               reason: str) -> ChangeRequest:
    """The pending request ``actor`` may decide: an approver who did not request it."""
    require_role(store, actor, "approve")
    if not reason.strip():
        raise InvalidTransitionError("a reason is required to approve or reject a request "
                                     "(field 'reason')")
    request = next((r for r in pending_requests(store, scope.name) if r.id == request_id), None)
    if request is None:
        raise InvalidTransitionError(f"scope '{scope.name}' has no pending request "
                                     f"#{request_id}. Hint: python -m promotion requests "
                                     f"--scope {scope.name}")
    if request.requested_by.strip().lower() == actor.strip().lower():
        raise PermissionDeniedError(f"{actor} made request #{request_id}: a request needs a "
                                    "second person's approval. Hint: ask another approver")
    return request
