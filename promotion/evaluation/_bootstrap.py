"""One model's metrics from its holdout output: point values by scikit-learn, and bootstrap
replicates from per-row statistics.

The resampled rows are the same for every model of a scope (one seed), so differences between
models are paired. Each per-row statistic's unweighted mean equals scikit-learn's value (the
tests check it), so a replicate is the metric on a resample.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..metrics import get_metric_names
from ..vocabulary import is_regression, key_metric

#: The k of top-k accuracy (the seed's top-5).
TOP_K = 5
#: Measured once, not sampled: their replicates repeat the point value.
EXACT_METRICS = ("artifact_size_mb", "load_memory_mb")


@dataclass(frozen=True)
class Replicates:
    """Bootstrap replicates of a model's metrics: one column per name."""

    names: tuple[str, ...]
    values: np.ndarray  # (n_bootstrap, len(names))

    def intervals(self) -> dict[str, tuple[float, float]]:
        """Each metric's 95% percentile interval (resamples without a value skipped)."""
        if not len(self.values):
            return {}
        low, high = np.nanpercentile(self.values, [2.5, 97.5], axis=0)
        return {name: (float(lo), float(hi))
                for name, lo, hi in zip(self.names, low, high, strict=True)}


def _top_k_accuracy(y: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import top_k_accuracy_score

    return float(top_k_accuracy_score(y, proba, k=min(TOP_K, len(labels) - 1), labels=labels))


def _roc_auc(y: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, proba[:, 1]))


#: How each task's key metric (``vocabulary.key_metric``) is measured.
_KEY_METRIC_SCORERS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "top_5_accuracy": _top_k_accuracy, "roc_auc": _roc_auc}


def point_metrics(proba: np.ndarray, errors: np.ndarray, y: np.ndarray, task: str
                  ) -> dict[str, float]:
    """The quality metrics of class probabilities against class indices, by scikit-learn."""
    # Imported here, not at the top: scikit-learn and the SciPy under it take over a second to
    # import, and a leaderboard served from the cache never measures (the app's first page).
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, log_loss

    labels = np.arange(proba.shape[1])
    predicted = proba.argmax(axis=1)
    with warnings.catch_warnings():
        # Classes never seen in the holdout's truth are excluded from balanced accuracy.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        metrics = {
            "accuracy": float(accuracy_score(y, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
            "log_loss": float(log_loss(y, y_proba=proba, labels=labels)),
            "error_rate": float(errors.mean()),
        }
    key = key_metric(task)
    metrics[key] = _KEY_METRIC_SCORERS[key](y, proba, labels)
    return metrics


def row_statistics(proba: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row quantities whose means are the metrics (the bootstrap resamples these)."""
    predicted = proba.argmax(axis=1)
    k = min(TOP_K, proba.shape[1] - 1)
    # The same ordering scikit-learn's top_k_accuracy_score uses, so ties break alike.
    top = np.argsort(proba, axis=1, kind="mergesort")[:, ::-1][:, :k]
    eps = np.finfo(np.float64).eps
    p_true = np.clip(proba[np.arange(len(y)), y], eps, 1 - eps)
    return {
        "correct": (predicted == y).astype(float),
        "top_k_hit": (top == y[:, None]).any(axis=1).astype(float),
        "loss": -np.log(p_true),
    }


def regression_point_metrics(predicted: np.ndarray, errors: np.ndarray, y: np.ndarray
                             ) -> dict[str, float]:
    """The quality metrics of predicted values against the holdout's targets, by
    scikit-learn."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {"rmse": float(np.sqrt(mean_squared_error(y, predicted))),
            "mae": float(mean_absolute_error(y, predicted)),
            "r2": float(r2_score(y, predicted)),
            "error_rate": float(errors.mean())}


def bootstrap_counts(n_rows: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """How often each row is drawn in each resample: (n_bootstrap, n_rows), shared by models."""
    rng = np.random.default_rng([seed, n_rows])
    draws = rng.integers(0, n_rows, size=(n_bootstrap, n_rows))
    offsets = (np.arange(n_bootstrap) * n_rows)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_bootstrap * n_rows).reshape(
        n_bootstrap, n_rows).astype(np.float64)


def weighted_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of ``weights`` (resample counts), ties counted half."""
    order = np.argsort(score, kind="mergesort")
    ordered = score[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    w = weights[:, order]
    pos = positive[order].astype(bool)
    pos_w = np.add.reduceat(w * pos, starts, axis=1)
    neg_w = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(neg_w, axis=1) - neg_w
    numerator = (pos_w * (below + 0.5 * neg_w)).sum(axis=1)
    denominator = pos_w.sum(axis=1) * neg_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / denominator


def weighted_balanced_accuracy(correct: np.ndarray, y: np.ndarray, n_classes: int,
                               weights: np.ndarray) -> np.ndarray:
    """Balanced accuracy for each row of ``weights``; classes absent from a resample skipped."""
    onehot = np.zeros((len(y), n_classes))
    onehot[np.arange(len(y)), y] = 1.0
    support = weights @ onehot
    hits = weights @ (onehot * correct[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
    return np.nanmean(recall, axis=1)


def bootstrap_replicates(proba: np.ndarray, errors: np.ndarray, y: np.ndarray, task: str, *,
                         latencies: np.ndarray, chunk_seconds: np.ndarray,
                         chunk_rows: np.ndarray, exact: dict[str, float], n_bootstrap: int,
                         seed: int) -> Replicates:
    """Every metric of ``task`` on ``n_bootstrap`` resamples. ``proba`` is the model's
    output: class probabilities (rows, classes), or for regression predicted values (rows,)
    against numeric targets ``y``.

    Quality metrics resample the holdout rows (the same rows for every model); latency
    resamples the timed single-row calls, throughput the timed batch chunks; ``exact`` holds
    the values measured once (size, memory), repeated.
    """
    weights = bootstrap_counts(len(y), n_bootstrap, seed)
    columns = (_regression_columns(proba, y, weights) if is_regression(task)
               else _classification_columns(proba, y, task, weights))
    columns["error_rate"] = weights @ errors.astype(float) / len(y)
    rng = np.random.default_rng([seed, len(latencies), 1])
    resampled = latencies[rng.integers(0, len(latencies), size=(n_bootstrap, len(latencies)))]
    columns["latency_p50_ms"] = np.percentile(resampled, 50, axis=1)
    columns["latency_p95_ms"] = np.percentile(resampled, 95, axis=1)
    picks = rng.integers(0, len(chunk_seconds), size=(n_bootstrap, len(chunk_seconds)))
    columns["throughput_rows_s"] = (chunk_rows[picks].sum(axis=1)
                                    / np.maximum(chunk_seconds[picks].sum(axis=1), 1e-9))
    for name in EXACT_METRICS:
        columns[name] = np.full(n_bootstrap, exact[name])
    names = tuple(name for name in get_metric_names(task) if name in columns)
    return Replicates(names, np.column_stack([columns[name] for name in names]))


def _classification_columns(proba: np.ndarray, y: np.ndarray, task: str, weights: np.ndarray
                            ) -> dict[str, np.ndarray]:
    n = len(y)
    stats = row_statistics(proba, y)
    key_replicates = {
        "top_5_accuracy": lambda: weights @ stats["top_k_hit"] / n,
        "roc_auc": lambda: weighted_auc(proba[:, 1], y == 1, weights),
    }
    columns = {
        "accuracy": weights @ stats["correct"] / n,
        "balanced_accuracy": weighted_balanced_accuracy(stats["correct"], y, proba.shape[1],
                                                        weights),
        "log_loss": weights @ stats["loss"] / n,
    }
    key = key_metric(task)
    columns[key] = key_replicates[key]()
    return columns


def _regression_columns(predicted: np.ndarray, y: np.ndarray, weights: np.ndarray
                        ) -> dict[str, np.ndarray]:
    """RMSE, MAE and R² on each resample (``weights``: how often each row is drawn). R²'s
    baseline is each resample's own mean, as scikit-learn's ``r2_score`` on it would be."""
    n = len(y)
    miss = predicted - y
    squared = weights @ (miss ** 2)
    # Σw(y − ȳ_w)² = Σw·c² − (Σw·c)²/Σw, with Σw = n for every resample; on c = y − ȳ, so
    # targets far from 0 (prices) lose no precision to cancellation.
    centred = y - y.mean()
    spread = weights @ (centred ** 2) - (weights @ centred) ** 2 / n
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(spread > 0, 1.0 - squared / spread, np.nan)
    return {"rmse": np.sqrt(squared / n), "mae": weights @ np.abs(miss) / n, "r2": r2}
