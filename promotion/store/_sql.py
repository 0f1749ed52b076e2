"""The store on any SQLAlchemy database: SQLite embedded (the default, a file in the models
root), PostgreSQL shared (``PROMOTION_DB_URL``).

Row objects never leave this module: callers get the records of ``_entities``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ..errors import InvalidTransitionError
from ..settings import db_url
from ..vocabulary import DEFAULT_STAGE, MODES, ROLES, STAGES
from . import _tables as tables
from ._abstract import Decision, Store
from ._connect import guard_for, make_engine, no_sqlite_file, opening, public_url
from ._entities import (
    CachedEvaluation,
    Change,
    ChangeRequest,
    DeploymentRecord,
    MoveKind,
    RoleGrant,
    SchemaStatus,
    StageRecord,
    SyncState,
    Transition,
    WeightsVersion,
)
from ._migrations import HEAD, known_revisions, schema_revision, upgrade_schema


def default_db_url(models_dir: Path) -> str:
    """``PROMOTION_DB_URL`` if set, else the SQLite file in the models root (see settings)."""
    return db_url(models_dir)


def open_store(models_dir: Path, url: str | None = None) -> SqlStore:
    """The store for a models root (creating its tables if needed)."""
    url = url or default_db_url(models_dir)
    if url.startswith("sqlite:///"):
        Path(models_dir).mkdir(parents=True, exist_ok=True)
    return SqlStore(url)


def schema_status(models_dir: Path, url: str | None = None) -> SchemaStatus:
    """The store's schema revision against the newest one, without changing the database."""
    url = url or default_db_url(models_dir)
    if no_sqlite_file(url):  # connecting would create the file: nothing to read yet
        return SchemaStatus(public_url(url), None, HEAD)
    guard = guard_for(url)
    with opening(url, guard):
        engine = make_engine(url, guard)
        try:
            revision = schema_revision(engine)
        finally:
            engine.dispose()
    known = revision in (None, HEAD) or revision in known_revisions()
    return SchemaStatus(public_url(url), revision, HEAD, known)


class SqlStore(Store):
    """The store on any SQLAlchemy database (SQLite embedded, PostgreSQL shared)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._guard = guard_for(url)  # faults as messages naming the database
        with opening(url, self._guard):
            self._engine = make_engine(url, self._guard)
            try:
                upgrade_schema(self._engine)
            except BaseException:
                self._engine.dispose()
                raise
        self._guard.opened()

    def close(self) -> None:
        self._engine.dispose()

    def check(self) -> None:
        self._guard.check_file("what this process read from it may be out of date")

    @contextmanager
    def _session(self, lock_scope: str | None = None) -> Iterator[Connection]:
        """One write transaction: commit on success, roll back on error.

        With ``lock_scope``, writers of the same scope take turns: SQLite's BEGIN IMMEDIATE
        already serializes every writer; PostgreSQL takes a transaction-level advisory lock
        on the scope, so a read-then-write inside the transaction cannot lose an update.
        Another process's lock is waited for at most the lock wait, a SQLite file removed or
        replaced meanwhile is refused (see ``_faults``), and faults leave as messages.
        """
        with self._guard.translating(), self._engine.connect() as conn:
            conn.execution_options(promotion_write=True)
            with conn.begin():
                if lock_scope is not None and conn.dialect.name == "postgresql":
                    self._guard.take_pg_lock(conn, f"promotion scope {lock_scope}")
                yield conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection for reads; faults leave as messages."""
        with self._guard.translating(), self._engine.connect() as conn:
            yield conn

    # evaluation cache -------------------------------------------------------------------
    def get_evaluations(self, keys: list[str]) -> dict[str, CachedEvaluation]:
        found: dict[str, CachedEvaluation] = {}
        table = tables.evaluation
        cols = (table.c.cache_key, table.c.payload, table.c.replicates)
        with self._reading() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                for key, payload, reps in conn.execute(
                    select(*cols).where(table.c.cache_key.in_(chunk))
                ):
                    found[key] = CachedEvaluation(key, json.loads(payload), reps)
        return found

    def put_evaluation(self, key: str, model_sha256: str, holdout_sha256: str,
                       payload: dict[str, Any], replicates: bytes | None,
                       rows: bytes | None) -> None:
        values = {
            "cache_key": key, "model_sha256": model_sha256, "holdout_sha256": holdout_sha256,
            "payload": json.dumps(payload), "replicates": replicates, "rows": rows,
            "created_at": _now(),
        }
        with self._session() as conn:
            # Two processes may measure the same model at once: the last one wins, no error.
            conn.execute(_upsert(conn, tables.evaluation, values, ["cache_key"]))

    def get_rows(self, key: str) -> bytes | None:
        table = tables.evaluation
        with self._reading() as conn:
            return conn.execute(
                select(table.c.rows).where(table.c.cache_key == key)
            ).scalar_one_or_none()

    # stages, history and decisions ---------------------------------------------------------
    def stages(self, scope: str) -> dict[str, StageRecord]:
        with self._reading() as conn:
            return _stage_records(conn, scope)

    def history(self, scope: str) -> list[Transition]:
        table = tables.transition
        with self._reading() as conn:
            rows = conn.execute(select(table).where(table.c.scope == scope)
                                .order_by(table.c.id))
            return [
                Transition(r.id, r.scope, r.model_name, r.model_sha256, r.from_stage,
                           r.to_stage, r.actor, r.reason, bool(r.overridden), _utc(r.at),
                           r.action)
                for r in rows
            ]

    def deployments(self, scope: str) -> list[DeploymentRecord]:
        table = tables.deployment
        with self._reading() as conn:
            rows = conn.execute(select(table).where(table.c.scope == scope)
                                .order_by(table.c.id))
            return [_deployment_record(r) for r in rows]

    @contextmanager
    def decision(self, scope: str) -> Iterator[Decision]:
        try:
            with self._session(lock_scope=scope) as conn:
                yield SqlDecision(conn, scope, _now())
        except IntegrityError as err:
            if not _uniqueness_refused(err):
                raise
            # Only reachable when another writer bypassed the scope lock: the database's own
            # uniqueness rules (one champion per scope, one record per model) refused the
            # write, and nothing of this decision was kept.
            raise InvalidTransitionError(
                f"the stages of scope '{scope}' changed meanwhile; look again and retry"
            ) from None

    def requests(self, scope: str) -> list[ChangeRequest]:
        table = tables.change_request
        with self._reading() as conn:
            rows = conn.execute(select(table).where(table.c.scope == scope)
                                .order_by(table.c.id))
            return [_change_request(r) for r in rows]

    # roles (team mode) -------------------------------------------------------------------
    def roles(self) -> dict[str, RoleGrant]:
        table = tables.role_grant
        with self._reading() as conn:
            return {r.subject: RoleGrant(r.subject, r.role, r.granted_by, _utc(r.at))
                    for r in conn.execute(select(table).order_by(table.c.subject))}

    def set_role(self, subject: str, role: str | None, *, actor: str) -> RoleGrant | None:
        table = tables.role_grant
        if not subject.strip():
            raise InvalidTransitionError("a role needs an email, @domain or cli:account "
                                         "(field 'subject')")
        if role is not None and role not in ROLES:
            raise InvalidTransitionError(f"unknown role '{role}'. Hint: roles are "
                                         f"{', '.join(ROLES)}")
        if not actor.strip():
            raise InvalidTransitionError("who is deciding? Hint: give your name (field 'user')")
        with self._session() as conn:
            if role is None:
                conn.execute(table.delete().where(table.c.subject == subject))
                return None
            grant = RoleGrant(subject, role, actor, _now())
            conn.execute(_upsert(conn, table, vars(grant), ["subject"]))
        return grant

    # weights and annotations ------------------------------------------------------------
    def current_weights(self, scope: str) -> WeightsVersion | None:
        table = tables.weights
        with self._reading() as conn:
            row = conn.execute(
                select(table).where(table.c.scope == scope)
                .order_by(table.c.version.desc()).limit(1)
            ).first()
        if row is None:
            return None
        return WeightsVersion(row.scope, row.version, json.loads(row.weights), row.actor,
                              _utc(row.at))

    def save_weights(self, scope: str, weights: dict[str, float], *, actor: str) -> WeightsVersion:
        table = tables.weights
        now = _now()
        for _ in range(5):  # two writers may race for the next version number
            try:
                with self._session() as conn:
                    latest = conn.execute(
                        select(func.max(table.c.version)).where(table.c.scope == scope)
                    ).scalar_one_or_none() or 0
                    conn.execute(table.insert().values(
                        scope=scope, version=latest + 1, weights=json.dumps(weights),
                        actor=actor, at=now,
                    ))
                return WeightsVersion(scope, latest + 1, dict(weights), actor, now)
            except IntegrityError:
                continue
        raise InvalidTransitionError(f"could not save weights of scope '{scope}': busy, retry")

    def annotations(self, scope: str) -> dict[str, dict[str, str]]:
        table = tables.annotation
        found: dict[str, dict[str, str]] = {}
        with self._reading() as conn:
            for row in conn.execute(select(table).where(table.c.scope == scope)):
                found.setdefault(row.model_name, {})[row.field] = row.text
        return found

    def annotate(self, scope: str, model_name: str, field: str, text_value: str, *,
                 actor: str) -> None:
        table = tables.annotation
        key = ((table.c.scope == scope) & (table.c.model_name == model_name)
               & (table.c.field == field))
        with self._session() as conn:
            if not text_value.strip():
                conn.execute(table.delete().where(key))
                return
            values = {"scope": scope, "model_name": model_name, "field": field,
                      "text": text_value, "actor": actor, "at": _now()}
            conn.execute(_upsert(conn, table, values, ["scope", "model_name", "field"]))

    # mirroring to MLflow -----------------------------------------------------------------
    def sync_state(self, scope: str) -> SyncState | None:
        table = tables.mlflow_sync
        with self._reading() as conn:
            row = conn.execute(select(table).where(table.c.scope == scope)).first()
        if row is None:
            return None
        return SyncState(row.scope, bool(row.pending), row.detail, _utc(row.attempted_at),
                         _utc(row.pending_since) if row.pending_since else None)

    def record_sync(self, scope: str, *, pending: bool, detail: str) -> SyncState:
        table = tables.mlflow_sync
        now = _now()
        with self._session(lock_scope=scope) as conn:
            since = conn.execute(
                select(table.c.pending_since).where(table.c.scope == scope)
            ).scalar_one_or_none()
            since = (since or now) if pending else None
            values = {"scope": scope, "pending": pending, "detail": detail,
                      "attempted_at": now, "pending_since": since}
            conn.execute(_upsert(conn, table, values, ["scope"]))
        return SyncState(scope, pending, detail, now, _utc(since) if since else None)


class SqlDecision(Decision):
    """A decision on one scope, inside the write transaction ``SqlStore.decision`` holds."""

    def __init__(self, conn: Connection, scope: str, at: datetime) -> None:
        self.scope = scope
        self._conn = conn
        self._at = at  # one decision, one moment: all its records carry it
        self._moves: list[Transition] = []

    @property
    def moves(self) -> tuple[Transition, ...]:
        return tuple(self._moves)

    def stages(self) -> dict[str, StageRecord]:
        return _stage_records(self._conn, self.scope)

    def latest_deployment(self) -> DeploymentRecord | None:
        table = tables.deployment
        row = self._conn.execute(select(table).where(table.c.scope == self.scope)
                                 .order_by(table.c.id.desc()).limit(1)).first()
        return _deployment_record(row) if row is not None else None

    def record_move(self, model_name: str, from_stage: str, to_stage: str, *, actor: str,
                    reason: str, model_sha256: str | None, overridden: bool = False,
                    action: MoveKind = "move") -> Transition:
        _require_who_and_why(actor, reason, "every transition. Hint: say why")
        for stage in (from_stage, to_stage):
            if stage not in STAGES:
                raise InvalidTransitionError(f"unknown stage '{stage}'. Hint: stages are "
                                             f"{', '.join(STAGES)}")
        if from_stage == to_stage:
            raise InvalidTransitionError(f"'{model_name}' is {to_stage} already: a move "
                                         "needs another stage")
        self._set_stage(model_name, from_stage, to_stage, model_sha256, actor, reason)
        new_id = self._conn.execute(tables.transition.insert().values(
            scope=self.scope, model_name=model_name, model_sha256=model_sha256,
            from_stage=from_stage, to_stage=to_stage, actor=actor, reason=reason,
            overridden=overridden, action=action, at=self._at,
        )).inserted_primary_key[0]
        moved = Transition(new_id, self.scope, model_name, model_sha256, from_stage, to_stage,
                           actor, reason, overridden, self._at, action)
        self._moves.append(moved)
        return moved

    def record_deployment(self, mode: str, canary_model: str | None,
                          canary_share: float | None, *, actor: str,
                          reason: str) -> DeploymentRecord:
        _require_who_and_why(actor, reason, "a deployment change")
        if mode not in MODES:
            raise InvalidTransitionError(f"unknown deployment mode '{mode}'. Hint: modes are "
                                         f"{', '.join(MODES)}")
        new_id = self._conn.execute(tables.deployment.insert().values(
            scope=self.scope, mode=mode, canary_model=canary_model, canary_share=canary_share,
            actor=actor, reason=reason, at=self._at)).inserted_primary_key[0]
        return DeploymentRecord(new_id, self.scope, mode, canary_model, canary_share, actor,
                                reason, self._at)

    def record_request(self, change: Change, *, actor: str, reason: str,
                       business_impact: str, risk_assessment: str) -> ChangeRequest:
        _require_who_and_why(actor, reason, "a request")
        for field, value in (("business_impact", business_impact),
                             ("risk_assessment", risk_assessment)):
            if not value.strip():
                raise InvalidTransitionError(f"a request needs its {field.replace('_', ' ')} "
                                             f"(field '{field}')")
        values = {"scope": self.scope, **vars(change), "requested_by": actor,
                  "reason": reason, "business_impact": business_impact,
                  "risk_assessment": risk_assessment, "requested_at": self._at,
                  "status": "pending"}
        new_id = self._conn.execute(tables.change_request.insert().values(**values)
                                    ).inserted_primary_key[0]
        return ChangeRequest(new_id, self.scope, change, actor, reason, business_impact,
                             risk_assessment, self._at)

    def request(self, request_id: int) -> ChangeRequest | None:
        table = tables.change_request
        row = self._conn.execute(select(table).where(
            (table.c.id == request_id) & (table.c.scope == self.scope))).first()
        return _change_request(row) if row is not None else None

    def decide_request(self, request_id: int, status: str, *, actor: str,
                       reason: str) -> ChangeRequest:
        _require_who_and_why(actor, reason, "approving or rejecting a request")
        if status not in ("approved", "rejected"):
            raise InvalidTransitionError(f"unknown request status '{status}'. Hint: approved "
                                         "or rejected")
        table = tables.change_request
        done = self._conn.execute(table.update().where(
            (table.c.id == request_id) & (table.c.scope == self.scope)
            & (table.c.status == "pending")).values(
            status=status, decided_by=actor, decision_reason=reason, decided_at=self._at))
        if done.rowcount != 1:
            raise InvalidTransitionError(f"scope '{self.scope}' has no pending request "
                                         f"#{request_id}. Hint: see the pending requests")
        return self.request(request_id)  # type: ignore[return-value]

    def _set_stage(self, model_name: str, from_stage: str, to_stage: str,
                   model_sha256: str | None, actor: str, reason: str) -> None:
        """Set the model's stage record, refusing when it is not at ``from_stage``."""
        table = tables.model_stage
        key = (table.c.scope == self.scope) & (table.c.model_name == model_name)
        values = {"stage": to_stage, "model_sha256": model_sha256, "updated_at": self._at,
                  "updated_by": actor, "reason": reason}
        # The usual case in one statement: the record is there, at the stage it leaves.
        if self._conn.execute(table.update().where(key & (table.c.stage == from_stage))
                              .values(**values)).rowcount == 1:
            return
        recorded = self._conn.execute(select(table.c.stage).where(key)).scalar_one_or_none()
        if recorded is not None or from_stage != DEFAULT_STAGE:
            raise InvalidTransitionError(
                f"model '{model_name}' of scope '{self.scope}' is {recorded or DEFAULT_STAGE}, "
                f"not {from_stage}; look again and retry")
        self._conn.execute(table.insert().values(scope=self.scope, model_name=model_name,
                                                 **values))


def _require_who_and_why(actor: str, reason: str, what: str) -> None:
    """Every record says who decided and why."""
    if not reason.strip():
        raise InvalidTransitionError(f"a reason is required for {what} (field 'reason')")
    if not actor.strip():
        raise InvalidTransitionError("who is deciding? Hint: give your name (field 'user')")


def _uniqueness_refused(err: IntegrityError) -> bool:
    """True when the database refused a row that breaks a uniqueness rule (a second champion
    of a scope, a second record of a model): SQLite says so, PostgreSQL's code is 23505."""
    return (getattr(err.orig, "sqlstate", None) == "23505"
            or "UNIQUE constraint failed" in str(err.orig))


def _stage_records(conn: Connection, scope: str) -> dict[str, StageRecord]:
    table = tables.model_stage
    rows = conn.execute(select(table).where(table.c.scope == scope))
    return {row.model_name: StageRecord(row.scope, row.model_name, row.stage, row.model_sha256,
                                        _utc(row.updated_at), row.updated_by, row.reason)
            for row in rows}


def _deployment_record(row: Any) -> DeploymentRecord:
    return DeploymentRecord(row.id, row.scope, row.mode, row.canary_model, row.canary_share,
                            row.actor, row.reason, _utc(row.at))


def _change_request(row: Any) -> ChangeRequest:
    change = Change(row.kind, row.model_name, row.to_stage, bool(row.override), row.mode,
                    row.canary_model, row.canary_share)
    return ChangeRequest(row.id, row.scope, change, row.requested_by, row.reason,
                         row.business_impact, row.risk_assessment, _utc(row.requested_at),
                         row.status, row.decided_by, row.decision_reason,
                         _utc(row.decided_at) if row.decided_at else None)


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _upsert(conn: Connection, table: Table, values: dict[str, Any], key: list[str]) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE for the two dialects the store supports."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table).values(**values)
    changed = {name: statement.excluded[name] for name in values if name not in key}
    return statement.on_conflict_do_update(index_elements=key, set_=changed)
