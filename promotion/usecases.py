"""The operations the app and the command line share, over a models root and its store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .auth import require_role
from .contract import cards_files
from .errors import InvalidInputError, InvalidTransitionError, PromotionError
from .evaluation._results import Progress, ScopeEvaluation
from .evaluation._runner import evaluate_scope
from .export._build import TEXT_FIELDS, ExportPaths, export_results, promoted_set
from .lifecycle._approvals import approving
from .lifecycle._deployment import deployment_of, describe_serving, set_deployment
from .lifecycle._transitions import demote, rollback, transition_model
from .metrics import default_weights
from .scopes._discovery import Scope, load_scope
from .scoring._composite import Leaderboard, rank_models, resolve_weights
from .store._abstract import Store
from .store._entities import ChangeRequest, DeploymentRecord, Transition, WeightsVersion
from .vocabulary import DEFAULT_WEIGHTS_METHOD, PROMOTED_STAGES, WeightsMethod


def effective_weights(scope: Scope, store: Store) -> dict[str, float]:
    """The weights a scope ranks with: the last saved version, else scope.json, else defaults."""
    saved = store.current_weights(scope.name)
    if saved is not None:
        return resolve_weights(scope.task, saved.weights)
    return resolve_weights(scope.task, scope.config.weights or default_weights(scope.task))


@dataclass(frozen=True)
class ScopeState:
    """A scope as decisions see it: its files, their evaluation and the ranking."""

    scope: Scope
    evaluation: ScopeEvaluation
    board: Leaderboard


def scope_state(models_dir: Path, scope_name: str, store: Store, *,
                progress: Progress | None = None, n_jobs: int = -1) -> ScopeState:
    """Evaluate (cached) and rank every model of a scope with its effective weights."""
    scope = load_scope(models_dir, scope_name)
    evaluation = evaluate_scope(scope, store, n_jobs=n_jobs, progress=progress)
    return ScopeState(scope, evaluation, rank_models(evaluation, effective_weights(scope, store)))


def build_leaderboard(models_dir: Path, scope_name: str, store: Store, *,
                      progress: Progress | None = None, n_jobs: int = -1
                      ) -> tuple[Leaderboard, ScopeEvaluation]:
    """The ranked leaderboard of a scope and the evaluation behind it."""
    state = scope_state(models_dir, scope_name, store, progress=progress, n_jobs=n_jobs)
    return state.board, state.evaluation


def change_stage(models_dir: Path, scope_name: str, store: Store, model_name: str,
                 to_stage: str, *, actor: str, reason: str, override: bool = False
                 ) -> Transition | None:
    """Move one model to ``to_stage`` (checked, gated, recorded; see ``transition_model``);
    a served scope is exported again when the move changes what it serves."""
    state = scope_state(models_dir, scope_name, store)
    _refuse_emptying(models_dir, state.scope, store, model_name, to_stage)
    moved = transition_model(store, state.scope, state.evaluation, state.board, model_name,
                             to_stage, actor=actor, reason=reason, override=override)
    keep_serving_decisions(models_dir, scope_name, store, moved)
    return moved


def demote_model(models_dir: Path, scope_name: str, store: Store, model_name: str, *,
                 actor: str, reason: str) -> Transition | None:
    """Take a model out of the promoted set (see ``demote``), exporting again if served."""
    state = scope_state(models_dir, scope_name, store)
    _refuse_emptying(models_dir, state.scope, store, model_name, "archived")
    moved = demote(store, state.scope, state.evaluation, state.board, model_name, actor=actor,
                   reason=reason)
    keep_serving_decisions(models_dir, scope_name, store, moved)
    return moved


def roll_back(models_dir: Path, scope_name: str, store: Store, *, actor: str, reason: str
              ) -> Transition:
    """Undo the last change of champion (see ``rollback``), exporting again if served."""
    moved = rollback(store, load_scope(models_dir, scope_name), actor=actor, reason=reason)
    keep_serving_decisions(models_dir, scope_name, store, moved)
    return moved


def keep_serving_decisions(models_dir: Path, scope_name: str, store: Store,
                           moved: Transition | None) -> ExportPaths | None:
    """Export again when a scope that is served (it has an export) saw a move in or out of
    its promoted set, so the engine never serves a set or mode that was decided away."""
    if moved is None or not cards_files(Path(models_dir), scope_name):
        return None
    if moved.from_stage not in PROMOTED_STAGES and moved.to_stage not in PROMOTED_STAGES:
        return None
    return export_scope(models_dir, scope_name, store,
                        latest_weights_method(models_dir, scope_name))


def stale_export(models_dir: Path, scope_name: str, store: Store) -> str | None:
    """How the served export (the newest cards file) differs from the decisions in force, in
    words; None when it serves what was decided, or when nothing was exported yet."""
    from .engine._cards import read_cards  # only pydantic and the cards: light

    found = cards_files(Path(models_dir), scope_name)
    if not found:
        return None
    try:
        cards = read_cards(found[-1])
    except PromotionError as err:
        return str(err)
    served = {c.model_name: c.stage for c in cards}
    decided = {n: r.stage for n, r in store.stages(scope_name).items()
               if r.stage in PROMOTED_STAGES}
    deployment = deployment_of(store, load_scope(models_dir, scope_name))
    canary = next((c for c in cards if c.role == "canary"), None)
    in_file = (cards[0].deployment_mode, canary.model_name if canary else None,
               canary.traffic_share if canary else None)
    wanted = (deployment.mode, deployment.canary_model, deployment.canary_share)
    if served == decided and in_file == wanted:
        return None
    return (f"{found[-1].name} serves {describe_serving(in_file[0], served, *in_file[1:])}; "
            f"decided: {describe_serving(wanted[0], decided, *wanted[1:])}")


def _refuse_emptying(models_dir: Path, scope: Scope, store: Store, model_name: str,
                     to_stage: str) -> None:
    """A served scope keeps at least one promoted model: with none, no export could replace
    the one the engine serves."""
    if to_stage in PROMOTED_STAGES or not cards_files(Path(models_dir), scope.name):
        return
    promoted = {n for n, r in store.stages(scope.name).items() if r.stage in PROMOTED_STAGES}
    if promoted == {model_name}:
        raise InvalidTransitionError(
            f"'{model_name}' is the last promoted model of scope '{scope.name}', which is "
            "served; without it nothing could be exported to replace what the engine serves. "
            "Hint: promote another model first")


def export_scope(models_dir: Path, scope_name: str, store: Store,
                 method: WeightsMethod = DEFAULT_WEIGHTS_METHOD) -> ExportPaths:
    """Evaluate (cached), build the promoted models' cards and write both export files."""
    state = scope_state(models_dir, scope_name, store)
    promoted = promoted_set(state.scope, store, state.evaluation, state.board)
    return export_results(promoted, store, method)


def latest_weights_method(models_dir: Path, scope_name: str) -> WeightsMethod:
    """The weighting method of the newest export (the default when there is none or it is
    bad)."""
    from .engine._cards import read_cards  # only pydantic and the cards: light

    found = cards_files(Path(models_dir), scope_name)
    if not found:
        return DEFAULT_WEIGHTS_METHOD
    try:
        return read_cards(found[-1])[0].weights_method
    except PromotionError:
        return DEFAULT_WEIGHTS_METHOD


def deploy(models_dir: Path, scope_name: str, store: Store, mode: str, *, actor: str,
           reason: str, canary: str | None = None, canary_share: float | None = None
           ) -> tuple[DeploymentRecord | None, ExportPaths]:
    """Decide the deployment (checked, recorded) and export, so the engine serves it."""
    scope = load_scope(models_dir, scope_name)
    record = set_deployment(store, scope, mode, actor=actor, reason=reason, canary=canary,
                            canary_share=canary_share)
    return record, export_scope(models_dir, scope_name, store,
                                latest_weights_method(models_dir, scope_name))


def save_weights(store: Store, scope: Scope, weights: dict[str, float], *, actor: str
                 ) -> WeightsVersion:
    """Check composite weights against the scope's task and keep them as its next version."""
    require_role(store, actor, "weights")
    resolve_weights(scope.task, weights)
    return store.save_weights(scope.name, weights, actor=actor)


def edit_card_text(store: Store, scope_name: str, model_name: str, field: str, text: str, *,
                   actor: str) -> None:
    """Keep an analyst's wording of a card's text field; blank returns to the derived text."""
    require_role(store, actor, "notes")
    if field not in TEXT_FIELDS:
        raise InvalidInputError(f"unknown card text field '{field}'. Hint: fields are "
                                f"{', '.join(TEXT_FIELDS)}")
    store.annotate(scope_name, model_name, field, text, actor=actor)


def approve_request(models_dir: Path, scope_name: str, store: Store, request_id: int, *,
                    actor: str, reason: str) -> ChangeRequest:
    """Approve a pending request and carry its change out as its requester would have: the
    same move, rollback or deployment (with its export), gates checked again now. Returns
    the request as decided."""
    scope = load_scope(models_dir, scope_name)
    with approving(store, scope, request_id, actor=actor, reason=reason) as request:
        change, by = request.change, request.requested_by
        why = f"{request.reason} (request #{request.id}, approved by {actor}: {reason})"
        if change.kind == "move":
            change_stage(models_dir, scope_name, store, str(change.model_name),
                         str(change.to_stage), actor=by, reason=why, override=change.override)
        elif change.kind == "rollback":
            roll_back(models_dir, scope_name, store, actor=by, reason=why)
        else:
            deploy(models_dir, scope_name, store, str(change.mode), actor=by, reason=why,
                   canary=change.canary_model, canary_share=change.canary_share)
    return next(r for r in store.requests(scope_name) if r.id == request_id)
