"""Rank a scope's models on measured evidence, promote the right ones, hand them to production.

Only the names below are public; the ``_``-modules behind them may change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ._config import GROUP_PHASE, GROUPS, ModelMeta, ScopeConfig
from ._diagnostics import (
    confusion_table,
    group_summary,
    metric_score_table,
    pareto_front,
    per_class_accuracy,
    roc_table,
)
from ._discovery import (
    Holdout,
    ModelEntry,
    Scope,
    ScopeProblem,
    discover_scopes,
    file_sha256,
    load_scope,
    scope_folders,
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
from ._lifecycle import demote, promote, promoted_models
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
from ._service import MODELS_DIR_ENV, build_leaderboard, default_models_dir, effective_weights
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


def build_demo_zoo(models_dir: Path, *, force: bool = False,
                   progress: Callable[[str], None] = print,
                   scopes: Sequence[str] | None = None) -> list[Path]:
    """Build the demo scopes under ``models_dir`` (training libraries are imported only now)."""
    from ._demo import DEMO_SCOPES
    from ._demo import build_demo_zoo as build

    return build(models_dir, force=force, progress=progress, scopes=scopes or DEMO_SCOPES)


__all__ = [
    "GROUPS", "GROUP_PHASE", "METRICS", "MODELS_DIR_ENV", "PROMOTED_STAGES", "STAGES", "Holdout",
    "InvalidInputError", "InvalidTransitionError", "Leaderboard", "LeaderboardRow", "Metric",
    "ModelEntry", "ModelEvaluation", "ModelMeta", "ModelNotFoundError", "PromotionError",
    "RowPredictions", "Scope", "ScopeConfig", "ScopeEvaluation", "ScopeNotFoundError",
    "ScopeProblem", "SqlStore", "StageRecord", "Store", "Transition", "UnknownMetricError",
    "WeightsVersion", "build_demo_zoo", "build_leaderboard", "chance_levels", "confusion_table",
    "default_models_dir", "default_weights", "demote", "discover_scopes", "effective_weights",
    "evaluate_scope", "file_sha256", "get_metric", "get_metric_names", "group_summary",
    "load_row_predictions",
    "load_scope", "metric_score", "metric_score_table", "open_store", "pareto_front",
    "per_class_accuracy", "promote", "promoted_models", "rank_models", "resolve_weights",
    "roc_table", "scope_folders",
]
