"""How a scope's promoted set is served: the deployment in force, governed changes to it,
the canary's steps, and the follow-up that keeps it servable after a stage move.

Every change is decided on the state read inside its own decision (``Store.decision``), so
no move or deployment change made meanwhile can slip between the check and the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from ..auth import require_role
from ..errors import InvalidTransitionError
from ..scopes._discovery import Scope
from ..store._abstract import Decision, Store
from ..store._entities import Change, DeploymentRecord, StageRecord, Transition
from ..vocabulary import MODES, PROMOTED_STAGES, Mode, stage_of
from ._approvals import deployment_needs_approval, settle
from ._stages import champion_of

#: A canary starts at a share of at most the first step, then moves one step at a time.
CANARY_STEPS: tuple[float, ...] = (0.10, 0.25, 0.50, 1.00)
_SHARE_TOLERANCE = 1e-9


def deployment_of(store: Store, scope: Scope) -> DeploymentRecord:
    """The deployment in force: the last decision, else ``scope.json``, else ensemble."""
    decided = store.deployments(scope.name)
    return decided[-1] if decided else _from_scope_json(scope)


def next_canary_share(share: float) -> float | None:
    """The next allocation step after ``share`` (None at 100%)."""
    return next((step for step in CANARY_STEPS if step > share + _SHARE_TOLERANCE), None)


def set_deployment(store: Store, scope: Scope, mode: Mode, *, actor: str, reason: str,
                   canary: str | None = None, canary_share: float | None = None
                   ) -> DeploymentRecord | None:
    """Decide how the promoted set is served; recorded with who and why in the history.

    Champion and canary modes need a champion; a canary is a production model (not the
    champion) that starts at a share of at most 10% and then rises one step at a time
    (10 → 25 → 50 → 100%); it may always go down. Returns None when nothing changes.
    """
    require_role(store, actor, "deploy")
    if mode not in MODES:
        raise InvalidTransitionError(f"unknown deployment mode '{mode}'. Hint: modes are "
                                     f"{', '.join(MODES)}")
    if not reason.strip():
        raise InvalidTransitionError("a reason is required for a deployment change (field "
                                     "'reason')")
    with store.decision(scope.name) as tx:
        stages = tx.stages()
        if mode != "ensemble" and champion_of(stages) is None:
            raise InvalidTransitionError(f"{mode} mode needs a champion in scope "
                                         f"'{scope.name}'. Hint: make a model champion first")
        current = deployment_in(tx, scope)
        if mode == "canary":
            _check_canary(current, stages, canary, canary_share)
        else:
            canary, canary_share = None, None
        if (current.mode, current.canary_model, current.canary_share) == (
                mode, canary, canary_share):
            return None
        settle(tx, scope, Change("deployment", mode=mode, canary_model=canary,
                                 canary_share=canary_share),
               needed=deployment_needs_approval(scope, current, mode, canary_share))
        return tx.record_deployment(mode, canary, canary_share, actor=actor, reason=reason)


def deployment_in(tx: Decision, scope: Scope) -> DeploymentRecord:
    """The deployment in force as the decision ``tx`` sees it (see :func:`deployment_of`)."""
    return tx.latest_deployment() or _from_scope_json(scope)


def follow_move(tx: Decision, scope: Scope, moved: Transition) -> DeploymentRecord | None:
    """Keep the deployment servable after a stage move, in the move's own decision; returns
    the deployment it recorded.

    The canary made champion, or taken out of the promoted set, ends the canary (champion
    mode); the champion taken out of the promoted set ends champion and canary modes
    (ensemble). Each change is recorded with the move's actor and a reason naming the move.
    """
    followed = mode_after_move(deployment_in(tx, scope), moved.model_name, moved.from_stage,
                               moved.to_stage)
    if followed is None:
        return None
    mode, why = followed
    return tx.record_deployment(mode, None, None, actor=moved.actor,
                                reason=f"{why}: {moved.reason}")


def mode_after_move(current: DeploymentRecord, name: str, from_stage: str, to_stage: str
                    ) -> tuple[Mode, str] | None:
    """The mode a stage move forces, and why (None when the deployment stays as it is)."""
    left = to_stage not in PROMOTED_STAGES
    if current.mode != "ensemble" and from_stage == "champion" and left:
        return "ensemble", f"champion {name} left production"
    if current.mode == "canary" and current.canary_model == name and (
            left or to_stage == "champion"):
        became = "became champion" if to_stage == "champion" else "left production"
        return "champion", f"canary {name} {became}"
    return None


def describe_serving(mode: str, stages: Mapping[str, str], canary: str | None = None,
                     share: float | None = None) -> str:
    """What the engine serves, in words, for a mode and the models' stages by name."""
    promoted = sorted(n for n, s in stages.items() if s in PROMOTED_STAGES)
    champion = next((n for n, s in stages.items() if s == "champion"), None)
    if not promoted:
        return "nothing is promoted: nothing can be exported to serve"
    if mode == "ensemble" or champion is None:
        return f"ensemble of {len(promoted)} promoted model(s): {', '.join(promoted)}"
    others = [n for n in promoted if n not in (champion, canary)]
    shadow = f"; {', '.join(others)} in shadow (scored, not served)" if others else ""
    if mode == "canary" and canary is not None and share is not None:
        return (f"canary: {canary} answers {share:.0%} of requests, champion {champion} the "
                f"rest{shadow}")
    return f"champion {champion} answers every request{shadow}"


def serving_after(store: Store, scope: Scope, moves: Sequence[tuple[str, str]]) -> str:
    """What the engine will serve after the stage ``moves`` (model, stage) in this order, with
    the deployment following each one as the lifecycle makes it (and the export that
    follows); a new champion archives the old one."""
    stages = {n: r.stage for n, r in store.stages(scope.name).items()}
    current = deployment_of(store, scope)
    mode, canary, share = current.mode, current.canary_model, current.canary_share
    for name, to_stage in moves:
        old_champion = next((n for n, s in stages.items() if s == "champion"), None)
        if to_stage == "champion" and old_champion not in (None, name):
            stages[str(old_champion)] = "archived"
        followed = mode_after_move(replace(current, mode=mode, canary_model=canary,
                                           canary_share=share),
                                   name, stages.get(name, stage_of({}, name)), to_stage)
        stages[name] = to_stage
        if followed is not None:
            mode, canary, share = followed[0], None, None
    return describe_serving(mode, stages, canary, share)


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


def _from_scope_json(scope: Scope) -> DeploymentRecord:
    """The deployment ``scope.json`` asks for, before any decision (id 0)."""
    default = scope.config.deployment
    return DeploymentRecord(0, scope.name, default.mode, default.canary, default.canary_share,
                            "scope.json", "default from scope.json",
                            datetime(1970, 1, 1, tzinfo=UTC))
