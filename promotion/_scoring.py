"""The composite score and the ranking built on it.

Cheap by design: it works on what evaluation cached (point values and bootstrap replicates),
so re-ranking after a weight change costs milliseconds, not a re-evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ._config import GROUP_PHASE
from ._errors import ModelNotFoundError
from ._evaluation import ModelEvaluation, ScopeEvaluation
from ._metrics import default_weights, validate_weights

if TYPE_CHECKING:  # pandas loads where a frame is built; a cached leaderboard needs none
    import pandas as pd


class LeaderboardRow(NamedTuple):
    """One model's place on the leaderboard (immutable; a tuple, so ten thousand build fast)."""

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
    metrics: Mapping[str, float]
    intervals: Mapping[str, tuple[float, float]]
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
        import pandas as pd

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
    """Rank the evaluated models of a scope by composite score (1 = best, ties by name)."""
    chosen = resolve_weights(evaluation.task, weights)
    ok = evaluation.ok_models
    points, lows, highs = _composite(evaluation, chosen)
    # Whole-array work first, then one pass of plain Python to build the rows: per-element
    # numpy indexing dominated ranking 10,000 models.
    by_name = evaluation.name_order
    scorable = by_name[~np.isnan(points[by_name])]
    order = scorable[np.argsort(-points[scorable], kind="stable")]  # stable: names break ties
    lows, highs = np.minimum(lows, points), np.maximum(highs, points)  # must hold the point
    leader_low = lows[order[0]] if len(order) else 0.0
    tied = highs >= leader_low
    ranked = [
        LeaderboardRow(rank, model.model_name, model.model_type, model.group, "ok", None,
                       point, (low, high), low, rank > 1 and is_tied, model.metrics,
                       model.intervals, model.sha256)
        for rank, model, point, low, high, is_tied in zip(
            range(1, len(order) + 1), map(ok.__getitem__, order.tolist()),
            points[order].tolist(), lows[order].tolist(), highs[order].tolist(),
            tied[order].tolist(), strict=True)
    ]
    unscorable = [
        _failed_row(ok[i], "metric(s) " + ", ".join(
            n for n in chosen if not np.isfinite(ok[i].metrics.get(n, np.nan)))
            + " could not be measured (NaN), so no composite score")
        for i in np.flatnonzero(np.isnan(points)).tolist()
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
    total = sum(weights.values())
    composite = np.zeros(len(evaluation.ok_models))
    replicates: np.ndarray | None = None
    scratch: np.ndarray | None = None
    for name, weight in weights.items():
        points, reps = evaluation.scored_column(name)
        share = weight / total
        composite += share * points
        if replicates is None:
            replicates = reps * share
        else:  # in place: these are (M, B) arrays, temporaries would cost as much as the sum
            scratch = np.multiply(reps, share, out=scratch)
            replicates += scratch
    return composite, replicates  # type: ignore[return-value]


#: The interval's percentiles, and how they are read off sorted replicates (numpy's default
#: "linear" method: position q·(B−1), interpolated between its two neighbours).
INTERVAL_PERCENTILES = (2.5, 97.5)


def percentile_interval(replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2.5th and 97.5th percentiles along the last axis, ignoring NaN replicates.

    Read off one vectorized sort of all rows: on 10,000 models that is twice as fast as
    ``np.percentile``, which partitions around four pivots per row.
    """
    finite = ~np.isnan(replicates).any(axis=-1)
    low = np.full(replicates.shape[:-1], np.nan)
    high = np.full(replicates.shape[:-1], np.nan)
    if finite.all():  # the usual case: every resample had a value
        low, high = _sorted_percentiles(np.sort(replicates, axis=-1))
    elif finite.any():
        low[finite], high[finite] = _sorted_percentiles(np.sort(replicates[finite], axis=-1))
    if (~finite).any():  # a few resamples without a value (e.g. one class drawn): skip them
        low[~finite], high[~finite] = np.nanpercentile(replicates[~finite],
                                                       INTERVAL_PERCENTILES, axis=-1)
    return low, high


def _sorted_percentiles(ordered: np.ndarray) -> list[np.ndarray]:
    """INTERVAL_PERCENTILES of rows already sorted along the last axis, in float64."""
    last = ordered.shape[-1] - 1
    values = []
    for q in INTERVAL_PERCENTILES:
        position = q / 100 * last
        below = int(np.floor(position))
        above = min(below + 1, last)
        a = ordered[..., below].astype(float)
        b = ordered[..., above].astype(float)
        values.append(a + (b - a) * (position - below))
    return values


def _failed_row(model: ModelEvaluation, reason: str) -> LeaderboardRow:
    return LeaderboardRow(
        rank=None, model_name=model.model_name, model_type=model.model_type,
        group=model.group, status="failed", reason=reason, composite_score=None,
        composite_interval=None, health_score=None, tied_with_leader=False, metrics={},
        intervals={}, sha256=model.sha256,
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
