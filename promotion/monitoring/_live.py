"""The prediction log as arrays, and live metrics with their intervals per model and window.

Classification: the key metric (top-5 accuracy with a Wilson interval, AUC with Hanley and
McNeil's). Regression's RMSE and MAE are in ``_regression``.

The log is read batch by batch (``iter_batches``), never whole: per request, only what the
metrics and rules use is kept, in compact types (probabilities as float32, the per-batch facts
as categories, request ids as Arrow strings). The inputs, which only drift needs, are not kept
at all: drift streams them from the log again (``LiveData.input_batches``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..contract import ModelCard
from ..engine._predlog import (
    ENSEMBLE_CODE,
    BatchRecord,
    LogSummary,
    is_regression_batch,
    iter_batches,
    labels_of,
    log_path,
    log_paths,
    reading,
    summarize,
)
from ..evaluation._bootstrap import TOP_K
from ..vocabulary import is_regression, key_metric

if TYPE_CHECKING:  # pandas and scikit-learn load when the log is read, not with the package
    import pandas as pd

#: Columns of ``LiveData.requests``.
REQUEST_COLUMNS = ["request_id", "at", "served", "batch_id", "export", "mode", "canary",
                   "canary_share"]
_FACTS = ("export", "mode", "canary", "canary_share")
#: Rows per call of scikit-learn's top-k accuracy (see ``live_metric``).
_SLICE = 65536


@dataclass(frozen=True)
class LiveData:
    """The logged requests of a scope, with every model's probabilities and the labels, as
    one snapshot of the log (``last_batch``): batches logged later are not part of it.

    A regression log (its newest batch lists no classes) holds each model's predicted value
    as a (rows, 1) float64 column of ``probas``, the numeric outcome in ``y`` (NaN when none
    yet) and the value served to each request in ``served_values``.
    """

    requests: pd.DataFrame  # REQUEST_COLUMNS; the per-batch facts as categories
    probas: dict[str, np.ndarray]  # model -> (rows, classes) float32, NaN where not scored
    failed: dict[str, np.ndarray]  # model -> (rows,) bool
    latency: dict[str, np.ndarray]  # model -> (rows,) ms per row of its batch, NaN if absent
    y: np.ndarray  # class index per row, -1 when no outcome yet (regression: value or NaN)
    classes: list[str]
    features: list[str]
    log: Path | None = None  # the log file read
    last_batch: int | None = None  # the newest batch of the snapshot
    order: np.ndarray | None = None  # log position of each row; None: time order is log order
    regression: bool = False
    served_values: np.ndarray | None = None  # regression: (rows,) float64, NaN if absent

    @property
    def empty(self) -> bool:
        return self.requests.empty

    @property
    def labelled(self) -> np.ndarray:
        """Which requests have an outcome joined."""
        return np.isfinite(self.y) if self.regression else self.y >= 0

    def predicted(self, model: str) -> np.ndarray:
        """A regression model's logged value per request (rows,), NaN where not scored."""
        if not self.regression:
            raise TypeError("a classification log holds class probabilities: use .probas")
        return self.probas[model][:, 0]

    def input_batches(self, export: str | None = None) -> Iterator[np.ndarray]:
        """The logged inputs (rows, features) float32, batch by batch in log order (of the
        ``export`` only, if given), read from the log: monitoring never holds them all. Rows
        logged with other features than ``features`` are all missing values."""
        if self.log is None or self.last_batch is None:
            return
        with reading(self.log) as conn:
            for batch in iter_batches(conn, ("inputs",), export=export,
                                      last_id=self.last_batch, skip_empty=True):
                if batch.features == self.features:
                    yield batch.inputs
                else:
                    yield np.full((batch.rows, len(self.features)), np.nan, dtype=np.float32)

    @property
    def inputs(self) -> np.ndarray:
        """Every logged input (rows, features) float32, in ``requests`` order. Read from the
        log at each access (the whole of it in memory: drift streams instead)."""
        chunks = list(self.input_batches())
        inputs = (np.concatenate(chunks) if chunks
                  else np.zeros((0, len(self.features)), dtype=np.float32))
        return inputs if self.order is None else inputs[self.order]


def load_live(models_dir: Path, scope: str) -> LiveData:
    """Everything logged for ``scope``, in time order (empty when nothing was served yet)."""
    path = log_path(models_dir, scope)
    if not log_paths(models_dir, scope):  # read with the replicas' files, if any
        return _nothing_logged()
    with reading(path) as conn:
        summary = summarize(conn)
        if not summary.rows:
            return _nothing_logged()
        columns = _Columns(summary)
        for batch in iter_batches(conn, ("request_ids", "times", "served", "failed", "probas"),
                                  last_id=summary.last_id, skip_empty=True):
            # A label reaches every row with its request id (an id logged twice gets it twice).
            columns.add(batch, labels_of(conn, batch.request_ids))
    return columns.live(path)


def _nothing_logged() -> LiveData:
    import pandas as pd

    return LiveData(pd.DataFrame(columns=REQUEST_COLUMNS), probas={}, failed={}, latency={},
                    y=np.zeros(0, int), classes=[], features=[])


def _label_value(label: str) -> float:
    """A regression outcome as stored (its float's text); NaN if another task's label."""
    try:
        return float(label)
    except ValueError:
        return math.nan


class _Columns:
    """The arrays of a ``LiveData``, sized from the log's summary and filled batch by batch."""

    def __init__(self, summary: LogSummary) -> None:
        n, models = summary.rows, summary.models
        self.summary = summary
        self.filled = 0
        self.at = np.empty(n, dtype=np.float64)
        self.regression = is_regression_batch(summary.classes)
        self.y = (np.full(n, np.nan) if self.regression
                  else np.full(n, -1, dtype=np.int64))
        self.class_index = {c: i for i, c in enumerate(summary.classes)}
        self.served = np.empty(n, dtype=np.int16)  # index into models + ["ensemble"]
        # Regression: each model's predicted value, one float64 column.
        width, dtype = (1, np.float64) if self.regression else (len(summary.classes),
                                                                np.float32)
        self.probas = {m: np.full((n, width), np.nan, dtype=dtype) for m in models}
        self.served_values = np.full(n, np.nan) if self.regression else None
        self.failed = {m: np.zeros(n, dtype=bool) for m in models}
        self.latency = {m: np.full(n, np.nan) for m in models}
        self.request_ids: list = []  # one Arrow array per batch
        self.batches = 0
        self.batch_ids = np.empty(summary.batches, dtype=np.int64)
        self.sizes = np.empty(summary.batches, dtype=np.int64)
        # Per batch, a code per fact: a log of many small batches holds no string per batch.
        self.fact_codes = {f: np.empty(summary.batches, dtype=np.int32) for f in _FACTS}
        self.fact_values: dict[str, dict[object, int]] = {f: {} for f in _FACTS}
        self.model_code = {m: i for i, m in enumerate(models)}

    def add(self, batch: BatchRecord, labels: list[tuple[int, str]]) -> None:
        import pyarrow as pa

        k, start, stop = self.batches, self.filled, self.filled + batch.rows
        self.batch_ids[k], self.sizes[k] = batch.id, batch.rows
        for fact in _FACTS:
            values = self.fact_values[fact]
            self.fact_codes[fact][k] = values.setdefault(getattr(batch, fact), len(values))
        self.request_ids.append(pa.array(batch.request_ids, type=pa.string()))
        self.at[start:stop] = batch.at
        for position, label in labels:  # an unknown label is no outcome: -1 (NaN)
            self.y[start + position] = (_label_value(label) if self.regression
                                        else self.class_index.get(label, -1))
        codes = batch.served.astype(np.int32)
        codes[codes == ENSEMBLE_CODE] = len(batch.models)  # the lookup's last entry
        lookup = np.array([self.model_code[m] for m in batch.models]
                          + [len(self.model_code)], dtype=np.int16)
        self.served[start:stop] = lookup[codes]
        same_classes = batch.classes == self.summary.classes
        if same_classes and self.served_values is not None:
            self.served_values[start:stop] = batch.served_values
        for j, model in enumerate(batch.models):
            if same_classes:  # an export with other classes is left out
                self.probas[model][start:stop] = batch.probas[:, j]
            self.failed[model][start:stop] = batch.failed[:, j]
            self.latency[model][start:stop] = batch.latency_ms.get(model, np.nan)
        self.filled, self.batches = stop, k + 1

    def live(self, path: Path) -> LiveData:
        import pandas as pd
        import pyarrow as pa

        frame = pd.DataFrame({
            "request_id": pd.Series(pa.chunked_array(self.request_ids, type=pa.string()),
                                    dtype="str"),
            "at": pd.to_datetime(self.at, unit="s", utc=True),
            "served": _categories(self.served, [*self.model_code, "ensemble"]),
            "batch_id": np.repeat(self.batch_ids, self.sizes),
            **{fact: _categories(np.repeat(self.fact_codes[fact], self.sizes),
                                 list(self.fact_values[fact])) for fact in _FACTS}})
        probas, failed, latency, y = self.probas, self.failed, self.latency, self.y
        served_values = self.served_values
        order = None
        if not np.all(self.at[1:] >= self.at[:-1]):  # replays may be out of order
            order = np.argsort(self.at, kind="stable")
            frame = frame.iloc[order].reset_index(drop=True)
            for arrays in (probas, failed, latency):
                for model in arrays:  # one array at a time: the old one is freed at once
                    arrays[model] = arrays[model][order]
            y = y[order]
            served_values = None if served_values is None else served_values[order]
        return LiveData(frame, probas, failed, latency, y, self.summary.classes,
                        self.summary.features, path, self.summary.last_id, order,
                        self.regression, served_values)


def _categories(codes: np.ndarray, values: list) -> pd.Categorical:
    """A categorical column from per-row codes into ``values`` (None: a missing value; a
    repeated value is one category)."""
    import pandas as pd

    present = list(dict.fromkeys(v for v in values if v is not None))
    remap = np.array([present.index(v) if v is not None else -1 for v in values],
                     dtype=np.int32)
    return pd.Categorical.from_codes(remap[codes], present)


# --- live metrics ------------------------------------------------------------------------

def live_metric(proba: np.ndarray, y: np.ndarray, task: str) -> tuple[float, float, float]:
    """Top-5 accuracy (Wilson 95% interval) or AUC (Hanley–McNeil 95% interval)."""
    from sklearn.metrics import roc_auc_score, top_k_accuracy_score

    n = len(y)
    if n == 0:
        return math.nan, math.nan, math.nan
    labels = np.arange(proba.shape[1])
    if key_metric(task) == "top_5_accuracy":
        k = min(TOP_K, len(labels) - 1)
        # Hits counted a slice of rows at a time: scikit-learn sorts every row's scores (an
        # int64 per score), more memory on a large log than the probabilities themselves.
        hits = sum(top_k_accuracy_score(y[i:i + _SLICE], proba[i:i + _SLICE], k=k,
                                        labels=labels, normalize=False)
                   for i in range(0, n, _SLICE))
        value = float(hits / n)
        return (value, *wilson(round(value * n), n))
    positives = int((y == 1).sum())
    if positives in (0, n):
        return math.nan, math.nan, math.nan
    value = float(roc_auc_score(y, proba[:, 1]))
    return (value, *_hanley_mcneil(value, positives, n - positives))


def wilson(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a proportion."""
    if n == 0:
        return math.nan, math.nan
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # Rounding could leave p = 0 or 1 a hair outside its own interval.
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def _hanley_mcneil(auc: float, positives: int, negatives: int, z: float = 1.959964
                   ) -> tuple[float, float]:
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc)
           + (negatives - 1) * (q2 - auc * auc)) / (positives * negatives)
    half = z * math.sqrt(max(var, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def _paired(live: LiveData, models: list[str], rows: np.ndarray) -> np.ndarray:
    """The labeled rows among ``rows`` where every one of ``models`` has a prediction."""
    keep = rows & live.labelled
    for model in models:
        keep &= np.isfinite(live.probas[model]).all(axis=1)
    return keep


def window_metrics(live: LiveData, task: str, cards: list[ModelCard], freq: str = "D"
                   ) -> pd.DataFrame:
    """Per model and time window: outcomes, live metric with its 95% interval, health score,
    on the requests every model scored (the same requests side by side). Regression: see
    ``regression_windows``."""
    import pandas as pd

    if is_regression(task):
        from ._regression import regression_windows  # it builds on this module

        return regression_windows(live, cards, freq)
    models = [c.model_name for c in cards if c.model_name in live.probas]
    if live.empty or not models:
        return pd.DataFrame(columns=["model", "window", "outcomes", "value", "low", "high",
                                     "health_score", "holdout_low"])
    keep = _paired(live, models, np.ones(len(live.y), dtype=bool))
    windows = live.requests["at"].dt.floor(freq)
    key = key_metric(task)
    by_name = {c.model_name: c for c in cards}
    records = []
    for window in sorted(windows[keep].unique()):
        rows = keep & (windows == window).to_numpy()
        for model in models:
            value, low, high = live_metric(live.probas[model][rows], live.y[rows], task)
            card = by_name[model]
            records.append({"model": model, "window": window, "outcomes": int(rows.sum()),
                            "value": value, "low": low, "high": high,
                            "health_score": card.health_score,
                            "holdout_low": card.metrics[key].low if key in card.metrics
                            else None})
    return pd.DataFrame.from_records(records)

