"""The composite score and the ranking built on it.

Cheap by design: it works on what evaluation cached (point values and bootstrap replicates),
so re-ranking after a weight change costs milliseconds, not a re-evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ._config import GROUP_PHASE
from ._errors import ModelNotFoundError
from ._evaluation import ModelEvaluation, ScopeEvaluation
from ._metrics import default_weights, metric_score, validate_weights


@dataclass(frozen=True)
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

    def row(self, model_name: str) -> LeaderboardRow:
        for row in self.rows:
            if row.model_name == model_name:
                return row
        raise ModelNotFoundError(f"scope '{self.scope}' has no model '{model_name}'")

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
    ok = [m for m in evaluation.models if m.ok]
    scored = _composite(ok, chosen, evaluation.chance)
    rows: list[LeaderboardRow] = []
    unscorable: list[LeaderboardRow] = []
    for model, (point, low, high) in zip(ok, scored, strict=True):
        if np.isnan(point):
            missing = [n for n in chosen if not np.isfinite(model.metrics.get(n, np.nan))]
            unscorable.append(_failed_row(model, f"metric(s) {', '.join(missing)} could not be "
                                                 "measured (NaN), so no composite score"))
            continue
        rows.append(_ok_row(model, point, low, high))
    rows.sort(key=lambda r: (-(r.composite_score or 0.0), r.model_name))
    leader_low = rows[0].composite_interval[0] if rows else 0.0  # type: ignore[index]
    ranked = [
        _with_rank(row, i + 1, tied=i > 0 and row.composite_interval[1] >= leader_low)  # type: ignore[index]
        for i, row in enumerate(rows)
    ]
    failed = unscorable + [_failed_row(m, m.reason or "failed") for m in evaluation.models
                           if not m.ok]
    return Leaderboard(evaluation.scope, evaluation.task, chosen, ranked + failed,
                       evaluation.chance, evaluation.n_rows)


def _composite(models: list[ModelEvaluation], weights: dict[str, float],
               chance: Mapping[str, float]) -> list[tuple[float, float, float]]:
    """(composite, interval low, interval high) per model, vectorized over models."""
    if not models:
        return []
    names = list(weights)
    w = np.array([weights[n] for n in names])
    w = w / w.sum()
    points = np.array([[m.metrics.get(n, np.nan) for n in names] for m in models])
    point_scores = np.column_stack(
        [metric_score(n, points[:, j], chance) for j, n in enumerate(names)]
    )
    composite = point_scores @ w
    replicates = np.stack([_replicate_columns(m, names) for m in models])  # (M, B, K)
    rep_scores = np.stack(
        [metric_score(n, replicates[:, :, j], chance) for j, n in enumerate(names)], axis=-1
    )
    rep_composite = rep_scores @ w  # (M, B)
    low, high = np.nanpercentile(rep_composite, [2.5, 97.5], axis=1)
    return list(zip(composite.tolist(), low.tolist(), high.tolist(), strict=True))


def _replicate_columns(model: ModelEvaluation, names: list[str]) -> np.ndarray:
    reps = model.replicates
    index = {n: i for i, n in enumerate(model.replicate_names)}
    columns = []
    for name in names:
        if reps is not None and name in index:
            columns.append(reps[:, index[name]])
        else:  # a metric measured once has no sampling spread
            n_boot = reps.shape[0] if reps is not None else 1
            columns.append(np.full(n_boot, model.metrics.get(name, np.nan)))
    return np.column_stack(columns)


def _ok_row(model: ModelEvaluation, point: float, low: float, high: float) -> LeaderboardRow:
    # The interval of a percentile bootstrap need not contain the point; keep it honest but
    # ordered so the point is inside what we show.
    low, high = min(low, point), max(high, point)
    return LeaderboardRow(
        rank=None, model_name=model.model_name, model_type=model.model_type,
        group=model.group, status="ok", reason=None, composite_score=point,
        composite_interval=(low, high), health_score=low, tied_with_leader=False,
        metrics=dict(model.metrics), intervals=dict(model.intervals), sha256=model.sha256,
    )


def _with_rank(row: LeaderboardRow, rank: int, *, tied: bool) -> LeaderboardRow:
    return replace(row, rank=rank, tied_with_leader=bool(tied))


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
