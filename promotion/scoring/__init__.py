"""The composite score and the ranking, the promotion gates, and the tables behind the charts."""

from ._composite import Leaderboard, LeaderboardRow, rank_models, resolve_weights
from ._diagnostics import (
    confusion_table,
    feature_bins,
    group_summary,
    metric_score_table,
    pareto_front,
    per_class_accuracy,
    predicted_against_actual,
    residuals_by_feature,
    roc_table,
    threshold_outcome,
)
from ._gates import (
    GATE_LABELS,
    Gate,
    GateReport,
    gate_report,
    gate_reports,
    skill_p_values,
    skilled_models,
    tested_together,
)

__all__ = ["GATE_LABELS", "Gate", "GateReport", "Leaderboard", "LeaderboardRow", "confusion_table",
           "feature_bins", "gate_report", "gate_reports", "group_summary", "metric_score_table",
           "pareto_front", "per_class_accuracy", "predicted_against_actual", "rank_models",
           "residuals_by_feature", "resolve_weights", "roc_table", "skill_p_values",
           "skilled_models", "tested_together", "threshold_outcome"]
