"""Rank a scope's models on measured evidence, promote the right ones, hand them to production.

Only the names below are public; the ``_``-modules behind them may change.
"""

from __future__ import annotations

from ._config import GROUP_PHASE, GROUPS, ModelMeta, ScopeConfig
from ._discovery import (
    Holdout,
    ModelEntry,
    Scope,
    ScopeProblem,
    discover_scopes,
    file_sha256,
    load_scope,
)
from ._errors import (
    InvalidInputError,
    InvalidTransitionError,
    ModelNotFoundError,
    PromotionError,
    ScopeNotFoundError,
    UnknownMetricError,
)
from ._evaluation import (
    ModelEvaluation,
    RowPredictions,
    ScopeEvaluation,
    evaluate_scope,
    load_row_predictions,
)
from ._metrics import (
    METRICS,
    Metric,
    chance_levels,
    default_weights,
    get_metric,
    get_metric_names,
    metric_score,
)
from ._scoring import Leaderboard, LeaderboardRow, rank_models, resolve_weights
from ._service import build_leaderboard, default_models_dir, effective_weights
from ._store import (
    PROMOTED_STAGES,
    STAGES,
    SqlStore,
    StageRecord,
    Store,
    Transition,
    WeightsVersion,
    open_store,
)

__all__ = [
    "GROUPS", "GROUP_PHASE", "METRICS", "PROMOTED_STAGES", "STAGES",
    "Holdout", "InvalidInputError", "InvalidTransitionError", "Leaderboard", "LeaderboardRow",
    "Metric", "ModelEntry", "ModelEvaluation", "ModelMeta", "ModelNotFoundError",
    "PromotionError", "RowPredictions", "Scope", "ScopeConfig", "ScopeEvaluation",
    "ScopeNotFoundError", "ScopeProblem", "SqlStore", "StageRecord", "Store", "Transition",
    "UnknownMetricError", "WeightsVersion",
    "build_leaderboard", "chance_levels", "default_models_dir", "default_weights",
    "discover_scopes", "effective_weights", "evaluate_scope", "file_sha256", "get_metric",
    "get_metric_names", "load_row_predictions", "load_scope", "metric_score", "open_store",
    "rank_models", "resolve_weights",
]
