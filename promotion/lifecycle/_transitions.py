"""Governed stage moves: required reasons, allowed moves, gates, one champion, rollback.

Stages run ``development`` → ``candidate`` → ``production`` (the promoted set) → ``champion``,
and ``archived``. Every move records who, when, from where, the model version (its file's
sha256) and why; the store keeps that history append-only. The rules live here: a move is
checked on the stages read inside its own decision, the old champion is archived in the
same decision as the new one is crowned, and the deployment follows in it too
(``_deployment.follow_move``). Subscribers hear of committed moves (``_hooks``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..auth import require_role
from ..errors import InvalidInputError, InvalidTransitionError, ModelNotFoundError
from ..evaluation._results import ScopeEvaluation
from ..scopes._discovery import Scope, model_version
from ..scoring._composite import Leaderboard
from ..scoring._gates import GATED_STAGES, GateReport, gate_report
from ..store._abstract import Decision, Store
from ..store._entities import Change, MoveKind, StageRecord, Transition
from ..vocabulary import STAGES, Stage, stage_of
from ._approvals import approval_required, move_needs_approval, settle
from ._deployment import follow_move
from ._hooks import deciding
from ._stages import champion_of, previous_champion

#: Where each stage may be entered from.
ALLOWED_FROM: dict[Stage, frozenset[Stage]] = {
    "candidate": frozenset({"development", "archived", "production"}),
    "production": frozenset({"development", "candidate", "archived"}),
    "champion": frozenset({"production"}),
    "archived": frozenset({"candidate", "production", "champion"}),
}
#: Moves that are already done when the model is in one of these stages (idempotent).
ALREADY_THERE: dict[Stage, frozenset[Stage]] = {
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


def apply_move(tx: Decision, model_name: str, to_stage: Stage, *, actor: str, reason: str,
               model_sha256: str | None, overridden: bool = False) -> Transition | None:
    """Move a model within the decision ``tx``, by the lifecycle's rules on its stages.

    Refuses a move the stage ladder does not allow (``ALLOWED_FROM``); returns None, writing
    nothing, when the model is already there (``ALREADY_THERE``). A new champion archives
    the old one first. No files and no gates are looked at, and the deployment does not
    follow: see :func:`transition_model`. Subscribers hear of the move when ``tx`` was opened
    with :func:`deciding`.
    """
    _check_target(to_stage)
    return _move(tx, tx.stages(), model_name, to_stage, actor=actor, reason=reason,
                 model_sha256=model_sha256, overridden=overridden)


def transition_model(store: Store, scope: Scope, evaluation: ScopeEvaluation,
                     board: Leaderboard, model_name: str, to_stage: Stage, *, actor: str,
                     reason: str, override: bool = False) -> Transition | None:
    """Move a model to ``to_stage`` after checking the move, its version and its gates; the
    deployment follows in the same decision.

    Returns None when the model is already there (nothing is written).
    """
    _check_target(to_stage)
    require_role(store, actor, "move")
    _require_reason(reason, "every transition. Hint: say why")
    # A first look, outside the lock: hashing the file and weighing the gates take time.
    stages = store.stages(scope.name)
    try:
        scope.model(model_name)
    except ModelNotFoundError:
        # A promoted model whose folder is gone can still be archived, never moved up.
        if to_stage != "archived" or model_name not in stages:
            raise
    current = stage_of(stages, model_name)
    if _already_there(current, to_stage):
        return None
    _check_allowed(model_name, current, to_stage)
    sha = _current_version(scope, evaluation, model_name, needs_score=to_stage != "archived")
    sha = sha if sha is not None else (stages[model_name].model_sha256
                                       if model_name in stages else None)
    champion = champion_of(stages)
    overridden = False
    if to_stage in GATED_STAGES:
        report = gate_report(model_name, to_stage, board, evaluation, scope.config.gates,
                             champion)
        if not report.passed:
            if not override:
                raise GateFailure(report)
            overridden = True
    with deciding(store, scope) as tx:
        stages = tx.stages()
        _refuse_a_new_champion(scope.name, stages, champion)  # the gates' baseline
        settle(tx, scope, Change("move", model_name, to_stage, override),
               needed=move_needs_approval(scope, to_stage, overridden))
        moved = _move(tx, stages, model_name, to_stage, actor=actor, reason=reason,
                      model_sha256=sha, overridden=overridden)
        if moved is not None:
            follow_move(tx, scope, moved)
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
    if stage_of(stages, model_name) not in ALLOWED_FROM["archived"]:
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
    """Undo the last change of champion in one step: the previous champion is champion again
    and the current one goes back to the stage it had before it was crowned (see
    :func:`rollback_plan`)."""
    require_role(store, actor, "move")
    _require_reason(reason, "a rollback")
    plan = rollback_plan(store, scope)
    path = scope.model(plan.restored).model_path
    sha = plan.restored_sha256
    if sha is not None and model_version(path, scope.shown(path)) != sha:
        raise InvalidTransitionError(
            f"{scope.shown(path)}: is no longer the version that was champion ({sha[:12]}); "
            "rolling back would serve another model. Hint: restore that file or promote anew")
    with deciding(store, scope) as tx:
        stages = tx.stages()
        _refuse_a_new_champion(scope.name, stages, plan.displaced)  # the plan was read on it
        if stage_of(stages, plan.restored) == "champion":
            raise InvalidTransitionError(f"'{plan.restored}' is already the champion of "
                                         f"'{scope.name}'")
        settle(tx, scope, Change("rollback", model_name=plan.restored),
               needed=approval_required(scope))
        why = f"rollback: {reason}"
        if plan.displaced is not None:
            tx.record_move(plan.displaced, "champion", plan.displaced_to, actor=actor,
                           reason=f"{why} (back to {plan.displaced_to}, where it was before "
                                  "it became champion)",
                           model_sha256=stages[plan.displaced].model_sha256, action="rollback")
        # A rollback may bring back a model from any stage: it was the champion before.
        moved = tx.record_move(plan.restored, stage_of(stages, plan.restored), "champion",
                               actor=actor, reason=why, model_sha256=sha, action="rollback")
        follow_move(tx, scope, moved)
    return moved


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback would do: who is champion again, and where the current one goes."""

    restored: str
    restored_sha256: str | None
    displaced: str | None
    displaced_to: Stage

    @property
    def moves(self) -> list[tuple[str, str]]:
        """The rollback as stage moves, in the order they are recorded."""
        first = [] if self.displaced is None else [(self.displaced, self.displaced_to)]
        return [*first, (self.restored, "champion")]

    def describe(self) -> str:
        back = (f"; {self.displaced} goes back to {self.displaced_to}"
                if self.displaced is not None else "")
        return f"{self.restored} becomes champion again{back}"


def rollback_plan(store: Store, scope: Scope) -> RollbackPlan:
    """The rollback as it would happen now; refused when there is no previous champion."""
    previous = previous_champion(store, scope.name)
    if previous is None:
        raise InvalidTransitionError(f"scope '{scope.name}' has no previous champion to roll "
                                     "back to")
    current = champion_of(store.stages(scope.name))
    crowned = [t for t in store.history(scope.name)
               if t.model_name == current and t.to_stage == "champion"]
    # Where the current champion stood before it was crowned; archived when unknown.
    before = crowned[-1].from_stage if crowned else "archived"
    back_to: Stage = before if before in ALLOWED_FROM["archived"] - {"champion"} else "archived"
    return RollbackPlan(previous[0], previous[1], current, back_to)


def _move(tx: Decision, stages: dict[str, StageRecord], model_name: str, to_stage: str, *,
          actor: str, reason: str, model_sha256: str | None,
          overridden: bool) -> Transition | None:
    """One move by the rules, on ``stages`` as ``tx`` read them."""
    current = stage_of(stages, model_name)
    if _already_there(current, to_stage):
        return None
    _check_allowed(model_name, current, to_stage)
    return _record(tx, stages, model_name, to_stage, actor=actor, reason=reason,
                   model_sha256=model_sha256, overridden=overridden)


def _record(tx: Decision, stages: dict[str, StageRecord], model_name: str, to_stage: str, *,
            actor: str, reason: str, model_sha256: str | None, overridden: bool = False,
            action: MoveKind = "move") -> Transition:
    """Record the move; a new champion archives the old one first (one champion a scope)."""
    old = champion_of(stages)
    if to_stage == "champion" and old is not None and old != model_name:
        tx.record_move(old, "champion", "archived", actor=actor,
                       reason=f"replaced as champion by '{model_name}': {reason}",
                       model_sha256=stages[old].model_sha256, action=action)
    return tx.record_move(model_name, stage_of(stages, model_name), to_stage, actor=actor,
                          reason=reason, model_sha256=model_sha256, overridden=overridden,
                          action=action)


def _check_target(to_stage: str) -> None:
    if to_stage not in ALLOWED_FROM:
        valid = ", ".join(ALLOWED_FROM)
        raise InvalidTransitionError(f"cannot move to '{to_stage}'. Hint: stages to move to "
                                     f"are {valid}" if to_stage in STAGES else
                                     f"unknown stage '{to_stage}'. Hint: stages are {valid}")


def _require_reason(reason: str, what: str) -> None:
    if not reason.strip():
        raise InvalidTransitionError(f"a reason is required for {what} (field 'reason')")


def _already_there(current: str, to_stage: str) -> bool:
    return current == to_stage or current in ALREADY_THERE.get(to_stage, frozenset())


def _check_allowed(model_name: str, current: str, to_stage: str) -> None:
    if current not in ALLOWED_FROM[to_stage]:
        hint = " Hint: promote it to production first" if to_stage == "champion" else ""
        raise InvalidTransitionError(f"'{model_name}' is {current}; it can move to {to_stage} "
                                     f"only from {', '.join(sorted(ALLOWED_FROM[to_stage]))}."
                                     f"{hint}")


def _refuse_a_new_champion(scope_name: str, stages: dict[str, StageRecord],
                           decided_on: str | None) -> None:
    """Refuse a decision weighed against a champion that is no longer the scope's."""
    champion = champion_of(stages)
    if champion != decided_on:
        raise InvalidTransitionError(
            f"the champion of scope '{scope_name}' changed meanwhile (now "
            f"{champion or 'none'}); look again and retry")


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
