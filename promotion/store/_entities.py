"""What the store hands out: plain frozen records, never database rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..vocabulary import MoveKind

#: What kind of move a history entry records: an ordinary move, or a rollback to the
#: previous champion. A fact about the move, not a rule the store applies.


@dataclass(frozen=True)
class CachedEvaluation:
    """A stored evaluation: its JSON payload and the bootstrap replicates' bytes."""

    cache_key: str
    payload: dict[str, Any]
    replicates: bytes | None


@dataclass(frozen=True)
class StageRecord:
    """The current stage of one model of a scope."""

    scope: str
    model_name: str
    stage: str
    model_sha256: str | None
    updated_at: datetime
    updated_by: str
    reason: str


@dataclass(frozen=True)
class Transition:
    """One entry of the append-only stage history."""

    id: int
    scope: str
    model_name: str
    model_sha256: str | None
    from_stage: str
    to_stage: str
    actor: str
    reason: str
    overridden: bool
    at: datetime
    action: MoveKind = "move"


@dataclass(frozen=True)
class WeightsVersion:
    """One saved version of a scope's composite weights."""

    scope: str
    version: int
    weights: dict[str, float]
    actor: str
    at: datetime


@dataclass(frozen=True)
class SyncState:
    """The last attempt to mirror a scope to MLflow: what it did, or why it is pending."""

    scope: str
    pending: bool
    detail: str
    attempted_at: datetime
    pending_since: datetime | None


@dataclass(frozen=True)
class DeploymentRecord:
    """One decision on how a scope's promoted set is served."""

    id: int
    scope: str
    mode: str
    canary_model: str | None
    canary_share: float | None
    actor: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class SchemaStatus:
    """Where a store's schema stands: its revision (None: no tables yet) and the newest."""

    where: str  # the database, without any password
    revision: str | None
    head: str
    known: bool = True  # False: a newer release upgraded it past what this one knows

    @property
    def current(self) -> bool:
        return self.revision == self.head


@dataclass(frozen=True)
class RoleGrant:
    """A role given to an email, an email domain (``@example.com``) or a command-line
    account (``cli:ana``)."""

    subject: str
    role: str
    granted_by: str
    at: datetime


@dataclass(frozen=True)
class Change:
    """What a request asks for: a stage move (``model_name`` to ``to_stage``, overriding
    failing gates or not), a rollback (to ``model_name``) or a deployment change."""

    kind: str
    model_name: str | None = None
    to_stage: str | None = None
    override: bool = False
    mode: str | None = None
    canary_model: str | None = None
    canary_share: float | None = None


@dataclass(frozen=True)
class ChangeRequest:
    """A change waiting for, or given, a second person's decision."""

    id: int
    scope: str
    change: Change
    requested_by: str
    reason: str
    business_impact: str
    risk_assessment: str
    requested_at: datetime
    status: str = "pending"
    decided_by: str | None = None
    decision_reason: str | None = None
    decided_at: datetime | None = None
