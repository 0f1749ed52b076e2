"""Rank a scope's models on measured evidence, promote the right ones, hand them to production.

Only the names below are public; the ``_``-modules behind them may change. Names are
imported on first use, so ``import promotion.engine`` loads neither the store nor the
training libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, tuple[str, ...]] = {
    "_cards": ("SCHEMA_VERSION", "LeaderboardExport", "ModelCard", "ModelCards",
               "json_schemas"),
    "_config": ("GROUPS", "GROUP_PHASE", "DeploymentSettings", "GateSettings", "MlflowMirror",
                "MlflowOrigin", "ModelMeta", "ScopeConfig"),
    "_demo": ("DEMO_SCOPES", "build_demo_zoo"),
    "_drift": ("PSI_FLAG", "FeatureStats", "drift_table", "feature_stats", "psi",
               "read_feature_stats"),
    "_diagnostics": ("confusion_table", "group_summary", "metric_score_table", "pareto_front",
                     "per_class_accuracy", "roc_table"),
    "_discovery": ("Holdout", "ModelEntry", "Scope", "ScopeProblem", "discover_scopes",
                   "file_sha256", "load_scope", "scope_folders"),
    "_ensemble": ("METHODS", "ensemble_weights", "normalize"),
    "_errors": ("InvalidInputError", "InvalidTransitionError", "MissingDependencyError",
                "ModelNotFoundError", "PromotionError", "ScopeNotFoundError",
                "UnknownMetricError"),
    "_evaluation": ("ModelEvaluation", "RowPredictions", "ScopeEvaluation", "evaluate_scope",
                    "load_row_predictions"),
    "_export": ("TEXT_FIELDS", "ExportPaths", "PromotedSet", "build_cards",
                "compare_ensembles", "derived_texts", "ensemble_table", "export_results",
                "promoted_set"),
    "_gates": ("Gate", "GateReport", "gate_report", "gate_reports"),
    "_loading": ("MODEL_FILES", "SHIPPED_TRUSTED_TYPES", "LoadedFile", "ModelLoadError",
                 "load_model_file"),
    "_lifecycle": ("ALLOWED_FROM", "CANARY_STEPS", "MODES", "GateFailure", "champion_of",
                   "demote", "deployment_of", "make_champion", "next_canary_share",
                   "previous_champion", "promote", "promoted_models", "rollback",
                   "set_deployment", "stage_of", "transition_model"),
    "_monitoring": ("MIN_OUTCOMES", "LiveData", "OutcomeReport", "Recommendation",
                    "RuleFigures", "SimulationReport", "apply_recommendation", "decide",
                    "deployment_summary", "drift", "live_metric", "load_live", "metric_name",
                    "parse_drift", "read_labels", "recommend", "record_outcomes", "simulate",
                    "window_metrics", "wilson"),
    "_predlog": ("log_path",),
    "_metrics": ("METRICS", "Metric", "chance_levels", "default_weights", "get_metric",
                 "get_metric_names", "metric_score"),
    "_mlflow": ("ImportedVersion", "MirrorPlan", "SyncReport", "import_mlflow_versions",
                "mirror_decisions", "mirror_plan", "sync_mlflow"),
    "_scoring": ("Leaderboard", "LeaderboardRow", "rank_models", "resolve_weights"),
    "_service": ("MODELS_DIR_ENV", "ScopeState", "build_leaderboard", "change_stage",
                 "default_models_dir", "deploy", "effective_weights", "export_scope",
                 "latest_weights_method", "scope_state"),
    "_slices": ("INSUFFICIENT", "SliceFinding", "slice_findings"),
    "_store": ("PROMOTED_STAGES", "STAGES", "DeploymentRecord", "SchemaStatus", "SqlStore",
               "StageRecord", "Store", "SyncState", "Transition", "WeightsVersion",
               "default_db_url", "open_store", "public_url", "schema_status"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'promotion' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and editors; at run time names load lazily
    from ._cards import *  # noqa: F403
    from ._config import *  # noqa: F403
    from ._demo import DEMO_SCOPES, build_demo_zoo  # noqa: F401
    from ._diagnostics import *  # noqa: F403
    from ._discovery import *  # noqa: F403
    from ._drift import *  # noqa: F403
    from ._ensemble import *  # noqa: F403
    from ._errors import *  # noqa: F403
    from ._evaluation import *  # noqa: F403
    from ._export import *  # noqa: F403
    from ._gates import *  # noqa: F403
    from ._lifecycle import *  # noqa: F403
    from ._loading import *  # noqa: F403
    from ._metrics import *  # noqa: F403
    from ._mlflow import *  # noqa: F403
    from ._monitoring import *  # noqa: F403
    from ._predlog import log_path  # noqa: F401
    from ._scoring import *  # noqa: F403
    from ._service import *  # noqa: F403
    from ._slices import *  # noqa: F403
    from ._store import *  # noqa: F403
