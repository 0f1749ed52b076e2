"""The typed values evaluation passes between its modules and hands to its callers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from ..metrics import chance_levels, metric_score, regression_chance_levels

if TYPE_CHECKING:
    from ..scopes._discovery import Holdout

#: Called after each model: (models done, models in all, model name, came from the cache).
Progress = Callable[[int, int, str, bool], None]


@dataclass(frozen=True)
class RowPredictions:
    """A model's per-row output on the holdout (for charts, ensembles and tests): class
    probabilities (rows, classes), each row summing to 1, or for a regression model the
    predicted values (rows,)."""

    output: np.ndarray
    errors: np.ndarray  # (rows,) True where the model failed on the row or was not finite

    @property
    def proba(self) -> np.ndarray:
        """The class probabilities of a classifier."""
        if self.output.ndim != 2:
            raise TypeError("a regression model's output has no class probabilities")
        return self.output

    @property
    def predicted(self) -> np.ndarray:
        """The predicted values of a regression model."""
        if self.output.ndim != 1:
            raise TypeError("a classifier's output is class probabilities, not values")
        return self.output


@dataclass(frozen=True)
class Timing:
    """Where one model's measurement spent its time, in seconds."""

    load_s: float
    batch_s: float
    latency_s: float
    evaluation_s: float


@dataclass(frozen=True)
class Measurement:
    """One model file measured on the holdout, or the reason it could not be.

    Point values and intervals always; the bootstrap replicates and the per-row output only
    when they were measured now or read from the cache with them.
    """

    reason: str | None = None  # None: measured
    #: Failed for a reason outside the model (the file changed between hashing and loading,
    #: its process was killed from outside): not stored, so it is measured next time.
    transient: bool = False
    #: Failed because it ran longer than this limit (seconds); a higher limit measures it again.
    timeout_s: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    replicate_names: tuple[str, ...] = ()
    replicates: np.ndarray | None = None  # float32 (n_bootstrap, len(replicate_names))
    rows: RowPredictions | None = None
    timing: Timing | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    @classmethod
    def failed(cls, reason: str, *, transient: bool = False, timeout_s: float | None = None
               ) -> Measurement:
        return cls(reason=reason, transient=transient, timeout_s=timeout_s)

    def timed_out_below(self, limit_s: float) -> bool:
        """A timeout under a lower limit than ``limit_s``: it says nothing about the new one."""
        return self.timeout_s is not None and self.timeout_s < limit_s


@dataclass(frozen=True)
class HoldoutSummary:
    """What a scope's evaluation needs of its holdout rows; kept with each cached entry, so a
    scope whose every model is cached is ranked without reading its holdout.

    A classification holdout is summed up by its class counts; a regression one (no classes,
    one count) by its no-skill levels, which need every target value to compute.
    """

    classes: tuple
    counts: tuple[int, ...]
    regression_chance: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, holdout: Holdout) -> HoldoutSummary:
        chance = (tuple(regression_chance_levels(holdout.y).items())
                  if holdout.is_regression else ())
        return cls(tuple(c.item() if isinstance(c, np.generic) else c for c in holdout.classes),
                   tuple(int(n) for n in holdout.counts), chance)

    @property
    def n_rows(self) -> int:
        return sum(self.counts)

    def chance_levels(self) -> dict[str, float]:
        """Each quality metric's value for a model with no skill (``metrics`` says how)."""
        if self.regression_chance:
            return dict(self.regression_chance)
        return chance_levels(np.asarray(self.counts, dtype=np.int64))


@dataclass(frozen=True)
class ModelEvaluation:
    """What was measured for one model (or why it could not be)."""

    model_name: str
    model_type: str
    group: str
    status: str  # "ok" or "failed"
    reason: str | None
    sha256: str | None
    cache_key: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    replicate_names: tuple[str, ...] = ()
    replicates: np.ndarray | None = None  # (n_bootstrap, len(replicate_names))
    cached: bool = False
    model_file: str | None = None  # model.joblib, model.skops, ...: sizes compare within one

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class ScopeEvaluation:
    """Every model of a scope measured on the same holdout."""

    scope: str
    task: str
    classes: list
    n_rows: int
    holdout_sha256: str
    chance: dict[str, float]
    models: list[ModelEvaluation]
    evaluated: int  # how many were measured now (not from the cache)
    seconds: float
    _columns: dict[str, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def ok_models(self) -> list[ModelEvaluation]:
        return [m for m in self.models if m.ok]

    def scored_column(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """One metric over the ok models on the 0..1 score scale: points (M,) and bootstrap
        replicates (M, B), cached. Scores do not depend on weights, so a weight change only
        re-weights these. Float64: a metric measured once (no replicates) repeats its point
        value, and differences between models far below float32's resolution still count."""
        if name not in self._columns:
            ok = self.ok_models
            points = np.array([m.metrics.get(name, np.nan) for m in ok], dtype=float)
            n_boot = next((m.replicates.shape[0] for m in ok if m.replicates is not None), 1)
            reps = np.empty((len(ok), n_boot))
            for i, model in enumerate(ok):
                index = model.replicate_names.index(name) if name in model.replicate_names \
                    else None
                if model.replicates is not None and index is not None:
                    reps[i] = model.replicates[:, index]
                else:  # measured once: no sampling spread
                    reps[i] = points[i]
            self._columns[name] = (metric_score(name, points, self.chance),
                                   metric_score(name, reps, self.chance))
        return self._columns[name]

    @cached_property
    def name_order(self) -> np.ndarray:
        """Indices of the ok models sorted by name: the tie-break of every ranking."""
        names = [m.model_name for m in self.ok_models]
        return np.array(sorted(range(len(names)), key=names.__getitem__), dtype=np.intp)
