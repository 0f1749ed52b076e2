"""The composite score and the ranking built on it.

Cheap by design: it works on what evaluation cached (point values and bootstrap replicates),
so re-ranking after a weight change costs milliseconds, not a re-evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ._config import GROUP_PHASE
from ._errors import ModelNotFoundError
from ._evaluation import ModelEvaluation, ScopeEvaluation
from ._metrics import default_weights, metric_score, validate_weights


@dataclass(frozen=True, slots=True)
class LeaderboardRow:
    """One model's place on the leaderboard."""

    rank: int | None
    model_name: str
    model_type: str
    group: str
    status: str
    reason: str | None
    composite_score: float | None
    composite_interval: tuple[float, float] | None
    health_score: float | None
    tied_with_leader: bool
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    sha256: str | None = None

    @property
    def phase(self) -> str:
        return GROUP_PHASE.get(self.group, "?")

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Leaderboard:
    """Every model of a scope ranked by composite score; failed models last, unranked."""

    scope: str
    task: str
    weights: dict[str, float]
    rows: list[LeaderboardRow]
    chance: dict[str, float]
    n_rows: int

    @property
    def ranked(self) -> list[LeaderboardRow]:
        return [row for row in self.rows if row.ok]

    @property
    def leader(self) -> LeaderboardRow | None:
        ranked = self.ranked
        return ranked[0] if ranked else None

    @cached_property
    def _by_name(self) -> dict[str, LeaderboardRow]:
        return {row.model_name: row for row in self.rows}

    def __contains__(self, model_name: object) -> bool:
        return model_name in self._by_name

    def row(self, model_name: str) -> LeaderboardRow:
        try:
            return self._by_name[model_name]
        except KeyError:
            raise ModelNotFoundError(f"scope '{self.scope}' has no model '{model_name}'") \
                from None

    def to_dict(self) -> dict[str, Any]:
        """The leaderboard as plain JSON-ready data (the ``leaderboard --json`` output)."""
        return {
            "scope": self.scope, "task": self.task, "weights": self.weights,
            "holdout_rows": self.n_rows, "chance_levels": self.chance,
            "models": [_row_dict(row) for row in self.rows],
        }

    def to_frame(self) -> pd.DataFrame:
        """One line per model: identity, score, interval and every metric."""
        records = []
        for row in self.rows:
            low, high = row.composite_interval or (None, None)
            records.append({
                "rank": row.rank, "model_name": row.model_name, "model_type": row.model_type,
                "group": row.group, "phase": row.phase, "status": row.status,
                "reason": row.reason, "composite_score": row.composite_score,
                "composite_low": low, "composite_high": high,
                "health_score": row.health_score, "tied_with_leader": row.tied_with_leader,
                **row.metrics,
            })
        return pd.DataFrame.from_records(records)


def resolve_weights(task: str, weights: Mapping[str, float] | None) -> dict[str, float]:
    """The weights to rank with: validated, zero weights dropped, defaults when none."""
    chosen = validate_weights(weights if weights else default_weights(task), task)
    return {name: float(w) for name, w in chosen.items() if w > 0}


def rank_models(evaluation: ScopeEvaluation, weights: Mapping[str, float] | None = None
                ) -> Leaderboard:
    """Rank the evaluated models of a scope by composite score (1 = best)."""
    chosen = resolve_weights(evaluation.task, weights)
    ok = evaluation.ok_models
    points, lows, highs = _composite(evaluation, chosen)
    # Plain floats from here: per-element numpy indexing dominated ranking 10,000 models.
    nan = np.isnan(points)
    point_list, low_list, high_list = points.tolist(), lows.tolist(), highs.tolist()
    order = sorted(np.flatnonzero(~nan).tolist(),
                   key=lambda i: (-point_list[i], ok[i].model_name))
    leader_low = min(low_list[order[0]], point_list[order[0]]) if order else 0.0
    ranked = [
        _ok_row(ok[i], rank, point_list[i], low_list[i], high_list[i],
                tied=rank > 1 and max(high_list[i], point_list[i]) >= leader_low)
        for rank, i in enumerate(order, start=1)
    ]
    unscorable = [
        _failed_row(ok[i], "metric(s) " + ", ".join(
            n for n in chosen if not np.isfinite(ok[i].metrics.get(n, np.nan)))
            + " could not be measured (NaN), so no composite score")
        for i in np.flatnonzero(nan).tolist()
    ]
    failed = unscorable + [_failed_row(m, m.reason or "failed") for m in evaluation.models
                           if not m.ok]
    return Leaderboard(evaluation.scope, evaluation.task, chosen, ranked + failed,
                       evaluation.chance, evaluation.n_rows)


def _composite(evaluation: ScopeEvaluation, weights: dict[str, float]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(composite, interval low, interval high) per ok model, vectorized over models."""
    if not evaluation.ok_models:
        empty = np.empty(0)
        return empty, empty, empty
    composite, replicates = composite_replicates(evaluation, weights)
    low, high = percentile_interval(replicates)
    return composite, low, high


def composite_replicates(evaluation: ScopeEvaluation, weights: Mapping[str, float]
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Composite per ok model (M,) and its bootstrap replicates (M, B): the same resampled
    rows for every model, so differences between models are paired."""
    weights = resolve_weights(evaluation.task, weights)
    n_ok = len(evaluation.ok_models)
    total = sum(weights.values())
    composite = np.zeros(n_ok)
    replicates: np.ndarray | None = None
    for name, weight in weights.items():
        points, reps = evaluation.metric_column(name)
        share = weight / total
        composite += share * metric_score(name, points, evaluation.chance)
        scored = share * metric_score(name, reps, evaluation.chance)
        replicates = scored if replicates is None else replicates + scored
    return composite, replicates  # type: ignore[return-value]


def percentile_interval(replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5th and 97.5th percentiles along the last axis, ignoring NaN replicates."""
    finite = ~np.isnan(replicates).any(axis=-1)
    low = np.full(replicates.shape[:-1], np.nan)
    high = np.full(replicates.shape[:-1], np.nan)
    if finite.any():  # the fast path: numpy's vectorized percentile
        low[finite], high[finite] = np.percentile(replicates[finite], [2.5, 97.5], axis=-1)
    if (~finite).any():  # a few resamples without a value (e.g. one class drawn): skip them
        low[~finite], high[~finite] = np.nanpercentile(replicates[~finite], [2.5, 97.5],
                                                       axis=-1)
    return low, high


def _ok_row(model: ModelEvaluation, rank: int, point: float, low: float, high: float, *,
            tied: bool) -> LeaderboardRow:
    # A percentile interval need not contain the point estimate; widen it so it does.
    low, high = min(low, point), max(high, point)
    return LeaderboardRow(
        rank=rank, model_name=model.model_name, model_type=model.model_type,
        group=model.group, status="ok", reason=None, composite_score=point,
        composite_interval=(low, high), health_score=low, tied_with_leader=bool(tied),
        metrics=model.metrics, intervals=model.intervals, sha256=model.sha256,
    )


def _failed_row(model: ModelEvaluation, reason: str) -> LeaderboardRow:
    return LeaderboardRow(
        rank=None, model_name=model.model_name, model_type=model.model_type,
        group=model.group, status="failed", reason=reason, composite_score=None,
        composite_interval=None, health_score=None, tied_with_leader=False,
        sha256=model.sha256,
    )


def _row_dict(row: LeaderboardRow) -> dict[str, Any]:
    return {
        "rank": row.rank, "model_name": row.model_name, "model_type": row.model_type,
        "group": row.group, "phase": row.phase, "status": row.status, "reason": row.reason,
        "composite_score": row.composite_score,
        "composite_interval": list(row.composite_interval) if row.composite_interval else None,
        "health_score": row.health_score, "tied_with_leader": row.tied_with_leader,
        "metrics": row.metrics,
        "intervals": {k: list(v) for k, v in row.intervals.items()},
        "sha256": row.sha256,
    }
