"""Governed stage moves (reasons, gates, one champion, history, rollback), deployment, and
the after-commit subscriptions that let integrations follow committed moves."""

from ._deployment import CANARY_STEPS, deployment_of, next_canary_share, set_deployment
from ._hooks import Committed, subscribe, unsubscribe
from ._stages import champion_of, previous_champion, promoted_models
from ._transitions import (
    ALLOWED_FROM,
    GateFailure,
    demote,
    make_champion,
    promote,
    rollback,
    transition_model,
)

__all__ = ["ALLOWED_FROM", "CANARY_STEPS", "Committed", "GateFailure", "champion_of", "demote",
           "deployment_of", "make_champion", "next_canary_share", "previous_champion", "promote",
           "promoted_models", "rollback", "set_deployment", "subscribe", "transition_model",
           "unsubscribe"]
