"""The recommendation from live evidence, and applying it through the lifecycle.

Decision rules (the seeds' champion/challenger workflow), in this order:

1. **wait** while the subject has fewer than 1,000 outcomes, or fewer than the minimum days at
   this allocation (shadow 3, canary ≤10% 3, 25% 5, 50% 7, 100% 7);
2. **roll back** when its live accuracy (top-5 accuracy, or AUC for binary) is more than 5%
   below the baseline's on the same requests (for regression: its live RMSE more than 5%
   above the baseline's, lower being better), its error rate exceeds 1%, or its latency is
   more than double the baseline's;
3. otherwise **increase** the allocation (shadow → canary 10% → 25% → 50% → 100% → champion).

Exactly 1,000 outcomes, exactly 5% below (above), exactly 1% and exactly 2× do not trigger.
A champion without challengers is held to its holdout interval's conservative end: the lower
bound of its key metric, or for regression the upper bound of its RMSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..contract import ModelCard
from ..errors import InvalidInputError
from ..lifecycle._deployment import (
    CANARY_STEPS,
    deployment_of,
    next_canary_share,
    set_deployment,
)
from ..lifecycle._stages import previous_champion
from ..lifecycle._transitions import demote, make_champion, rollback
from ..scopes._discovery import Scope, load_scope
from ..store._abstract import Store
from ..vocabulary import Mode, is_regression, key_metric
from ._live import LiveData, _paired, load_live
from ._regression import key_live

MIN_OUTCOMES = 1000
MAX_DROP = 0.05
MAX_ERROR_RATE = 0.01
MAX_LATENCY_RATIO = 2.0
#: Minimum days at an allocation before it may rise (shadow is share 0).
MIN_DAYS: dict[float, float] = {0.0: 3, 0.10: 3, 0.25: 5, 0.50: 7, 1.0: 7}
_EPS = 1e-12
Action = Literal["wait", "rollback", "increase", "keep", "none"]
#: Each action in words, for messages and pages.
ACTION_WORDS: dict[str, str] = {"wait": "wait", "rollback": "roll back",
                                "increase": "increase the allocation", "keep": "keep",
                                "none": "nothing to do"}


# What applying a recommendation does, for the lifecycle: one type per kind of move.

@dataclass(frozen=True)
class Deploy:
    """Change the deployment: the mode, and in canary mode the canary and its share."""

    mode: Mode
    canary: str | None = None
    share: float | None = None


@dataclass(frozen=True)
class Crown:
    """Make the canary the champion (the old one is archived), then champion mode."""

    model: str


@dataclass(frozen=True)
class Retire:
    """Take a challenger out of production (archived)."""

    model: str


@dataclass(frozen=True)
class RollBack:
    """Restore the previous champion."""


Step = Deploy | Crown | Retire | RollBack


@dataclass(frozen=True)
class RuleFigures:
    """What the rules read: the subject's evidence at this allocation and its baseline's."""

    outcomes: int
    days: float
    min_days: float
    live: float
    baseline_live: float
    error_rate: float
    latency_ms: float
    baseline_latency_ms: float
    #: Regression: ``live`` and ``baseline_live`` are RMSE, an error (lower is better).
    lower_is_better: bool = False


def decide(figures: RuleFigures) -> tuple[Action, str]:
    """Wait, roll back or increase, with the rule that decided (see the module docstring)."""
    f = figures
    if f.outcomes < MIN_OUTCOMES:
        return "wait", f"{f.outcomes:,} outcomes < {MIN_OUTCOMES:,} needed"
    if f.days < f.min_days - _EPS:
        return "wait", f"{f.days:.1f} days at this allocation < {f.min_days:g} needed"
    if math.isfinite(f.live) and math.isfinite(f.baseline_live) and f.baseline_live > 0:
        if f.lower_is_better:
            worse = f.live / f.baseline_live - 1
            if worse > MAX_DROP + _EPS:
                return "rollback", (f"live RMSE {f.live:.4g} is {worse:.1%} above (worse "
                                    f"than) the baseline's {f.baseline_live:.4g} "
                                    f"(> {MAX_DROP:.0%})")
        elif (drop := 1 - f.live / f.baseline_live) > MAX_DROP + _EPS:
            return "rollback", (f"live {f.live:.4f} is {drop:.1%} below the baseline's "
                                f"{f.baseline_live:.4f} (> {MAX_DROP:.0%})")
    if f.error_rate > MAX_ERROR_RATE + _EPS:
        return "rollback", f"error rate {f.error_rate:.2%} > {MAX_ERROR_RATE:.0%}"
    if (f.baseline_latency_ms > 0
            and f.latency_ms > MAX_LATENCY_RATIO * f.baseline_latency_ms * (1 + _EPS)):
        return "rollback", (f"latency {f.latency_ms:.3f} ms/row is more than "
                            f"{MAX_LATENCY_RATIO:g}× the baseline's "
                            f"{f.baseline_latency_ms:.3f}")
    return "increase", "enough evidence, no rollback rule fires"


@dataclass(frozen=True)
class Recommendation:
    """The recommendation for a scope now, its rule, figures and what applying it does."""

    action: Action
    rule: str
    subject: str | None = None
    baseline: str | None = None
    mode: str = "ensemble"
    share: float = 0.0
    figures: RuleFigures | None = None
    plan: str | None = None  # what applying does, in words; None when nothing to apply
    step: Step | None = None  # what applying does, for the lifecycle


def min_days(share: float) -> float:
    """Minimum days at an allocation before it may rise (shadow: share 0)."""
    step = next((s for s in sorted(MIN_DAYS) if share <= s + _EPS), 1.0)
    return MIN_DAYS[step]


def recommend(live: LiveData, cards: list[ModelCard], task: str) -> Recommendation:
    """The recommendation for the allocation in force (the newest export, ``cards``), from
    the outcomes of the requests served at that allocation since it was last changed."""
    if live.empty:
        return Recommendation("none", "no prediction logged yet")
    if live.regression != is_regression(task):  # the scope's task changed since it was served
        return Recommendation("none", f"the log's newest batches are of another task than the "
                                      f"scope's ({task}); serve the newest export first")
    mode = cards[0].deployment_mode
    if mode == "ensemble":
        return Recommendation("none", "ensemble mode serves the weighted set; choose champion "
                                      "mode on the Lifecycle page to test challengers")
    roles = {c.model_name: c.role for c in cards}
    champion = next((n for n, r in roles.items() if r == "champion"), None)
    if champion is None or champion not in live.probas:
        return Recommendation("none", "the newest export has no champion in the log")
    canary = next((c for c in cards if c.role == "canary"), None)
    share = float(canary.traffic_share) if canary is not None else 0.0
    subject = canary.model_name if canary is not None else None
    period = _allocation_period(live, mode, subject, share)
    if not period.any():
        return Recommendation("wait", "no request served at the allocation in force yet (it "
                              "changed after the newest logged request)", subject, champion,
                              mode, share)
    if subject is None:
        challengers = [n for n, r in roles.items() if r == "challenger" and n in live.probas]
        if not challengers:
            return _champion_alone(live, cards, task, champion, period)
        subject = max(challengers, key=lambda n: _score_on(live, n, champion, period, task))
    if subject not in live.probas:
        return Recommendation("wait", f"{subject} has no logged prediction yet", subject,
                              champion, mode, share)
    figures = _figures(live, subject, champion, period, task, share)
    action, rule = decide(figures)
    plan, step = _plan(action, mode, subject, share)
    return Recommendation(action, rule, subject, champion, mode, share, figures, plan, step)


def _score_on(live: LiveData, model: str, champion: str, period: np.ndarray, task: str
              ) -> float:
    """Higher is better: the live key metric, or minus the live RMSE for regression."""
    rows = _paired(live, [model, champion], period)
    value = key_live(live, model, rows, task)[0]
    if not math.isfinite(value):
        return -math.inf
    return -value if is_regression(task) else value


def _allocation_period(live: LiveData, mode: str, canary: str | None, share: float
                       ) -> np.ndarray:
    """The requests of the trailing run of batches served at the allocation in force (none
    when the newest batch was served at another one)."""
    frame = live.requests
    # Every request of a batch carries its batch's allocation: one row per batch is enough.
    firsts = frame.drop_duplicates("batch_id").sort_values("batch_id")
    start = None
    for batch_id, m, c, s in reversed(list(zip(
            firsts["batch_id"], firsts["mode"], firsts["canary"], firsts["canary_share"],
            strict=True))):
        same = str(m) == mode and (mode != "canary" or (
            str(c) == canary and abs(float(s) - share) <= _EPS))
        if not same:
            break
        start = batch_id
    if start is None:
        return np.zeros(len(frame), dtype=bool)
    return (frame["batch_id"] >= start).to_numpy()


def _figures(live: LiveData, subject: str, baseline: str, period: np.ndarray, task: str,
             share: float) -> RuleFigures:
    rows = _paired(live, [subject, baseline], period)
    at = live.requests["at"][period]
    days = (at.max() - at.min()).total_seconds() / 86400 if period.any() else 0.0
    return RuleFigures(
        outcomes=int(rows.sum()), days=days, min_days=min_days(share),
        live=key_live(live, subject, rows, task)[0],
        baseline_live=key_live(live, baseline, rows, task)[0],
        error_rate=float(live.failed[subject][period].mean()) if period.any() else 0.0,
        latency_ms=float(np.nanmean(live.latency[subject][period])),
        baseline_latency_ms=float(np.nanmean(live.latency[baseline][period])),
        lower_is_better=is_regression(task))


def _champion_alone(live: LiveData, cards: list[ModelCard], task: str, champion: str,
                    period: np.ndarray) -> Recommendation:
    """Without challengers the champion is held to its holdout interval's conservative end:
    the key metric's lower bound, or for regression the RMSE's upper bound."""
    card = next(c for c in cards if c.model_name == champion)
    key = key_metric(task)
    lower_is_better = is_regression(task)
    held = card.metrics.get(key)
    bound = None if held is None else held.high if lower_is_better else held.low
    baseline = "holdout upper bound" if lower_is_better else "holdout lower bound"
    rows = _paired(live, [champion], period)
    at = live.requests["at"][period]
    figures = RuleFigures(
        outcomes=int(rows.sum()), days=(at.max() - at.min()).total_seconds() / 86400,
        min_days=min_days(0.0),
        live=key_live(live, champion, rows, task)[0],
        baseline_live=bound if bound is not None else math.nan,
        error_rate=float(live.failed[champion][period].mean()),
        latency_ms=float(np.nanmean(live.latency[champion][period])),
        baseline_latency_ms=math.nan, lower_is_better=lower_is_better)
    action, rule = decide(figures)
    if action == "increase":
        return Recommendation("keep", "the champion holds its holdout level; no challenger "
                              "to test", champion, baseline, "champion", 0.0, figures)
    if action != "rollback":
        return Recommendation(action, rule, champion, baseline, "champion", 0.0, figures)
    return Recommendation(action, rule, champion, baseline, "champion", 0.0,
                          figures, "roll back to the previous champion", RollBack())


def _plan(action: Action, mode: str, subject: str, share: float
          ) -> tuple[str | None, Step | None]:
    if action == "wait":
        return None, None
    if mode == "canary":
        if action == "rollback":
            return f"stop the canary {subject}: champion mode", Deploy("champion")
        following = next_canary_share(share)
        if following is None:
            return (f"make {subject} the champion (the old one is archived), champion mode",
                    Crown(subject))
        return (f"raise the canary {subject} from {share:.0%} to {following:.0%}",
                Deploy("canary", subject, following))
    if action == "rollback":
        return f"take the challenger {subject} out of production (archived)", Retire(subject)
    return (f"start {subject} as a canary at {CANARY_STEPS[0]:.0%}",
            Deploy("canary", subject, CANARY_STEPS[0]))


def apply_recommendation(models_dir: Path, scope_name: str, store: Store,
                         recommendation: Recommendation, *, actor: str, reason: str) -> str:
    """Carry out the recommendation through the lifecycle (recorded with ``reason``), then
    export again so the engine serves the new decision. Returns what was done."""
    from ..usecases import export_scope, latest_weights_method, scope_state

    step = recommendation.step
    if step is None:
        raise InvalidInputError(f"nothing to apply: {recommendation.action} "
                                f"({recommendation.rule})")
    if not reason.strip():
        raise InvalidInputError("a reason is required to apply a recommendation (field "
                                "'reason')")
    _refuse_if_not_current(models_dir, scope_name, store, recommendation)
    why = f"{recommendation.action}: {recommendation.rule}. {reason}"
    state = scope_state(models_dir, scope_name, store)
    if isinstance(step, Deploy):
        set_deployment(store, state.scope, step.mode, canary=step.canary,
                       canary_share=step.share, actor=actor, reason=why)
    elif isinstance(step, Crown):
        # One decision: crowning the canary ends the canary (champion mode) in the same
        # transaction (the lifecycle's follow-up), so no second decision can act on stale state.
        if make_champion(store, state.scope, state.evaluation, state.board, step.model,
                         actor=actor, reason=why) is None:
            raise InvalidInputError(f"nothing to apply: '{step.model}' is already the champion "
                                    f"of scope '{scope_name}'")
    elif isinstance(step, Retire):
        demote(store, state.scope, state.evaluation, state.board, step.model, actor=actor,
               reason=why)
    else:
        if previous_champion(store, scope_name) is None:
            raise InvalidInputError(f"scope '{scope_name}' has no previous champion to roll "
                                    "back to")
        rollback(store, state.scope, actor=actor, reason=why)
    export_scope(models_dir, scope_name, store, latest_weights_method(models_dir, scope_name))
    return str(recommendation.plan)


def _refuse_if_not_current(models_dir: Path, scope_name: str, store: Store,
                           advice: Recommendation) -> None:
    """A recommendation is made for one allocation: once that changed (applied already, or
    decided otherwise meanwhile), applying it again would repeat or undo a decision."""
    scope = load_scope(models_dir, scope_name)
    now = deployment_of(store, scope)
    share = float(now.canary_share or 0.0) if now.mode == "canary" else 0.0
    same = (now.mode == advice.mode and abs(share - advice.share) <= _EPS
            and (now.mode != "canary" or now.canary_model == advice.subject))
    if same:
        return
    try:
        current = current_recommendation(models_dir, scope_name, store)
        shown = f"{ACTION_WORDS[current.action]}: {current.plan or current.rule}"
    except InvalidInputError as err:  # nothing exported or logged: say what is in force
        shown = str(err)
    raise InvalidInputError(
        f"this recommendation is no longer current (it was made for {advice.mode} mode"
        + (f" at {advice.share:.0%}" if advice.mode == "canary" else "")
        + f"; now {deployment_summary(store, scope)}); nothing was applied. The current "
        f"recommendation is {shown}")


def current_recommendation(models_dir: Path, scope_name: str, store: Store
                           ) -> Recommendation:
    """The recommendation now: the newest export's allocation and the log as it is."""
    from ..engine._cards import newest_cards_file, read_cards

    scope = load_scope(models_dir, scope_name)
    cards = read_cards(newest_cards_file(scope_name, models_dir))
    return recommend(load_live(models_dir, scope_name), cards, scope.task)


def deployment_summary(store: Store, scope: Scope) -> str:
    """The deployment in force, in words."""
    record = deployment_of(store, scope)
    if record.mode == "canary":
        return f"canary: {record.canary_model} answers {record.canary_share:.0%} of requests"
    return f"{record.mode} mode"
