"""Live monitoring: outcomes joined to the prediction log, live metrics, rules, drift, replay."""

from ._drift import PSI_FLAG, FeatureStats, drift, drift_table, feature_stats, read_feature_stats
from ._live import LiveData, live_metric, load_live, wilson, window_metrics
from ._outcomes import OutcomeReport, read_labels, record_outcomes
from ._regression import (
    REGRESSION_METRICS,
    live_errors,
    regression_comparison,
    regression_windows,
    served_errors,
)
from ._rules import (
    MIN_OUTCOMES,
    Crown,
    Deploy,
    Recommendation,
    Retire,
    RollBack,
    RuleFigures,
    Step,
    apply_recommendation,
    decide,
    deployment_summary,
    recommend,
)
from ._simulation import SimulationReport, parse_drift, simulate

__all__ = ["MIN_OUTCOMES", "PSI_FLAG", "REGRESSION_METRICS", "Crown", "Deploy",
           "FeatureStats", "LiveData", "OutcomeReport", "Recommendation", "Retire", "RollBack",
           "RuleFigures",
           "SimulationReport", "Step", "apply_recommendation", "decide", "deployment_summary",
           "drift", "drift_table", "feature_stats", "live_errors", "live_metric", "load_live",
           "parse_drift", "read_feature_stats", "read_labels", "recommend", "record_outcomes",
           "regression_comparison", "regression_windows", "served_errors", "simulate",
           "window_metrics", "wilson"]
