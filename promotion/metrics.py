"""The metric registry: every metric by name, with its direction and its fixed anchors.

A metric's *score* maps its value onto 0..1 against anchors that depend only on the scope's
holdout (chance level) or on fixed constants (latency, size), never on the other models, so
adding or removing a model never moves another model's score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .errors import UnknownMetricError
from .vocabulary import CLASSIFICATION_TASKS, TASKS, task_rules

Kind = Literal["quality", "cost", "info"]


@dataclass(frozen=True)
class Metric:
    """One measurable quantity of a model on a scope's holdout."""

    name: str
    label: str
    greater_is_better: bool
    tasks: frozenset[str]
    kind: Kind
    unit: str
    help: str
    #: For cost metrics: value scoring 1 and value scoring 0, on a log scale.
    log_anchors: tuple[float, float] | None = None

    @property
    def sign(self) -> int:
        """+1 when higher is better, -1 when lower is better (scikit-learn's ``_sign``)."""
        return 1 if self.greater_is_better else -1


_ALL = frozenset(TASKS)
_CLASSIFY = frozenset(CLASSIFICATION_TASKS)
_MULTI = frozenset({"multiclass"})
_BINARY = frozenset({"binary"})
_REGRESSION = frozenset({"regression"})

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", "Accuracy", True, _CLASSIFY, "quality", "",
               "Share of rows whose most probable class is the true one. "
               "Chance: the majority class share."),
        Metric("top_5_accuracy", "Top-5 accuracy", True, _MULTI, "quality", "",
               "Share of rows whose true class is among the 5 most probable. "
               "Chance: the 5 most frequent classes' share."),
        Metric("balanced_accuracy", "Balanced accuracy", True, _CLASSIFY, "quality", "",
               "Mean recall over classes. Chance: 1 / number of classes."),
        Metric("log_loss", "Log loss", False, _CLASSIFY, "quality", "",
               "Cross-entropy of the predicted probabilities. Chance: predicting the class "
               "frequencies; perfect: 0."),
        Metric("roc_auc", "ROC AUC", True, _BINARY, "quality", "",
               "Area under the ROC curve. Chance: 0.5."),
        Metric("rmse", "RMSE", False, _REGRESSION, "quality", "",
               "Root mean squared error of predict. Chance: predicting the holdout's mean "
               "(taken from one half of the rows, scored on the other); perfect: 0."),
        Metric("mae", "MAE", False, _REGRESSION, "quality", "",
               "Mean absolute error of predict. Chance: predicting the holdout's mean, as for "
               "RMSE; perfect: 0."),
        Metric("r2", "R²", True, _REGRESSION, "quality", "",
               "Coefficient of determination of predict. Chance: predicting the holdout's "
               "mean, as for RMSE (about 0); perfect: 1."),
        Metric("error_rate", "Error rate", False, _ALL, "quality", "",
               "Share of rows where the model failed: predict_proba raised or returned a row "
               "that is not a distribution (NaN/inf, negative, or all zeros); for regression, "
               "predict raised or returned NaN/inf. Scored 1 at 0, 0 at 1."),
        Metric("latency_p50_ms", "Latency p50", False, _ALL, "cost", "ms",
               "Median time of one single-row call (predict_proba; predict for regression).",
               (0.1, 1000.0)),
        Metric("latency_p95_ms", "Latency p95", False, _ALL, "cost", "ms",
               "95th percentile of single-row call time (predict_proba; predict for "
               "regression). Scored 1 at 0.1 ms, 0 at 1 s, log scale.", (0.1, 1000.0)),
        Metric("throughput_rows_s", "Throughput", True, _ALL, "info", "rows/s",
               "Rows per second over the holdout, in 5 equal chunks; "
               "its interval resamples the chunks."),
        Metric("artifact_size_mb", "Artifact size", False, _ALL, "cost", "MB",
               "Size of the model file. Scored 1 at 0.01 MB, 0 at 1 GB, log scale.",
               (0.01, 1000.0)),
        Metric("load_memory_mb", "Load memory", False, _ALL, "cost", "MB",
               "Peak Python memory allocated while loading the model file.", (0.01, 1000.0)),
    )
}

def get_metric_names(task: str | None = None) -> list[str]:
    """Names of the registered metrics, optionally only those that apply to ``task``."""
    return [name for name, m in METRICS.items() if task is None or task in m.tasks]


def get_metric(name: str) -> Metric:
    """The registered metric ``name``; unknown names list the valid ones."""
    try:
        return METRICS[name]
    except KeyError:
        valid = ", ".join(get_metric_names())
        raise UnknownMetricError(f"unknown metric '{name}'. Hint: valid metrics are {valid}") \
            from None


def validate_weights(weights: Mapping[str, float], task: str | None = None) -> dict[str, float]:
    """Check metric names and values of a weight table; return it as a plain dict."""
    for name, value in weights.items():
        metric = get_metric(name)
        if task is not None and task not in metric.tasks:
            raise UnknownMetricError(f"metric '{name}' does not apply to {task} scopes. Hint: "
                                     f"valid metrics are {', '.join(get_metric_names(task))}")
        if metric.kind == "info":
            raise UnknownMetricError(f"metric '{name}' is informational and cannot be weighted")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weight of '{name}' must be a finite number >= 0, got {value}")
    if weights and sum(weights.values()) <= 0:
        raise ValueError("at least one weight must be greater than 0")
    return dict(weights)


def default_weights(task: str) -> dict[str, float]:
    """The composite weights used when a scope sets none (see ``vocabulary.TASK_RULES``)."""
    return dict(task_rules(task).default_weights)


def chance_levels(counts: np.ndarray) -> dict[str, float]:
    """Value of each quality metric for a model with no skill, from the holdout's class counts.

    Accuracy and top-5 use the best constant guess, chosen on one half of the rows and scored
    on the other: choosing the most frequent classes on the very rows being scored would
    flatter the guess (on 49 equally likely classes, the 5 most frequent of 1,000 draws hold
    about 14% of them, not 10%).
    """
    n = np.asarray(counts, dtype=float)
    p = n / n.sum()
    nonzero = p[p > 0]
    return {
        "accuracy": constant_guess_top_k(counts, 1),
        "top_5_accuracy": constant_guess_top_k(counts, 5),
        "balanced_accuracy": 1.0 / int((n > 0).sum()),
        "log_loss": float(-(nonzero * np.log(nonzero)).sum()),
        "roc_auc": 0.5,
        "error_rate": 1.0,
    }


def regression_chance_levels(y: np.ndarray, splits: int = 200) -> dict[str, float]:
    """RMSE, MAE and R² of a model with no skill: predicting the mean of a random half of the
    holdout's targets, scored on the other half, averaged over many halvings (the mean of the
    very rows being scored would flatter it, as the most frequent classes would)."""
    y = np.asarray(y, dtype=float)
    n = len(y)
    if n < 2:
        return {"rmse": 0.0, "mae": 0.0, "r2": 0.0, "error_rate": 1.0}
    rng = np.random.default_rng([n, 2])
    half = n // 2
    rmse = mae = r2 = 0.0
    for _ in range(splits):
        order = rng.permutation(n)
        guess, scored = y[order[:half]].mean(), y[order[half:]]
        miss = scored - guess
        spread = float(((scored - scored.mean()) ** 2).sum())
        rmse += math.sqrt(float((miss ** 2).mean()))
        mae += float(np.abs(miss).mean())
        r2 += 1.0 - float((miss ** 2).sum()) / spread if spread > 0 else 0.0
    return {"rmse": rmse / splits, "mae": mae / splits, "r2": r2 / splits, "error_rate": 1.0}


def constant_guess_top_k(counts: np.ndarray, k: int, splits: int = 400) -> float:
    """Top-k accuracy of always guessing the k classes most frequent in a random half of the
    rows, scored on the other half, averaged over many halvings (ties broken at random)."""
    counts = np.asarray(counts, dtype=np.int64)
    k = min(k, len(counts) - 1)
    rng = np.random.default_rng([len(counts), int(counts.sum()), k])
    half = int(counts.sum()) // 2
    if half == 0:
        return float(np.sort(counts)[::-1][:k].sum() / max(counts.sum(), 1))
    train = rng.multivariate_hypergeometric(counts, half, size=splits)
    test = counts - train
    jitter = rng.random(train.shape)  # a fair draw among tied classes
    guess = np.argsort(-(train + jitter), axis=1)[:, :k]
    hits = np.take_along_axis(test, guess, axis=1).sum(axis=1)
    return float((hits / test.sum(axis=1)).mean())


def metric_score(name: str, values: np.ndarray, chance: Mapping[str, float]) -> np.ndarray:
    """Normalize metric values onto 0..1 (anchor → 0, perfect → 1, clipped).

    NaN stays NaN; informational metrics have no score (NaN). Float32 input (bootstrap
    replicates) stays float32; anything else is computed in float64.
    """
    metric = get_metric(name)
    values = np.asarray(values)
    if values.dtype != np.float32:
        values = values.astype(float, copy=False)
    if metric.kind == "info":  # shown, never scored
        return np.full(values.shape, np.nan, dtype=values.dtype)
    if metric.log_anchors is not None:
        best, worst = metric.log_anchors
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = (math.log(worst) - np.log(np.maximum(values, 1e-12))) / math.log(worst / best)
        return np.clip(scaled, 0.0, 1.0)
    if name == "error_rate":
        return np.clip(1.0 - values, 0.0, 1.0)
    perfect = 1.0 if metric.greater_is_better else 0.0
    base = chance[name]
    if perfect == base:
        return np.where(np.isnan(values), np.nan, 0.0).astype(values.dtype, copy=False)
    return np.clip((values - base) / (perfect - base), 0.0, 1.0)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input's order."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    scaled = p[order] * (len(p) - np.arange(len(p)))
    adjusted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    result = np.empty_like(adjusted)
    result[order] = adjusted
    return result
