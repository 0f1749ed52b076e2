"""Tables behind the charts that help judge models: confusion, ROC, Pareto front, groups;
for regression, predicted against actual and the residuals by feature bin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..metrics import get_metric, metric_score
from ._composite import Leaderboard

if TYPE_CHECKING:  # pandas and scikit-learn load where a table is built, not with the package
    import pandas as pd

    from ..evaluation._results import RowPredictions
    from ..scopes._config import ErrorCosts
    from ..scopes._discovery import Holdout


def confusion_table(rows: RowPredictions, holdout: Holdout) -> pd.DataFrame:
    """Share of each true class (rows) predicted as each class (columns); rows sum to 1."""
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    labels = np.arange(len(holdout.classes))
    counts = confusion_matrix(holdout.y_index, rows.proba.argmax(axis=1), labels=labels)
    support = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(support > 0, counts / support, np.nan)
    names = [str(c) for c in holdout.classes]
    return pd.DataFrame(shares, index=pd.Index(names, name="true"),
                        columns=pd.Index(names, name="predicted"))


def per_class_accuracy(rows: RowPredictions, holdout: Holdout) -> pd.DataFrame:
    """Recall of each class with its number of holdout rows."""
    import pandas as pd

    correct = rows.proba.argmax(axis=1) == holdout.y_index
    n_classes = len(holdout.classes)
    support = np.bincount(holdout.y_index, minlength=n_classes)
    hits = np.bincount(holdout.y_index, weights=correct, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(support > 0, hits / support, np.nan)
    return pd.DataFrame({"class": [str(c) for c in holdout.classes], "rows": support,
                         "accuracy": accuracy})


def roc_table(rows: RowPredictions, holdout: Holdout) -> pd.DataFrame:
    """The ROC curve of a binary model: false and true positive rates by threshold."""
    import pandas as pd
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(holdout.y_index, rows.proba[:, 1])
    return pd.DataFrame({"false_positive_rate": fpr, "true_positive_rate": tpr,
                         "threshold": thresholds})


@dataclass(frozen=True)
class ThresholdOutcome:
    """What a binary model's decisions at one threshold give on the holdout."""

    threshold: float
    positive_class: object
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int
    cost: float | None  # total, with the scope's error_costs; None without them

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else float("nan")

    @property
    def recall(self) -> float:
        actual = self.true_positives + self.false_negatives
        return self.true_positives / actual if actual else float("nan")

    @property
    def flagged(self) -> int:
        return self.true_positives + self.false_positives


def threshold_outcome(rows: RowPredictions, holdout: Holdout, threshold: float,
                      costs: ErrorCosts | None = None) -> ThresholdOutcome:
    """Precision, recall and (with ``costs``) the cost of calling a holdout row positive where
    the positive class's probability reaches ``threshold`` (the positive class is the last of
    the holdout's classes)."""
    predicted = rows.proba[:, 1] >= threshold
    actual = holdout.y_index == 1
    tp, fp = int((predicted & actual).sum()), int((predicted & ~actual).sum())
    fn, tn = int((~predicted & actual).sum()), int((~predicted & ~actual).sum())
    cost = None if costs is None else fp * costs.false_positive + fn * costs.false_negative
    return ThresholdOutcome(threshold, holdout.classes[1], tp, fp, fn, tn, cost)


def pareto_front(scores: Sequence[float], costs: Sequence[float]) -> np.ndarray:
    """True where no other point has a higher-or-equal score at a lower-or-equal cost (and is
    strictly better in one)."""
    score = np.asarray(scores, dtype=float)
    cost = np.asarray(costs, dtype=float)
    on_front = np.zeros(len(score), dtype=bool)
    best_score = -np.inf
    for i in np.lexsort((-score, cost)):  # cheapest first, best score first among equals
        if score[i] > best_score:
            on_front[i] = True
            best_score = score[i]
    return on_front


def group_summary(board: Leaderboard, metric: str = "composite_score") -> pd.DataFrame:
    """Per group: how many models rank, their average, best and median ``metric`` (the
    composite, or a metric's value, whose direction says which is best), best groups first."""
    import pandas as pd

    frame = board.to_frame()
    frame = frame[frame["status"] == "ok"]
    if frame.empty or metric not in frame:
        return pd.DataFrame(columns=["group", "models", "average", "best", "median"])
    higher = metric == "composite_score" or get_metric(metric).greater_is_better
    table = frame.groupby("group")[metric].agg(
        models="size", average="mean", best="max" if higher else "min", median="median")
    return table.sort_values("average", ascending=not higher).reset_index()


def metric_score_table(board: Leaderboard, model_names: Sequence[str],
                       metric_names: Sequence[str]) -> pd.DataFrame:
    """Long table of model × metric with the raw value, its interval and its 0–1 score."""
    import pandas as pd

    records = []
    for name in model_names:
        row = board.row(name)
        for metric in metric_names:
            value = row.metrics.get(metric, np.nan)
            low, high = row.intervals.get(metric, (np.nan, np.nan))
            score = float(metric_score(metric, np.array([value]), board.chance)[0])
            records.append({"model_name": name, "metric": metric,
                            "label": get_metric(metric).label, "unit": get_metric(metric).unit,
                            "value": value, "low": low,
                            "high": high, "score": score})
    return pd.DataFrame.from_records(records)


def predicted_against_actual(rows: RowPredictions, holdout: Holdout) -> pd.DataFrame:
    """Each holdout row's actual and predicted value and its residual (predicted − actual) of
    a regression model; ``failed`` marks the rows it failed on, scored as its own mean."""
    import pandas as pd

    predicted = rows.predicted
    return pd.DataFrame({"actual": holdout.y, "predicted": predicted,
                         "residual": predicted - holdout.y, "failed": rows.errors.astype(bool)})


#: Numeric features with more distinct values are cut into this many quantile bins (the
#: quartiles of the slice analysis); fewer, and each value is a bin.
RESIDUAL_BINS = 4
FEW_VALUES = 12


def feature_bins(series: pd.Series) -> list[tuple[str, np.ndarray]]:
    """A feature's bins in their natural order, as (label, row mask): quantile bins
    ``[low, high)`` (the last one closed) of a numeric feature, each value of a feature with
    few values, each of a category's most frequent values (the rest together), and the rows
    where it is missing."""
    import pandas as pd

    missing = series.isna().to_numpy()
    found: list[tuple[str, np.ndarray]] = []
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        labels = series.astype(str).to_numpy(dtype=object)
        counts = pd.Series(labels[~missing]).value_counts()
        common = sorted(counts.index[:FEW_VALUES].tolist())  # the most frequent, by name
        found = [(f"= {value}", ~missing & (labels == value)) for value in common]
        rest = ~missing & ~np.isin(labels, common)
        if rest.any():
            found.append((f"other ({len(counts) - len(common)} values)", rest))
    else:
        values = series.to_numpy(dtype=float)
        distinct = np.unique(values[~missing])
        if len(distinct) <= FEW_VALUES:
            found = [(f"= {value:g}", values == value) for value in distinct]
        else:
            edges = np.unique(np.quantile(values[~missing],
                                          np.linspace(0, 1, RESIDUAL_BINS + 1)))
            bins = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
            last = len(edges) - 2
            found = [(f"[{edges[b]:.4g}, {edges[b + 1]:.4g}{']' if b == last else ')'}",
                      ~missing & (bins == b)) for b in range(len(edges) - 1)]
    return found + ([("missing", missing)] if missing.any() else [])


def residuals_by_feature(rows: RowPredictions, holdout: Holdout) -> pd.DataFrame:
    """Where a regression model is biased: for each bin of each feature (``feature_bins``),
    its rows, the mean residual (predicted − actual; above 0 it over-predicts there) and that
    mean's 95% t interval. Rows the model failed on are left out: their value is a stand-in,
    not the model's. The slice analysis tests these biases (Holm-corrected); this table shows
    them all, tested or not."""
    import pandas as pd
    from scipy import stats  # here: SciPy's import is slow and a table is drawn on demand

    kept = ~rows.errors.astype(bool)
    residual = rows.predicted - holdout.y
    records = []
    for column in holdout.features.columns:
        for order, (label, mask) in enumerate(feature_bins(holdout.features[column])):
            chosen = residual[mask & kept]
            n = len(chosen)
            mean = float(chosen.mean()) if n else float("nan")
            margin = (float(stats.t.ppf(0.975, n - 1) * chosen.std(ddof=1) / np.sqrt(n))
                      if n > 1 else float("nan"))
            records.append({"feature": str(column), "bin": label, "order": order, "rows": n,
                            "mean_residual": mean, "low": mean - margin,
                            "high": mean + margin})
    columns = ["feature", "bin", "order", "rows", "mean_residual", "low", "high"]
    return pd.DataFrame.from_records(records, columns=columns)
