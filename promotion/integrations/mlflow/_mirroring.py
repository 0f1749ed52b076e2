"""Mirroring a scope's decisions to MLflow: the champion alias and stage tags.

Mirroring never blocks or loses a local decision: it runs after a decision commits (it
subscribes to the lifecycle's committed moves, see :func:`mirror_committed_moves`); a failed
attempt is recorded in the store as pending and retried by the next move or by ``python -m
promotion mlflow-sync``, which sets the full desired state each time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import InvalidInputError, MissingDependencyError, PromotionError
from ...lifecycle._hooks import Committed
from ...scopes._config import MlflowMirror
from ...scopes._discovery import Scope
from ...store._abstract import Store
from ...store._sql import public_url
from ._client import first_line, is_not_found, mlflow_client

#: The alias that follows the scope's champion.
CHAMPION_ALIAS = "champion"
#: Version tags written by the mirror: the local stage, and why / who / when / where.
STAGE_TAG = "stage"
REASON_TAG = "promotion.reason"
ACTOR_TAG = "promotion.actor"
AT_TAG = "promotion.at"
SCOPE_TAG = "promotion.scope"
_TAG_VALUE_LIMIT = 5000  # MLflow's limit on a tag value


@dataclass(frozen=True)
class MirrorPlan:
    """The MLflow state a scope's stages call for: the champion's version and version tags."""

    registered_model: str
    champion_version: int | None
    tags: dict[int, dict[str, str]]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SyncReport:
    """One attempt to mirror a scope to MLflow: what changed, or why it is still pending."""

    scope: str
    registered_model: str
    pending: bool
    detail: str
    changes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def mirror_settings(scope: Scope) -> MlflowMirror:
    """The scope's ``mlflow`` setting; a scope without it is one clear message."""
    if scope.config.mlflow is None:
        raise InvalidInputError(
            f"{scope.shown(scope.folder / 'scope.json')}: field 'mlflow' is not set, so "
            "nothing is mirrored. Hint: add {\"tracking_uri\": ..., \"registered_model\": ...}")
    return scope.config.mlflow


def mirror_plan(store: Store, scope: Scope) -> MirrorPlan:
    """What MLflow should show for the scope's current stages (computed locally only)."""
    settings = mirror_settings(scope)
    name = settings.registered_model
    versions = {entry.name: entry.meta.mlflow.version for entry in scope.models
                if entry.meta is not None and entry.meta.mlflow is not None
                and entry.meta.mlflow.registered_model == name}
    tags: dict[int, dict[str, str]] = {}
    notes: list[str] = []
    champion: int | None = None
    for model_name, record in sorted(store.stages(scope.name).items()):
        version = versions.get(model_name)
        if version is None:
            notes.append(f"{model_name} is not from MLflow model '{name}', skipped")
            if record.stage == "champion":
                notes.append(f"champion {model_name} is not an MLflow version: alias "
                             f"'{CHAMPION_ALIAS}' removed")
            continue
        if record.stage == "champion":
            champion = version
        tags[version] = {STAGE_TAG: record.stage, REASON_TAG: record.reason[:_TAG_VALUE_LIMIT],
                         ACTOR_TAG: record.updated_by[:_TAG_VALUE_LIMIT],
                         AT_TAG: record.updated_at.isoformat(), SCOPE_TAG: scope.name}
    return MirrorPlan(name, champion, tags, notes)


def sync_mlflow(store: Store, scope: Scope) -> SyncReport:
    """Set the scope's full desired state in MLflow (aliases and tags); idempotent.

    The attempt is recorded in the store: pending until it succeeds, so a failure (an
    unreachable server, say) is shown and retried, never lost. Raises only for a scope
    without the setting and for MLflow not being installed (recorded as pending too).
    """
    settings = mirror_settings(scope)
    name = settings.registered_model
    store.record_sync(scope.name, pending=True, detail="started, not finished")
    try:
        with mlflow_client(settings.tracking_uri) as (_, client):
            plan = mirror_plan(store, scope)
            changes, notes = _apply(client, plan)
            for _ in range(3):  # a decision made meanwhile elsewhere: apply its state too
                latest = mirror_plan(store, scope)
                if latest == plan:
                    break
                plan = latest
                more, notes = _apply(client, plan)
                changes += more
    except MissingDependencyError as err:
        store.record_sync(scope.name, pending=True, detail=str(err))
        raise
    except Exception as err:  # any failure leaves the sync pending; the decision stands
        detail = (f"MLflow at {public_url(settings.tracking_uri)} not updated: "
                  f"{first_line(err)}")
        store.record_sync(scope.name, pending=True, detail=detail)
        return SyncReport(scope.name, name, True, detail)
    notes = plan.notes + notes
    done = "; ".join(changes) if changes else "already up to date"
    detail = f"MLflow model '{name}': {done}" + (f"; note: {'; '.join(notes)}" if notes else "")
    store.record_sync(scope.name, pending=False, detail=detail)
    return SyncReport(scope.name, name, False, detail, tuple(changes), tuple(notes))


def _apply(client: Any, plan: MirrorPlan) -> tuple[list[str], list[str]]:
    """Change in MLflow only what differs from the plan; returns (changes, notes)."""
    from mlflow.exceptions import MlflowException

    name = plan.registered_model
    aliases = client.get_registered_model(name).aliases or {}
    changes: list[str] = []
    notes: list[str] = []
    gone: set[int] = set()
    for version, wanted in sorted(plan.tags.items()):
        try:
            current = client.get_model_version(name, str(version)).tags or {}
        except MlflowException as err:
            if not is_not_found(err):
                raise
            notes.append(f"version {version} is no longer in MLflow")
            gone.add(version)
            continue
        differing = {k: v for k, v in wanted.items() if current.get(k) != v}
        for key, value in differing.items():
            client.set_model_version_tag(name, str(version), key, value)
        if differing:
            changes.append(f"version {version} {STAGE_TAG}={wanted[STAGE_TAG]}")
    aliased = aliases.get(CHAMPION_ALIAS)
    target = plan.champion_version
    if target is None or target in gone:
        if aliased is not None:
            client.delete_registered_model_alias(name, CHAMPION_ALIAS)
            changes.append(f"alias '{CHAMPION_ALIAS}' removed")
    elif str(aliased) != str(target):
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(target))
        changes.append(f"alias '{CHAMPION_ALIAS}' -> version {target}")
    return changes, notes


def mirror_decisions(store: Store, scope: Scope) -> SyncReport | None:
    """After a committed decision: mirror the scope if its ``mlflow`` setting asks for it.

    Never raises for MLflow's sake: the local decision is already made; a failure is recorded
    as pending (see :func:`sync_mlflow`). None when the scope does not mirror.
    """
    if scope.config.mlflow is None:
        return None
    try:
        return sync_mlflow(store, scope)
    except PromotionError as err:
        return SyncReport(scope.name, scope.config.mlflow.registered_model, True, str(err))


def mirror_committed_moves(committed: Committed) -> SyncReport | None:
    """The lifecycle's after-commit subscriber (``lifecycle.subscribe``): mirror the scope of
    the committed moves when its ``mlflow`` setting asks for it; MLflow is imported only then."""
    return mirror_decisions(committed.store, committed.scope)
