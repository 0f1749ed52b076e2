"""Governed stage moves (reasons, gates, one champion, history, rollback), deployment, and
the after-commit subscriptions that let integrations follow committed moves."""

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
           "champion_of", "demote", "deployment_of", "describe_serving", "make_champion",
           "next_canary_share", "previous_champion", "promote", "promoted_models", "rollback",
           "rollback_plan", "serving_after", "set_deployment", "subscribe",
           "transition_model", "unsubscribe"]
