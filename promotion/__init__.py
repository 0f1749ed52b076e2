"""Rank a scope's models on measured evidence, promote the right ones, hand them to production.

One sub-package per concern, each with a small public face (``__all__``):

- ``promotion.scopes``: scopes and models under a models root, ``scope.json``, the holdout
- ``promotion.evaluation``: measuring every model on the holdout, cached in the store
- ``promotion.scoring``: metrics, the composite score and ranking, gates, diagnostics
- ``promotion.lifecycle``: stage moves, champion, rollback, deployment decisions, requests
- ``promotion.auth``: team mode, roles and who may do what
- ``promotion.store``: where decisions and measurements live
- ``promotion.export``: cards, ensemble weights and slices for the engine
- ``promotion.contract``: the exported files' schema (cards, leaderboard)
- ``promotion.engine``: serving an export (light: no store, no training libraries)
- ``promotion.monitoring``: live metrics, rules, drift, replayed traffic
- ``promotion.integrations.mlflow``: MLflow import and mirroring
- ``promotion.usecases``: the operations the app and the command line share
- ``promotion.errors``: the exceptions raised on purpose
"""

from .errors import (
    ApprovalRequiredError,
    InvalidInputError,
    InvalidTransitionError,
    MissingDependencyError,
    ModelNotFoundError,
    PermissionDeniedError,
    PromotionError,
    ScopeNotFoundError,
    StoreBusyError,
    StoreFaultError,
    UnknownMetricError,
    WorkerStartError,
)

__all__ = ["ApprovalRequiredError", "InvalidInputError", "InvalidTransitionError",
           "MissingDependencyError", "ModelNotFoundError", "PermissionDeniedError",
           "PromotionError", "ScopeNotFoundError", "StoreBusyError", "StoreFaultError",
           "UnknownMetricError", "WorkerStartError"]
