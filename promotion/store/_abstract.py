"""The store's interface: what any backend keeps and how it is asked, in the manner of
MLflow's ``AbstractStore``. ``SqlStore`` (``_sql``) is the one implementation.

The store keeps records; the lifecycle keeps policy. A write takes the facts of what was
decided (who, what, why, which file) and checks only that they make a sound record; which
moves are allowed, when a move is already done and who gets archived are the lifecycle's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import Any

from ._entities import (
    CachedEvaluation,
    Change,
    ChangeRequest,
    DeploymentRecord,
    MoveKind,
    RoleGrant,
    StageRecord,
    SyncState,
    Transition,
    WeightsVersion,
)


class Decision(ABC):
    """One decision on one scope: a write transaction that holds the scope's lock.

    Reads see the scope as it is now, this decision's own writes included, and nobody else
    can change the scope until the decision ends: a rule checked on these reads still holds
    when the records are written. Everything recorded commits together when the ``with``
    block ends, or nothing does when it raises.
    """

    scope: str

    @property
    @abstractmethod
    def moves(self) -> tuple[Transition, ...]:
        """The moves recorded in this decision so far, in order."""

    @abstractmethod
    def stages(self) -> dict[str, StageRecord]:
        """The scope's stage records by model name (a model without one is not listed)."""

    @abstractmethod
    def latest_deployment(self) -> DeploymentRecord | None:
        """The newest deployment record of the scope, the one in force; None if none yet."""

    @abstractmethod
    def record_move(self, model_name: str, from_stage: str, to_stage: str, *, actor: str,
                    reason: str, model_sha256: str | None, overridden: bool = False,
                    action: MoveKind = "move") -> Transition:
        """Record that a model moved: its stage record becomes ``to_stage`` and the history
        gains the entry.

        Args:
            model_name: the model's folder name in the scope.
            from_stage: the stage it leaves; must be its recorded one (the default stage when
                it has no record), so the history always replays to the stored stages.
            to_stage: the stage it enters.
            actor, reason: who decided, and why.
            model_sha256: the model file's version the decision was about, if known.
            overridden: True when failing gates were overridden.
            action: what kind of move it was (``move`` or ``rollback``).

        Returns:
            The history entry written.

        Raises:
            InvalidTransitionError: an unknown stage, no actor or no reason, a move to the
                stage it is in, or a ``from_stage`` that is not the recorded one. A second
                champion in the scope is refused by the database itself, reported as
                ``InvalidTransitionError`` when the decision ends.
        """

    @abstractmethod
    def record_deployment(self, mode: str, canary_model: str | None,
                          canary_share: float | None, *, actor: str,
                          reason: str) -> DeploymentRecord:
        """Append a deployment record; it is in force from now on.

        Returns:
            The record written.

        Raises:
            InvalidTransitionError: an unknown mode, no actor or no reason.
        """

    @abstractmethod
    def record_request(self, change: Change, *, actor: str, reason: str,
                       business_impact: str, risk_assessment: str) -> ChangeRequest:
        """Record a pending request for ``change`` on this scope.

        Raises:
            InvalidTransitionError: no actor, or a blank reason, business impact or risk
                assessment.
        """

    @abstractmethod
    def request(self, request_id: int) -> ChangeRequest | None:
        """The request of this scope with that id, as it is now; None if there is none."""

    @abstractmethod
    def decide_request(self, request_id: int, status: str, *, actor: str,
                       reason: str) -> ChangeRequest:
        """Close a pending request as ``approved`` or ``rejected``, by ``actor``, because of
        ``reason``.

        Raises:
            InvalidTransitionError: no such pending request of this scope, an unknown status,
                no actor or no reason.
        """


class Store(ABC):
    """Promotions, stages, history, deployments, weights, annotations, the MLflow mirror's
    state and the evaluation cache.

    Every call may raise StoreBusyError (another process held a lock the call needs for
    longer than ``PROMOTION_LOCK_WAIT_S``) or StoreFaultError (a full disk, a read-only or
    damaged database, a server that does not answer, a SQLite file removed, replaced or
    truncated under this process); both are PromotionErrors naming the database, and a write
    that raises them saved nothing.
    """

    # evaluation cache --------------------------------------------------------------------
    @abstractmethod
    def get_evaluations(self, keys: list[str]) -> dict[str, CachedEvaluation]:
        """The cached evaluations among ``keys``, by key; keys not cached are left out."""

    @abstractmethod
    def put_evaluation(self, key: str, model_sha256: str, holdout_sha256: str,
                       payload: dict[str, Any], replicates: bytes | None,
                       rows: bytes | None) -> None:
        """Cache one evaluation under ``key``, replacing any entry of that key (two processes
        measuring the same model at once both succeed; the last one is kept)."""

    @abstractmethod
    def get_rows(self, key: str) -> bytes | None:
        """The per-row predictions cached with evaluation ``key``; None if none."""

    # stages, history and decisions ---------------------------------------------------------
    @abstractmethod
    def stages(self, scope: str) -> dict[str, StageRecord]:
        """The scope's current stage records by model name (a model without one is not
        listed: it is at the default stage)."""

    @abstractmethod
    def history(self, scope: str) -> list[Transition]:
        """Every recorded move of the scope, oldest first (append-only)."""

    @abstractmethod
    def deployments(self, scope: str) -> list[DeploymentRecord]:
        """Every deployment record of the scope, oldest first (the last is in force)."""

    @abstractmethod
    def decision(self, scope: str) -> AbstractContextManager[Decision]:
        """Open one decision on ``scope``: ``with store.decision(name) as tx: ...``.

        Returns:
            A context manager giving a :class:`Decision`. Deciders of the same scope take
            turns; readers outside are never blocked. It commits when the block ends and
            rolls back when it raises.

        Raises:
            InvalidTransitionError: on leaving the block, when the database refused what
                was recorded (a second champion: a writer that bypassed the lock).
        """

    @abstractmethod
    def requests(self, scope: str) -> list[ChangeRequest]:
        """Every request of the scope, pending or decided, oldest first."""

    # roles (team mode) ---------------------------------------------------------------------
    @abstractmethod
    def roles(self) -> dict[str, RoleGrant]:
        """Every role given, by subject (an email, ``@domain`` or ``cli:<account>``)."""

    @abstractmethod
    def set_role(self, subject: str, role: str | None, *, actor: str) -> RoleGrant | None:
        """Give ``subject`` ``role`` (replacing its role), or take its role away (None).

        Returns:
            The grant written, or None when a role was taken away.

        Raises:
            InvalidTransitionError: an unknown role, a blank subject or no actor.
        """

    # weights and annotations -------------------------------------------------------------
    @abstractmethod
    def current_weights(self, scope: str) -> WeightsVersion | None:
        """The newest saved version of the scope's weights; None if never saved."""

    @abstractmethod
    def save_weights(self, scope: str, weights: dict[str, float], *,
                     actor: str) -> WeightsVersion:
        """Save the weights as the scope's next version.

        Returns:
            The version saved.

        Raises:
            InvalidTransitionError: other writers kept taking the next number (busy).
        """

    @abstractmethod
    def annotations(self, scope: str) -> dict[str, dict[str, str]]:
        """The scope's notes: by model name, the text of each field."""

    @abstractmethod
    def annotate(self, scope: str, model_name: str, field: str, text_value: str, *,
                 actor: str) -> None:
        """Set one note of a model; blank text removes it."""

    # mirroring to MLflow -------------------------------------------------------------------
    @abstractmethod
    def sync_state(self, scope: str) -> SyncState | None:
        """The last attempt to mirror the scope to MLflow; None if never attempted."""

    @abstractmethod
    def record_sync(self, scope: str, *, pending: bool, detail: str) -> SyncState:
        """Record an attempt to mirror the scope; a pending one keeps the time the scope
        first fell behind, a successful one clears it.

        Returns:
            The state recorded.
        """

    @abstractmethod
    def check(self) -> None:
        """Raise StoreFaultError when the database the store opened is no longer there as it
        was (a SQLite file removed, replaced or truncated under this process), so a caller can
        say so rather than show what it held before. Writes check this themselves."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's connections."""
