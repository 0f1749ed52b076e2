"""Promotion gates: the checks a stage transition must pass, each with its evidence.

Moving to ``production`` checks the quality gates (minimum composite, latency, error rate).
Moving to ``champion`` checks every gate against the current champion, or against chance level
(composite 0) when there is none. The significance test is a paired bootstrap: the candidate's
and the baseline's composites are recomputed on the same resampled holdout rows, and the
one-sided p-value is the share of resamples where the candidate does not beat the baseline,
(1 + #{diff <= 0}) / (B + 1). When several candidates are tested at once their p-values are
Holm-corrected. The resources gate compares files of the same format only, and lets pass a
difference under an absolute floor (a few hundred bytes are noise, not cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..metrics import holm
from ..scopes._config import GateSettings
from ..vocabulary import Stage
from ._composite import Leaderboard, LeaderboardRow, composite_replicates

if TYPE_CHECKING:
    from ..evaluation._results import ScopeEvaluation

QUALITY_GATES = ("min_composite", "latency_p95", "error_rate")
ALL_GATES = ("min_composite", "improvement", "significance", "latency_p95", "resources",
             "error_rate")
#: How each gate is named to people.
GATE_LABELS: dict[str, str] = {"min_composite": "Minimum composite", "improvement":
                               "Improvement", "significance": "Significance (Holm)",
                               "latency_p95": "Latency p95", "resources": "Resources",
                               "error_rate": "Error rate", "evaluation": "Evaluation"}
#: The stages a move to is gated, with their gates.
GATED_STAGES: dict[Stage, tuple[str, ...]] = {"production": QUALITY_GATES,
                                              "champion": ALL_GATES}


@dataclass(frozen=True)
class Gate:
    """One check: what was measured, against what, and the verdict."""

    name: str
    passed: bool
    value: float | None
    threshold: float
    detail: str
    p_value: float | None = None
    effect: float | None = None


@dataclass(frozen=True)
class GateReport:
    """Every gate of one candidate for one target stage."""

    model_name: str
    target_stage: str
    baseline: str  # the champion's name, or "chance level"
    gates: list[Gate] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed(self) -> list[Gate]:
        return [g for g in self.gates if not g.passed]

    def summary(self) -> str:
        if self.passed:
            return f"all {len(self.gates)} gates pass"
        return "; ".join(f"{g.name}: {g.detail}" for g in self.failed)


def gate_reports(candidates: Sequence[str], target_stage: str, board: Leaderboard,
                 evaluation: ScopeEvaluation, settings: GateSettings,
                 champion: str | None) -> list[GateReport]:
    """Gate reports of several candidates tested together (p-values Holm-corrected)."""
    names = GATED_STAGES.get(target_stage, ())
    if not names:
        return [GateReport(c, target_stage, "none") for c in candidates]
    adjusted = _adjusted_p_values(candidates, board, evaluation, champion)
    base_row = board.row(champion) if champion and champion in board and \
        board.row(champion).ok else None
    base_point = base_row.composite_score if base_row is not None else 0.0
    reports = []
    for name in candidates:
        row = board.row(name)
        gates = [_GATES[g](row, base_row, base_point, adjusted.get(name), settings)
                 for g in names] if row.ok else [
            Gate("evaluation", False, None, 0, f"not evaluated: {row.reason}")]
        reports.append(GateReport(name, target_stage,
                                  base_row.model_name if base_row else "chance level", gates))
    return reports


def gate_report(candidate: str, target_stage: str, board: Leaderboard,
                evaluation: ScopeEvaluation, settings: GateSettings,
                champion: str | None) -> GateReport:
    """The gate report of one candidate for a move to ``target_stage``; its significance is
    corrected over every model that could be tested against the same baseline (see
    :func:`tested_together`), so one lucky model among many does not pass."""
    family = [n for n in tested_together(board, champion) if n != candidate]
    return gate_reports([candidate, *family], target_stage, board, evaluation, settings,
                        champion)[0]


def tested_together(board: Leaderboard, champion: str | None) -> list[str]:
    """The models a significance test against ``champion`` (or chance level) is corrected
    over: every evaluated model but the champion."""
    return [r.model_name for r in board.ranked if r.ok and r.model_name != champion]


def skill_p_values(board: Leaderboard, evaluation: ScopeEvaluation) -> dict[str, float]:
    """Each evaluated model's p-value against chance level (composite 0), Holm-corrected
    over every model of the scope: the one rule behind "shows skill" on every page, gate,
    card and command."""
    return _adjusted_p_values(tested_together(board, None), board, evaluation, None)


def skilled_models(board: Leaderboard, evaluation: ScopeEvaluation, alpha: float
                   ) -> frozenset[str]:
    """The models significantly better than chance level (see :func:`skill_p_values`)."""
    return frozenset(n for n, p in skill_p_values(board, evaluation).items() if p < alpha)


def _adjusted_p_values(candidates: Sequence[str], board: Leaderboard,
                       evaluation: ScopeEvaluation, champion: str | None) -> dict[str, float]:
    """One-sided paired-bootstrap p-values of ``candidates`` against the champion (or chance
    level), Holm-corrected over them."""
    _, replicates = composite_replicates(evaluation, board.weights)
    index = {m.model_name: i for i, m in enumerate(evaluation.ok_models)}
    base_reps = replicates[index[champion]] if champion in index else \
        np.zeros(replicates.shape[1] if len(replicates) else 1)
    raw_p = {}
    for name in candidates:
        if name in index and name != champion:
            diff = replicates[index[name]] - base_reps
            raw_p[name] = (1 + int((diff <= 0).sum())) / (len(diff) + 1)
    return dict(zip(raw_p, holm(np.array(list(raw_p.values()))).tolist(), strict=True))


def _min_composite(row: LeaderboardRow, base: LeaderboardRow | None, base_point: float,
                   p: float | None, s: GateSettings) -> Gate:
    value = row.composite_score or 0.0
    passed = value >= s.min_composite
    return Gate("min_composite", passed, value, s.min_composite,
                f"composite {value:.4f} {'≥' if passed else '<'} {s.min_composite:.4f}")


def _improvement(row: LeaderboardRow, base: LeaderboardRow | None, base_point: float,
                 p: float | None, s: GateSettings) -> Gate:
    value = row.composite_score or 0.0
    if base is not None and base.model_name == row.model_name:
        return Gate("improvement", True, 0.0, s.min_improvement, "is the champion already")
    if base_point > 0:
        gain = (value - base_point) / base_point
        shown = f"{gain:+.1%}".replace("-0.0%", "+0.0%")  # no negative zero in words
        text = f"{shown} over {base.model_name if base else 'baseline'} ({base_point:.4f})"
    else:
        gain = value - base_point
        text = f"{gain:+.4f} over chance level (composite 0)"
    passed = gain >= s.min_improvement
    return Gate("improvement", passed, gain, s.min_improvement,
                f"{text}; needs ≥ {s.min_improvement:g}", effect=value - base_point)


def _significance(row: LeaderboardRow, base: LeaderboardRow | None, base_point: float,
                  p: float | None, s: GateSettings) -> Gate:
    if base is not None and base.model_name == row.model_name:
        return Gate("significance", True, None, s.alpha, "is the champion already")
    p = 1.0 if p is None else p
    effect = (row.composite_score or 0.0) - base_point
    against = base.model_name if base else "chance level"
    passed = p < s.alpha
    return Gate("significance", passed, p, s.alpha,
                f"paired bootstrap vs {against}: difference {effect:+.4f}, p={p:.3g} "
                f"({'<' if passed else '≥'} {s.alpha:g})", p_value=p, effect=effect)


def _latency(row: LeaderboardRow, base: LeaderboardRow | None, base_point: float,
             p: float | None, s: GateSettings) -> Gate:
    value = row.metrics.get("latency_p95_ms", float("inf"))
    passed = value <= s.max_latency_p95_ms
    return Gate("latency_p95", passed, value, s.max_latency_p95_ms,
                f"p95 {value:.1f} ms {'≤' if passed else '>'} {s.max_latency_p95_ms:g} ms")


def _resources(row: LeaderboardRow, base: LeaderboardRow | None, base_point: float,
               p: float | None, s: GateSettings) -> Gate:
    if base is None:
        return Gate("resources", True, None, s.max_resource_ratio, "no champion to compare")
    mine, theirs = row.evaluation.model_file, base.evaluation.model_file
    if mine and theirs and Path(mine).suffix != Path(theirs).suffix:
        # A skops file of a model is larger, and takes more memory to load, than a joblib
        # file of the same model: across formats the ratio measures the format.
        return Gate("resources", True, None, s.max_resource_ratio,
                    f"not compared: {mine} vs the champion's {theirs} (different formats)")
    over = {name: row.metrics[name] - base.metrics[name]
            for name in ("artifact_size_mb", "load_memory_mb")}
    ratios = {name: row.metrics[name] / max(base.metrics[name], 1e-12) for name in over
              if over[name] > s.resource_floor_mb}
    if not ratios:
        worst = max(over, key=over.get)  # type: ignore[arg-type]
        return Gate("resources", True, None, s.max_resource_ratio,
                    f"{worst} {over[worst]:+.2f} MB vs the champion's (within "
                    f"{s.resource_floor_mb:g} MB)")
    worst = max(ratios, key=ratios.get)  # type: ignore[arg-type]
    passed = ratios[worst] <= s.max_resource_ratio
    return Gate("resources", passed, ratios[worst], s.max_resource_ratio,
                f"{worst} {ratios[worst]:.2f}× the champion's, {over[worst]:+.2f} MB "
                f"({'≤' if passed else '>'} {s.max_resource_ratio:g}×)")


def _error_rate(row: LeaderboardRow, base: LeaderboardRow | None, base_point: float,
                p: float | None, s: GateSettings) -> Gate:
    value = row.metrics.get("error_rate", 1.0)
    passed = value < s.max_error_rate
    return Gate("error_rate", passed, value, s.max_error_rate,
                f"error rate {value:.2%} {'<' if passed else '≥'} {s.max_error_rate:.2%}")


_GATES = {"min_composite": _min_composite, "improvement": _improvement,
          "significance": _significance, "latency_p95": _latency, "resources": _resources,
          "error_rate": _error_rate}
