"""The prediction log as arrays, and live metrics with their intervals per model and window."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..contract import ModelCard
from ..engine._predlog import log_path, read_batches, read_outcomes
from ..evaluation._bootstrap import TOP_K
from ..vocabulary import key_metric

if TYPE_CHECKING:  # pandas and scikit-learn load when the log is read, not with the package
    import pandas as pd


@dataclass(frozen=True)
class LiveData:
    """The logged requests of a scope, with every model's probabilities and the labels."""

    requests: pd.DataFrame  # request_id, at (UTC), served, batch_id, export, mode, canary, ...
    probas: dict[str, np.ndarray]  # model -> (rows, classes), NaN where not scored
    failed: dict[str, np.ndarray]  # model -> (rows,) bool
    latency: dict[str, np.ndarray]  # model -> (rows,) ms per row of its batch, NaN if absent
    y: np.ndarray  # class index per row, -1 when no outcome yet
    classes: list[str]
    features: list[str]
    inputs: np.ndarray  # (rows, features) float32

    @property
    def empty(self) -> bool:
        return self.requests.empty


def load_live(models_dir: Path, scope: str) -> LiveData:
    """Everything logged for ``scope``, in time order (empty when nothing was served yet)."""
    import pandas as pd

    path = log_path(models_dir, scope)
    batches = [b for b in read_batches(path) if len(b.request_ids)]
    if not batches:
        return LiveData(pd.DataFrame(columns=["request_id", "at", "served", "batch_id",
                                              "export", "mode", "canary", "canary_share"]),
                        {}, {}, {}, np.zeros(0, int), [], [], np.zeros((0, 0), np.float32))
    classes, features = batches[-1].classes, batches[-1].features
    sizes = [len(b.request_ids) for b in batches]
    n, offsets = sum(sizes), np.cumsum([0, *sizes])
    probas: dict[str, np.ndarray] = {}
    failed: dict[str, np.ndarray] = {}
    latency: dict[str, np.ndarray] = {}
    inputs = np.full((n, len(features)), np.nan, dtype=np.float32)
    for batch, start, stop in zip(batches, offsets[:-1], offsets[1:], strict=True):
        for k, model in enumerate(batch.models):
            if model not in probas:
                probas[model] = np.full((n, len(classes)), np.nan)
                failed[model] = np.zeros(n, dtype=bool)
                latency[model] = np.full(n, np.nan)
            if batch.classes == classes:  # an export with other classes is left out
                probas[model][start:stop] = batch.probas[:, k]
            failed[model][start:stop] = batch.failed[:, k]
            latency[model][start:stop] = batch.latency_ms.get(model, np.nan)
        if batch.features == features:
            inputs[start:stop] = batch.inputs
    frame = pd.DataFrame({
        "request_id": [i for b in batches for i in b.request_ids],
        "at": pd.to_datetime(np.concatenate([b.at for b in batches]), unit="s", utc=True),
        "served": [s for b in batches for s in b.served],
        "batch_id": np.repeat([b.id for b in batches], sizes),
        **{fact: np.repeat(np.array([getattr(b, fact) for b in batches], dtype=object), sizes)
           for fact in ("export", "mode", "canary", "canary_share")}})
    index = {c: i for i, c in enumerate(classes)}
    labels = read_outcomes(path)
    y = np.array([index.get(labels.get(i, ""), -1) for i in frame["request_id"]])
    order = np.argsort(frame["at"].to_numpy(), kind="stable")  # replays may be out of order
    frame = frame.iloc[order].reset_index(drop=True)
    return LiveData(frame, {m: p[order] for m, p in probas.items()},
                    {m: f[order] for m, f in failed.items()},
                    {m: t[order] for m, t in latency.items()}, y[order], classes, features,
                    inputs[order])


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
        value = float(top_k_accuracy_score(y, proba, k=k, labels=labels))
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
    keep = rows & (live.y >= 0)
    for model in models:
        keep &= np.isfinite(live.probas[model]).all(axis=1)
    return keep


def window_metrics(live: LiveData, task: str, cards: list[ModelCard], freq: str = "D"
                   ) -> pd.DataFrame:
    """Per model and time window: outcomes, live metric with its 95% interval, health score,
    on the requests every model scored (the same requests side by side)."""
    import pandas as pd

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
