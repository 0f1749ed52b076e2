"""Governed stage moves (reasons, gates, one champion, history, rollback), deployment, requests
waiting for a second person's approval, and the after-commit subscriptions that let
integrations follow committed moves."""

from ._approvals import (
    approval_required,
    approving,
    deployment_needs_approval,
    describe,
    move_needs_approval,
    pending_requests,
    reject_request,
    request_change,
)
from ._deployment import (
    CANARY_STEPS,
    deployment_of,
    describe_serving,
    next_canary_share,
    serving_after,
    set_deployment,
)
from ._hooks import Committed, subscribe, unsubscribe
from ._stages import champion_of, previous_champion, promoted_models
from ._transitions import (
    ALLOWED_FROM,
    GateFailure,
    RollbackPlan,
    demote,
    make_champion,
    promote,
    rollback,
    rollback_plan,
    transition_model,
)

__all__ = ["ALLOWED_FROM", "CANARY_STEPS", "Committed", "GateFailure", "RollbackPlan",
           "approval_required", "approving", "champion_of", "demote", "deployment_needs_approval",
           "deployment_of", "describe", "describe_serving", "make_champion",
           "move_needs_approval", "next_canary_share", "pending_requests", "previous_champion",
           "promote", "promoted_models", "reject_request", "request_change", "rollback",
           "rollback_plan", "serving_after", "set_deployment", "subscribe",
           "transition_model", "unsubscribe"]
