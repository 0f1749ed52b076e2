"""Real models that misbehave, pickled with joblib into factory scopes.

Each class is a working nearest-centroid classifier with the scikit-learn API (``classes_``,
``feature_names_in_``, ``n_features_in_``, ``predict_proba``) that breaks exactly one thing.
They need only numpy, and live in an importable module (not a test file) so that the worker
processes evaluation runs them in can unpickle them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from factories import make_data, write_model


class Centroid:
    """A well-behaved classifier: softmax of the negative squared distance to each class's
    mean. The misbehaving ones below are this one with one fault."""

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Centroid:
        self._labels = np.unique(y)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        values = X.to_numpy(dtype=float)
        self.centroids_ = np.stack([values[y == label].mean(axis=0) for label in self._labels])
        return self

    @property
    def classes_(self) -> np.ndarray:
        return self._labels

    def proba(self, X: pd.DataFrame) -> np.ndarray:
        distances = ((X.to_numpy(dtype=float)[:, None, :] - self.centroids_[None]) ** 2).sum(-1)
        scores = np.exp(-(distances - distances.min(axis=1, keepdims=True)) / 10)
        return scores / scores.sum(axis=1, keepdims=True)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.proba(X)


class RaisesInPredict(Centroid):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raise RuntimeError("the model's own bug")


class ReturnsZeros(Centroid):
    """Every row all zeros: no probability at all."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.zeros_like(self.proba(X))


class ZeroRows(Centroid):
    """A row of zeros for every 50th holdout row (by index), good rows elsewhere."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        out = self.proba(X)
        out[np.asarray(X.index) % 50 == 0] = 0.0
        return out


class ClassesRaise(Centroid):
    @property
    def classes_(self) -> np.ndarray:
        raise RuntimeError("classes_ is broken")


class FeatureNamesNumber(Centroid):
    def fit(self, X: pd.DataFrame, y: np.ndarray) -> FeatureNamesNumber:
        super().fit(X, y)
        self.feature_names_in_ = 12345
        return self


class ExitsInPredict(Centroid):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        os._exit(1)


class SegfaultsInPredict(Centroid):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        ctypes.string_at(0)  # reads address 0: SIGSEGV
        raise AssertionError("unreachable")


class SystemExitInPredict(Centroid):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        raise SystemExit(3)


class KilledInPredict(Centroid):
    """SIGKILL, as the kernel's out-of-memory killer or an operator would send it."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)
        raise AssertionError("unreachable")


class SleepsInPredict(Centroid):
    """Sleeps ``seconds`` in its first predict_proba call (after touching ``marker``)."""

    def __init__(self, seconds: float = 3600, marker: Path | None = None) -> None:
        self.seconds = seconds
        self.marker = None if marker is None else str(marker)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if not getattr(self, "_slept", False):
            self._slept = True
            if self.marker is not None:
                Path(self.marker).write_text(str(os.getpid()))
            time.sleep(self.seconds)
        return self.proba(X)


class RecordsItsProcess(Centroid):
    """Writes the id of the process that runs predict_proba to ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        Path(self.marker).write_text(str(os.getpid()))
        return self.proba(X)


class WaitsForAnother(Centroid):
    """In its first predict_proba call, says it started (file ``me`` in ``folder``) and waits
    up to ``bound_s`` for the model ``other`` to say so too: both meet only when they run at
    the same time. Whether it met the other is written to ``me.met``."""

    def __init__(self, folder: Path, me: str, other: str, bound_s: float = 120) -> None:
        self.folder, self.me, self.other, self.bound_s = str(folder), me, other, bound_s

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if not getattr(self, "_waited", False):
            self._waited = True
            folder = Path(self.folder)
            (folder / self.me).touch()
            deadline = time.monotonic() + self.bound_s
            while not (folder / self.other).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            (folder / f"{self.me}.met").write_text(str((folder / self.other).exists()))
        return self.proba(X)


class WrongShape(Centroid):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.proba(X)[:, :-1]


class NaNEverywhere(Centroid):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.full_like(self.proba(X), np.nan)


class NegativeEverywhere(Centroid):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return -self.proba(X)


class SumsToFive(Centroid):
    """Right ranking of classes, rows summing to 5."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return 5 * self.proba(X)


def write_misbehaving(scope_dir: Path, name: str, model: Centroid, *, task: str = "multiclass",
                      n_rows: int = 600) -> Path:
    """Fit ``model`` on the training half of the data ``make_scope`` builds the scope from
    (same task and rows) and save it as the model folder ``name``; returns the folder."""
    X, y = make_data(task, n_rows)
    split = n_rows // 2
    fitted: Any = model.fit(X.iloc[:split], y[:split])
    return write_model(scope_dir, name, fitted, model_type=type(model).__name__.lower(),
                       group="linear")


class FailsOnSomeRows:
    """A regressor wrapping a fitted one that gives NaN where ``column`` is above
    ``threshold`` (as a model with an overflow on large inputs would)."""

    def __init__(self, inner: Any, column: str, threshold: float) -> None:
        self.inner, self.column, self.threshold = inner, column, threshold
        self.feature_names_in_ = inner.feature_names_in_
        self.n_features_in_ = inner.n_features_in_

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        values = self.inner.predict(X)
        return np.where(X[self.column].to_numpy() > self.threshold, np.nan, values)
