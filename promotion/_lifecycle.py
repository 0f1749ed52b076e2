"""Promotion decisions: the promoted set of a scope, kept in the store with who, when and why."""

from __future__ import annotations

from ._discovery import Scope, file_sha256
from ._errors import InvalidInputError
from ._store import PROMOTED_STAGES, StageRecord, Store, Transition


def promote(store: Store, scope: Scope, model_name: str, *, actor: str, reason: str = ""
            ) -> Transition | None:
    """Put a model in production (the promoted set); a no-op when it is already promoted."""
    entry = scope.model(model_name)
    if entry.error is not None:
        raise InvalidInputError(f"cannot promote '{model_name}': {entry.error}")
    return store.transition(scope.name, model_name, "production", actor=_actor(actor),
                            reason=reason.strip(), model_sha256=file_sha256(entry.model_path),
                            unless=PROMOTED_STAGES)


def demote(store: Store, scope: Scope, model_name: str, *, actor: str, reason: str = ""
           ) -> Transition | None:
    """Take a model out of the promoted set (archived); a no-op when it is not promoted."""
    scope.model(model_name)
    record = store.stages(scope.name).get(model_name)
    return store.transition(scope.name, model_name, "archived", actor=_actor(actor),
                            reason=reason.strip(),
                            model_sha256=record.model_sha256 if record else None,
                            allowed_from=None, unless=_NOT_PROMOTED)


_NOT_PROMOTED = frozenset({"development", "candidate", "archived"})


def promoted_models(store: Store, scope_name: str) -> dict[str, StageRecord]:
    """The promoted set of a scope: models in production or champion, by name."""
    return {name: record for name, record in store.stages(scope_name).items()
            if record.stage in PROMOTED_STAGES}


def _actor(actor: str) -> str:
    actor = actor.strip()
    if not actor:
        raise InvalidInputError("who is deciding? Hint: enter your name (field 'user')")
    return actor
