"""Governed stage transitions: required reasons, gates, one champion, history and rollback.

Stages run ``development`` → ``candidate`` → ``production`` (the promoted set) → ``champion``,
and ``archived``. Every move records who, when, from where, the model version (its file's
sha256) and why; the store keeps that history append-only. A scope with an ``mlflow`` setting
has each committed move mirrored to MLflow (see ``_mlflow``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from ._discovery import Scope, model_version
from ._errors import InvalidInputError, InvalidTransitionError, ModelNotFoundError
from ._evaluation import ScopeEvaluation
from ._gates import GATED_STAGES, GateReport, gate_report
from ._mlflow import mirror_decisions
from ._scoring import Leaderboard
from ._store import (
    ANY_CHAMPION,
    PROMOTED_STAGES,
    STAGES,
    DeploymentRecord,
    StageRecord,
    Store,
    Transition,
)

MODES: tuple[str, ...] = ("ensemble", "champion", "canary")
#: A canary starts at a share of at most the first step, then moves one step at a time.
CANARY_STEPS: tuple[float, ...] = (0.10, 0.25, 0.50, 1.00)
_SHARE_TOLERANCE = 1e-9

#: Where each stage may be entered from.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    "candidate": frozenset({"development", "archived", "production"}),
    "production": frozenset({"development", "candidate", "archived"}),
    "champion": frozenset({"production"}),
    "archived": frozenset({"candidate", "production", "champion"}),
}
#: Moves that are already done when the model is in one of these stages (idempotent).
ALREADY_THERE: dict[str, frozenset[str]] = {
    "production": frozenset({"champion"}),
    "archived": frozenset({"development"}),
}


class GateFailure(InvalidTransitionError):
    """A move blocked by failing gates; ``report`` holds the evidence."""

    def __init__(self, report: GateReport) -> None:
        super().__init__(
            f"'{report.model_name}' cannot move to {report.target_stage}: gates fail "
            f"({report.summary()}). Hint: fix the model, or override the gates with a reason "
            "(recorded as an override)")
        self.report = report


def transition_model(store: Store, scope: Scope, evaluation: ScopeEvaluation,
                     board: Leaderboard, model_name: str, to_stage: str, *, actor: str,
                     reason: str, override: bool = False) -> Transition | None:
    """Move a model to ``to_stage`` after checking the move, its version and its gates.

    Returns None when the model is already there (nothing is written).
    """
    if to_stage not in ALLOWED_FROM:
        valid = ", ".join(ALLOWED_FROM)
        raise InvalidTransitionError(f"cannot move to '{to_stage}'. Hint: stages to move to "
                                     f"are {valid}" if to_stage in STAGES else
                                     f"unknown stage '{to_stage}'. Hint: stages are {valid}")
    if not reason.strip():
        raise InvalidTransitionError("a reason is required for every transition. Hint: say "
                                     "why (field 'reason')")
    stages = store.stages(scope.name)
    try:
        scope.model(model_name)
    except ModelNotFoundError:
        # A promoted model whose folder is gone can still be archived, never moved up.
        if to_stage != "archived" or model_name not in stages:
            raise
    current = stage_of(stages, model_name)
    if current == to_stage or current in ALREADY_THERE.get(to_stage, frozenset()):
        return None
    if current not in ALLOWED_FROM[to_stage]:
        hint = " Hint: promote it to production first" if to_stage == "champion" else ""
        raise InvalidTransitionError(f"'{model_name}' is {current}; it can move to {to_stage} "
                                     f"only from {', '.join(sorted(ALLOWED_FROM[to_stage]))}."
                                     f"{hint}")
    sha = _current_version(scope, evaluation, model_name, needs_score=to_stage != "archived")
    sha = sha if sha is not None else (stages[model_name].model_sha256
                                       if model_name in stages else None)
    overridden = False
    if to_stage in GATED_STAGES:
        report = gate_report(model_name, to_stage, board, evaluation, scope.config.gates,
                             champion_of(stages))
        if not report.passed:
            if not override:
                raise GateFailure(report)
            overridden = True
    moved = store.transition(scope.name, model_name, to_stage, actor=actor, reason=reason,
                             model_sha256=sha,
                             allowed_from=ALLOWED_FROM[to_stage],
                             unless=ALREADY_THERE.get(to_stage, frozenset()),
                             overridden=overridden,
                             expect_champion=champion_of(stages))
    if moved is not None:
        follow_transition(store, scope, moved)
        mirror_decisions(store, scope)  # after the commit: a failure leaves it pending only
    return moved


def promote(store: Store, scope: Scope, evaluation: ScopeEvaluation, board: Leaderboard,
            model_name: str, *, actor: str, reason: str, override: bool = False
            ) -> Transition | None:
    """Put a model in production, the promoted set (a no-op when it is already promoted)."""
    return transition_model(store, scope, evaluation, board, model_name, "production",
                            actor=actor, reason=reason, override=override)


def demote(store: Store, scope: Scope, evaluation: ScopeEvaluation, board: Leaderboard,
           model_name: str, *, actor: str, reason: str) -> Transition | None:
    """Take a model out of the promoted set (archived; a no-op when it is not promoted)."""
    stages = store.stages(scope.name)
    if stage_of(stages, model_name) not in PROMOTED_STAGES | {"candidate"}:
        if model_name not in stages:
            scope.model(model_name)  # an unknown name is an error, not a no-op
        return None
    return transition_model(store, scope, evaluation, board, model_name, "archived",
                            actor=actor, reason=reason)


def make_champion(store: Store, scope: Scope, evaluation: ScopeEvaluation, board: Leaderboard,
                  model_name: str, *, actor: str, reason: str, override: bool = False
                  ) -> Transition | None:
    """Make a production model the scope's champion; the old champion is archived with it."""
    return transition_model(store, scope, evaluation, board, model_name, "champion",
                            actor=actor, reason=reason, override=override)


def rollback(store: Store, scope: Scope, *, actor: str, reason: str) -> Transition:
    """Restore the previous champion in one step (the current one is archived)."""
    if not reason.strip():
        raise InvalidTransitionError("a reason is required for a rollback (field 'reason')")
    stages = store.stages(scope.name)
    current = champion_of(stages)
    previous = previous_champion(store, scope.name)
    if previous is None:
        raise InvalidTransitionError(f"scope '{scope.name}' has no previous champion to roll "
                                     "back to")
    name, sha = previous
    path = scope.model(name).model_path
    if sha is not None and model_version(path, scope.shown(path)) != sha:
        raise InvalidTransitionError(
            f"{scope.shown(path)}: is no longer the version that was champion ({sha[:12]}); "
            "rolling back would serve another model. Hint: restore that file or promote anew")
    moved = store.transition(scope.name, name, "champion", actor=actor,
                             reason=f"rollback: {reason}", model_sha256=sha, action="rollback",
                             expect_champion=current)
    if moved is None:  # the previous champion is the champion already
        raise InvalidTransitionError(f"'{name}' is already the champion of '{scope.name}'")
    follow_transition(store, scope, moved)
    mirror_decisions(store, scope)
    return moved


def previous_champion(store: Store, scope_name: str) -> tuple[str, str | None] | None:
    """The champion before the current one (name and version), from the history."""
    crowned = [t for t in store.history(scope_name) if t.to_stage == "champion"]
    current = champion_of(store.stages(scope_name))
    for entry in reversed(crowned):
        if entry.model_name != current:
            return entry.model_name, entry.model_sha256
    return None


def stage_of(stages: dict[str, StageRecord], model_name: str) -> str:
    """A model's stage ('development' when it has no record)."""
    return stages[model_name].stage if model_name in stages else "development"


def champion_of(stages: dict[str, StageRecord]) -> str | None:
    """The champion among a scope's stage records, if any."""
    return next((n for n, r in stages.items() if r.stage == "champion"), None)


def promoted_models(store: Store, scope_name: str) -> dict[str, StageRecord]:
    """The promoted set of a scope: models in production or champion, by name."""
    return {name: record for name, record in store.stages(scope_name).items()
            if record.stage in PROMOTED_STAGES}


def _current_version(scope: Scope, evaluation: ScopeEvaluation, model_name: str, *,
                     needs_score: bool) -> str | None:
    """The model file's sha256, checked to be the version that was evaluated."""
    evaluated = next((m for m in evaluation.models if m.model_name == model_name), None)
    if evaluated is None or not evaluated.ok:
        if needs_score:
            why = evaluated.reason if evaluated else "its folder is gone"
            raise InvalidInputError(f"'{model_name}' has no measured score: {why}")
        return None
    path = scope.model(model_name).model_path
    current = model_version(path, scope.shown(path))
    if current != evaluated.sha256:
        raise InvalidInputError(
            f"{scope.shown(path)}: changed since it was evaluated (evaluated "
            f"{(evaluated.sha256 or '')[:12]}, file now {current[:12]}). Hint: reload to "
            "evaluate the new version first")
    return current


def deployment_of(store: Store, scope: Scope) -> DeploymentRecord:
    """The deployment in force: the last decision, else ``scope.json``, else ensemble."""
    decided = store.deployments(scope.name)
    if decided:
        return decided[-1]
    default = scope.config.deployment
    return DeploymentRecord(0, scope.name, default.mode, default.canary, default.canary_share,
                            "scope.json", "default from scope.json", _epoch())


def next_canary_share(share: float) -> float | None:
    """The next allocation step after ``share`` (None at 100%)."""
    return next((step for step in CANARY_STEPS if step > share + _SHARE_TOLERANCE), None)


def set_deployment(store: Store, scope: Scope, mode: str, *, actor: str, reason: str,
                   canary: str | None = None, canary_share: float | None = None
                   ) -> DeploymentRecord | None:
    """Decide how the promoted set is served; recorded with who and why in the history.

    Champion and canary modes need a champion; a canary is a production model (not the
    champion) that starts at a share of at most 10% and then rises one step at a time
    (10 → 25 → 50 → 100%); it may always go down. Returns None when nothing changes.
    """
    if mode not in MODES:
        raise InvalidTransitionError(f"unknown deployment mode '{mode}'. Hint: modes are "
                                     f"{', '.join(MODES)}")
    if not reason.strip():
        raise InvalidTransitionError("a reason is required for a deployment change (field "
                                     "'reason')")
    stages = store.stages(scope.name)
    champion = champion_of(stages)
    if mode != "ensemble" and champion is None:
        raise InvalidTransitionError(f"{mode} mode needs a champion in scope '{scope.name}'. "
                                     "Hint: make a model champion first")
    current = deployment_of(store, scope)
    if mode == "canary":
        _check_canary(current, stages, canary, canary_share)
    else:
        canary, canary_share = None, None
    if (current.mode, current.canary_model, current.canary_share) == (mode, canary,
                                                                       canary_share):
        return None
    # The store re-reads the champion, the canary's stage and the newest decision under the
    # scope's lock: a move or decision made since the reads above refuses this one.
    return store.record_deployment(scope.name, mode, canary, canary_share, actor=actor,
                                   reason=reason,
                                   expect_champion=champion if mode != "ensemble" else ANY_CHAMPION,
                                   expect_latest=current.id)


def follow_transition(store: Store, scope: Scope, moved: Transition) -> DeploymentRecord | None:
    """Keep the deployment servable after a stage move; returns the decision it recorded.

    The canary made champion, or taken out of the promoted set, ends the canary (champion
    mode); the champion taken out of the promoted set ends champion and canary modes
    (ensemble). Each change is recorded with the move's actor and a reason naming the move.
    """
    current = deployment_of(store, scope)
    name, left = moved.model_name, moved.to_stage not in PROMOTED_STAGES
    if current.mode != "ensemble" and moved.from_stage == "champion" and left:
        mode, why = "ensemble", f"champion {name} left production: {moved.reason}"
    elif current.mode == "canary" and current.canary_model == name and (
            left or moved.to_stage == "champion"):
        became = "became champion" if moved.to_stage == "champion" else "left production"
        mode, why = "champion", f"canary {name} {became}: {moved.reason}"
    else:
        return None
    champion = champion_of(store.stages(scope.name))
    return store.record_deployment(scope.name, mode, None, None, actor=moved.actor,
                                   reason=why, expect_champion=champion,
                                   expect_latest=current.id)


def _check_canary(current: DeploymentRecord, stages: dict[str, StageRecord],
                  canary: str | None, share: float | None) -> None:
    if canary is None or share is None:
        raise InvalidTransitionError("canary mode needs a canary model and its share "
                                     "(fields 'canary', 'canary_share')")
    if stage_of(stages, canary) != "production":
        raise InvalidTransitionError(f"'{canary}' is {stage_of(stages, canary)}; a canary must "
                                     "be a production model other than the champion")
    if not 0 < share <= 1:
        raise InvalidTransitionError(f"canary share {share:g} must be in (0, 1] (field "
                                     "'canary_share')")
    running = current.mode == "canary" and current.canary_model == canary
    before = (current.canary_share or 0.0) if running else 0.0
    if share <= before + _SHARE_TOLERANCE:
        return  # going down (or staying) is always allowed
    allowed = next_canary_share(before) if running else CANARY_STEPS[0]
    if before == 0.0 and share <= CANARY_STEPS[0] + _SHARE_TOLERANCE:
        return
    if allowed is None or abs(share - allowed) > _SHARE_TOLERANCE:
        start = f"{before:.0%}" if running else "a new canary"
        raise InvalidTransitionError(
            f"canary share {share:.0%} skips a step from {start}. Hint: steps are "
            + " → ".join(f"{s:.0%}" for s in CANARY_STEPS) + " (start at most 10%)")


def _epoch() -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC)
