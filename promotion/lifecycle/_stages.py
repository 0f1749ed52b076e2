"""Who stands where in a scope: its champion, its promoted set, the champion before."""

from __future__ import annotations

from collections.abc import Mapping

from ..store._abstract import Store
from ..store._entities import StageRecord
from ..vocabulary import PROMOTED_STAGES


def champion_of(stages: Mapping[str, StageRecord]) -> str | None:
    """The champion among a scope's stage records, if any."""
    return next((n for n, r in stages.items() if r.stage == "champion"), None)


def promoted_models(store: Store, scope_name: str) -> dict[str, StageRecord]:
    """The promoted set of a scope: models in production or champion, by name."""
    return {name: record for name, record in store.stages(scope_name).items()
            if record.stage in PROMOTED_STAGES}


def previous_champion(store: Store, scope_name: str) -> tuple[str, str | None] | None:
    """The champion before the current one (name and version), from the history."""
    crowned = [t for t in store.history(scope_name) if t.to_stage == "champion"]
    current = champion_of(store.stages(scope_name))
    for entry in reversed(crowned):
        if entry.model_name != current:
            return entry.model_name, entry.model_sha256
    return None
