"""Tables behind the charts that help judge models: confusion, ROC, Pareto front, groups."""

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


def group_summary(board: Leaderboard) -> pd.DataFrame:
    """Per group: how many models rank, their average, best and median composite."""
    import pandas as pd

    frame = board.to_frame()
    frame = frame[frame["status"] == "ok"]
    if frame.empty:
        return pd.DataFrame(columns=["group", "models", "average", "best", "median"])
    table = frame.groupby("group")["composite_score"].agg(
        models="size", average="mean", best="max", median="median")
    return table.sort_values("average", ascending=False).reset_index()


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
