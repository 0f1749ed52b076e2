"""Where decisions and measurements live: one small interface, one SQLAlchemy implementation.

Row objects never leave this module: callers get plain dataclasses. The embedded default is a
SQLite file in the models root; ``PROMOTION_DB_URL`` points it at another database.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError

from ._errors import InvalidInputError, InvalidTransitionError
from ._migrations import HEAD, known_revisions, schema_revision, upgrade_schema

DB_FILE = "promotion.db"
STAGES: tuple[str, ...] = ("development", "candidate", "production", "champion", "archived")
PROMOTED_STAGES: frozenset[str] = frozenset({"production", "champion"})

_metadata = MetaData()

_evaluation = Table(
    "evaluation", _metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("model_sha256", String(64), nullable=False),
    Column("holdout_sha256", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("replicates", LargeBinary, nullable=True),
    Column("rows", LargeBinary, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

_model_stage = Table(
    "model_stage", _metadata,
    Column("scope", String(200), primary_key=True),
    Column("model_name", String(400), primary_key=True),
    Column("stage", String(20), nullable=False),
    Column("model_sha256", String(64), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    # The database itself keeps at most one champion per scope.
    Index("one_champion_per_scope", "scope", unique=True,
          sqlite_where=text("stage = 'champion'"), postgresql_where=text("stage = 'champion'")),
)

_transition = Table(
    "transition", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(200), nullable=False, index=True),
    Column("model_name", String(400), nullable=False),
    Column("model_sha256", String(64), nullable=True),
    Column("from_stage", String(20), nullable=False),
    Column("to_stage", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("overridden", Boolean, nullable=False, default=False),
    Column("action", String(20), nullable=False, default="move"),
    Column("at", DateTime(timezone=True), nullable=False),
)

_weights = Table(
    "weights", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("weights", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("scope", "version", name="one_weights_version"),
)

_annotation = Table(
    "annotation", _metadata,
    Column("scope", String(200), primary_key=True),
    Column("model_name", String(400), primary_key=True),
    Column("field", String(40), primary_key=True),
    Column("text", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

#: The last attempt to mirror a scope's stages to MLflow; ``pending`` until one succeeds.
_mlflow_sync = Table(
    "mlflow_sync", _metadata,
    Column("scope", String(200), primary_key=True),
    Column("pending", Boolean, nullable=False),
    Column("detail", Text, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("pending_since", DateTime(timezone=True), nullable=True),
)

#: Deployment settings of a scope (mode, canary, share), append-only: the newest row is in
#: force, the older ones are its history.
_deployment = Table(
    "deployment", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(200), nullable=False, index=True),
    Column("mode", String(20), nullable=False),
    Column("canary_model", String(400), nullable=True),
    Column("canary_share", Float, nullable=True),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)


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
    action: str = "move"


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


#: ``expect_champion`` default: do not check who the champion is.
ANY_CHAMPION = object()


class Store(ABC):
    """Promotions, stages, history, weights, annotations and the evaluation cache."""

    # evaluation cache
    @abstractmethod
    def get_evaluations(self, keys: list[str]) -> dict[str, CachedEvaluation]: ...

    @abstractmethod
    def put_evaluation(self, key: str, model_sha256: str, holdout_sha256: str,
                       payload: dict[str, Any], replicates: bytes | None,
                       rows: bytes | None) -> None: ...

    @abstractmethod
    def get_rows(self, key: str) -> bytes | None: ...

    # stages and history
    @abstractmethod
    def stages(self, scope: str) -> dict[str, StageRecord]: ...

    @abstractmethod
    def transition(self, scope: str, model_name: str, to_stage: str, *, actor: str,
                   reason: str, model_sha256: str | None,
                   allowed_from: frozenset[str] | None = None,
                   unless: frozenset[str] = frozenset(),
                   overridden: bool = False, action: str = "move",
                   expect_champion: str | None | object = ANY_CHAMPION
                   ) -> Transition | None: ...

    @abstractmethod
    def history(self, scope: str) -> list[Transition]: ...

    # weights and annotations
    @abstractmethod
    def current_weights(self, scope: str) -> WeightsVersion | None: ...

    @abstractmethod
    def save_weights(self, scope: str, weights: dict[str, float], *, actor: str) -> WeightsVersion:
        ...

    @abstractmethod
    def annotations(self, scope: str) -> dict[str, dict[str, str]]: ...

    # deployment settings
    @abstractmethod
    def deployments(self, scope: str) -> list[DeploymentRecord]: ...

    @abstractmethod
    def record_deployment(self, scope: str, mode: str, canary_model: str | None,
                          canary_share: float | None, *, actor: str, reason: str,
                          expect_champion: str | None | object = ANY_CHAMPION,
                          expect_latest: int | None = None) -> DeploymentRecord: ...

    @abstractmethod
    def annotate(self, scope: str, model_name: str, field: str, text_value: str, *,
                 actor: str) -> None: ...

    # mirroring to MLflow
    @abstractmethod
    def sync_state(self, scope: str) -> SyncState | None: ...

    @abstractmethod
    def record_sync(self, scope: str, *, pending: bool, detail: str) -> SyncState: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def default_db_url(models_dir: Path) -> str:
    """``PROMOTION_DB_URL`` if set, else the SQLite file in the models root."""
    return os.environ.get("PROMOTION_DB_URL") or f"sqlite:///{Path(models_dir) / DB_FILE}"


def open_store(models_dir: Path, url: str | None = None) -> SqlStore:
    """The store for a models root (creating its tables if needed)."""
    url = url or default_db_url(models_dir)
    if url.startswith("sqlite:///"):
        Path(models_dir).mkdir(parents=True, exist_ok=True)
    with _opening(url):
        return SqlStore(url)


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


def schema_status(models_dir: Path, url: str | None = None) -> SchemaStatus:
    """The store's schema revision against the newest one, without changing the database."""
    url = url or default_db_url(models_dir)
    if _no_sqlite_file(url):  # connecting would create the file: nothing to read yet
        return SchemaStatus(public_url(url), None, HEAD)
    with _opening(url):
        engine = _make_engine(url)
        try:
            revision = schema_revision(engine)
        finally:
            engine.dispose()
    known = revision in (None, HEAD) or revision in known_revisions()
    return SchemaStatus(public_url(url), revision, HEAD, known)


def _no_sqlite_file(url: str) -> bool:
    """True for a SQLite URL without a database file yet (or in memory)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # reported when opening
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database
    return not database or database == ":memory:" or not Path(database).exists()


def public_url(url: str) -> str:
    """A URL (database, MLflow tracking) fit to show and record: the user and password
    dropped from its host part; a malformed one loses everything up to its last '@'."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url.rsplit("@", 1)[-1]
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rsplit('@', 1)[-1]}{slash}{path}"


@contextmanager
def _opening(url: str) -> Iterator[None]:
    try:
        yield
    except (ArgumentError, NoSuchModuleError, DBAPIError) as err:
        why = " ".join(str(err.orig if isinstance(err, DBAPIError) else err).split())
        raise InvalidInputError(f"cannot open the store at '{public_url(url)}' "
                                f"(PROMOTION_DB_URL): {why[:200]}") from None


class SqlStore(Store):
    """The store on any SQLAlchemy database (SQLite embedded, PostgreSQL shared)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine = _make_engine(url)
        upgrade_schema(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _session(self, lock_scope: str | None = None) -> Iterator[Connection]:
        """One write transaction: commit on success, roll back on error.

        With ``lock_scope``, writers of the same scope take turns: SQLite's BEGIN IMMEDIATE
        already serializes every writer; PostgreSQL takes a transaction-level advisory lock
        on the scope, so a read-then-write inside the transaction cannot lose an update.
        """
        with self._engine.connect() as conn:
            conn.execution_options(promotion_write=True)
            with conn.begin():
                if lock_scope is not None and conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:s, 0))"),
                                 {"s": f"promotion scope {lock_scope}"})
                yield conn

    # evaluation cache -------------------------------------------------------------------
    def get_evaluations(self, keys: list[str]) -> dict[str, CachedEvaluation]:
        found: dict[str, CachedEvaluation] = {}
        cols = (_evaluation.c.cache_key, _evaluation.c.payload, _evaluation.c.replicates)
        with self._engine.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                for key, payload, reps in conn.execute(
                    select(*cols).where(_evaluation.c.cache_key.in_(chunk))
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
            conn.execute(_upsert(conn, _evaluation, values, ["cache_key"]))

    def get_rows(self, key: str) -> bytes | None:
        with self._engine.connect() as conn:
            return conn.execute(
                select(_evaluation.c.rows).where(_evaluation.c.cache_key == key)
            ).scalar_one_or_none()

    # stages and history -----------------------------------------------------------------
    def stages(self, scope: str) -> dict[str, StageRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(_model_stage).where(_model_stage.c.scope == scope))
            return {
                row.model_name: StageRecord(row.scope, row.model_name, row.stage,
                                            row.model_sha256, _utc(row.updated_at),
                                            row.updated_by, row.reason)
                for row in rows
            }

    def transition(self, scope: str, model_name: str, to_stage: str, *, actor: str,
                   reason: str, model_sha256: str | None,
                   allowed_from: frozenset[str] | None = None,
                   unless: frozenset[str] = frozenset(),
                   overridden: bool = False, action: str = "move",
                   expect_champion: str | None | object = ANY_CHAMPION
                   ) -> Transition | None:
        """Move a model to ``to_stage`` in one transaction, with its history entry.

        Moving to ``champion`` archives the scope's current champion in the same
        transaction. Returns None (and writes nothing) when the model is already there or in
        one of the ``unless`` stages. With ``expect_champion``, refuses when the scope's
        champion is no longer the one the caller decided on.
        """
        if to_stage not in STAGES:
            raise InvalidTransitionError(
                f"unknown stage '{to_stage}'. Hint: stages are {', '.join(STAGES)}"
            )
        if not reason.strip():
            raise InvalidTransitionError("a reason is required for every transition. Hint: "
                                         "say why (field 'reason')")
        if not actor.strip():
            raise InvalidTransitionError("who is deciding? Hint: give your name (field 'user')")
        now = _now()
        try:
            return self._transition(scope, model_name, to_stage, actor, reason, model_sha256,
                                    allowed_from, unless, overridden, action, expect_champion,
                                    now)
        except IntegrityError:
            # Only reachable when another writer bypassed the scope lock; the database's own
            # one-champion rule refused the write, and nothing of this transition was kept.
            raise InvalidTransitionError(
                f"the stages of scope '{scope}' changed meanwhile; look again and retry"
            ) from None

    def _transition(self, scope: str, model_name: str, to_stage: str, actor: str, reason: str,
                    model_sha256: str | None, allowed_from: frozenset[str] | None,
                    unless: frozenset[str], overridden: bool, action: str,
                    expect_champion: str | None | object, now: datetime) -> Transition | None:
        with self._session(lock_scope=scope) as conn:
            self._check_champion(conn, scope, expect_champion)
            current = self._stage_of(conn, scope, model_name)
            if current == to_stage or current in unless:
                return None
            if allowed_from is not None and current not in allowed_from:
                raise InvalidTransitionError(
                    f"model '{model_name}' of scope '{scope}' is {current}; it can move to "
                    f"{to_stage} only from {', '.join(sorted(allowed_from))}"
                )
            if to_stage == "champion":
                self._archive_champion(conn, scope, model_name, actor, reason, action, now)
            self._set_stage(conn, scope, model_name, to_stage, model_sha256, actor, reason, now)
            return self._record(conn, scope, model_name, model_sha256, current, to_stage,
                                actor, reason, overridden, action, now)

    def _check_champion(self, conn: Connection, scope: str,
                        expect_champion: str | None | object) -> None:
        """Refuse a write decided on a champion that is no longer the scope's."""
        if expect_champion is ANY_CHAMPION:
            return
        champion = self._champion_of(conn, scope)
        if champion != expect_champion:
            raise InvalidTransitionError(
                f"the champion of scope '{scope}' changed meanwhile (now "
                f"{champion or 'none'}); look again and retry")

    def _champion_of(self, conn: Connection, scope: str) -> str | None:
        return conn.execute(
            select(_model_stage.c.model_name).where(
                (_model_stage.c.scope == scope) & (_model_stage.c.stage == "champion"))
        ).scalar_one_or_none()

    def _stage_of(self, conn: Connection, scope: str, model_name: str) -> str:
        stage = conn.execute(
            select(_model_stage.c.stage).where(
                (_model_stage.c.scope == scope) & (_model_stage.c.model_name == model_name)
            )
        ).scalar_one_or_none()
        return stage or "development"

    def _archive_champion(self, conn: Connection, scope: str, new_champion: str, actor: str,
                          why: str, action: str, now: datetime) -> None:
        old = conn.execute(
            select(_model_stage.c.model_name, _model_stage.c.model_sha256).where(
                (_model_stage.c.scope == scope) & (_model_stage.c.stage == "champion")
            )
        ).first()
        if old is None or old.model_name == new_champion:
            return
        reason = f"replaced as champion by '{new_champion}': {why}"
        self._set_stage(conn, scope, old.model_name, "archived", old.model_sha256, actor,
                        reason, now)
        self._record(conn, scope, old.model_name, old.model_sha256, "champion", "archived",
                     actor, reason, False, action, now)

    def _set_stage(self, conn: Connection, scope: str, model_name: str, stage: str,
                   model_sha256: str | None, actor: str, reason: str, now: datetime) -> None:
        key = (_model_stage.c.scope == scope) & (_model_stage.c.model_name == model_name)
        values = {"stage": stage, "model_sha256": model_sha256, "updated_at": now,
                  "updated_by": actor, "reason": reason}
        if conn.execute(_model_stage.update().where(key).values(**values)).rowcount == 0:
            conn.execute(_model_stage.insert().values(scope=scope, model_name=model_name,
                                                      **values))

    def _record(self, conn: Connection, scope: str, model_name: str, model_sha256: str | None,
                from_stage: str, to_stage: str, actor: str, reason: str, overridden: bool,
                action: str, now: datetime) -> Transition:
        new_id = conn.execute(_transition.insert().values(
            scope=scope, model_name=model_name, model_sha256=model_sha256,
            from_stage=from_stage, to_stage=to_stage, actor=actor, reason=reason,
            overridden=overridden, action=action, at=now,
        )).inserted_primary_key[0]
        return Transition(new_id, scope, model_name, model_sha256, from_stage, to_stage, actor,
                          reason, overridden, now, action)

    def history(self, scope: str) -> list[Transition]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_transition).where(_transition.c.scope == scope)
                .order_by(_transition.c.id)
            )
            return [
                Transition(r.id, r.scope, r.model_name, r.model_sha256, r.from_stage,
                           r.to_stage, r.actor, r.reason, bool(r.overridden), _utc(r.at),
                           r.action)
                for r in rows
            ]

    # weights and annotations ------------------------------------------------------------
    def current_weights(self, scope: str) -> WeightsVersion | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(_weights).where(_weights.c.scope == scope)
                .order_by(_weights.c.version.desc()).limit(1)
            ).first()
        if row is None:
            return None
        return WeightsVersion(row.scope, row.version, json.loads(row.weights), row.actor,
                              _utc(row.at))

    def save_weights(self, scope: str, weights: dict[str, float], *, actor: str) -> WeightsVersion:
        now = _now()
        for _ in range(5):  # two writers may race for the next version number
            try:
                with self._session() as conn:
                    latest = conn.execute(
                        select(func.max(_weights.c.version)).where(_weights.c.scope == scope)
                    ).scalar_one_or_none() or 0
                    conn.execute(_weights.insert().values(
                        scope=scope, version=latest + 1, weights=json.dumps(weights),
                        actor=actor, at=now,
                    ))
                return WeightsVersion(scope, latest + 1, dict(weights), actor, now)
            except IntegrityError:
                continue
        raise InvalidTransitionError(f"could not save weights of scope '{scope}': busy, retry")

    def annotations(self, scope: str) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        with self._engine.connect() as conn:
            for row in conn.execute(select(_annotation).where(_annotation.c.scope == scope)):
                found.setdefault(row.model_name, {})[row.field] = row.text
        return found

    def annotate(self, scope: str, model_name: str, field: str, text_value: str, *,
                 actor: str) -> None:
        key = ((_annotation.c.scope == scope) & (_annotation.c.model_name == model_name)
               & (_annotation.c.field == field))
        with self._session() as conn:
            if not text_value.strip():
                conn.execute(_annotation.delete().where(key))
                return
            values = {"scope": scope, "model_name": model_name, "field": field,
                      "text": text_value, "actor": actor, "at": _now()}
            conn.execute(_upsert(conn, _annotation, values, ["scope", "model_name", "field"]))

    # mirroring to MLflow -----------------------------------------------------------------
    def sync_state(self, scope: str) -> SyncState | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(_mlflow_sync).where(_mlflow_sync.c.scope == scope)).first()
        if row is None:
            return None
        return SyncState(row.scope, bool(row.pending), row.detail, _utc(row.attempted_at),
                         _utc(row.pending_since) if row.pending_since else None)

    def record_sync(self, scope: str, *, pending: bool, detail: str) -> SyncState:
        """Record a sync attempt; a pending one keeps the time the scope first fell behind."""
        now = _now()
        with self._session(lock_scope=scope) as conn:
            since = conn.execute(
                select(_mlflow_sync.c.pending_since).where(_mlflow_sync.c.scope == scope)
            ).scalar_one_or_none()
            since = (since or now) if pending else None
            values = {"scope": scope, "pending": pending, "detail": detail,
                      "attempted_at": now, "pending_since": since}
            conn.execute(_upsert(conn, _mlflow_sync, values, ["scope"]))
        return SyncState(scope, pending, detail, now, _utc(since) if since else None)

    # deployment settings ----------------------------------------------------------------
    def deployments(self, scope: str) -> list[DeploymentRecord]:
        """Every deployment decision of a scope, oldest first (the last is in force)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(_deployment).where(_deployment.c.scope == scope)
                                .order_by(_deployment.c.id))
            return [DeploymentRecord(r.id, r.scope, r.mode, r.canary_model, r.canary_share,
                                     r.actor, r.reason, _utc(r.at)) for r in rows]

    def record_deployment(self, scope: str, mode: str, canary_model: str | None,
                          canary_share: float | None, *, actor: str, reason: str,
                          expect_champion: str | None | object = ANY_CHAMPION,
                          expect_latest: int | None = None) -> DeploymentRecord:
        """Append a deployment decision, checked against the state the caller decided on.

        Inside the scope's write lock: with ``expect_champion``, the champion must still be
        that model; a canary must still be in production; with ``expect_latest``, the newest
        decision must still be that id (0: none yet). Otherwise nothing is written.
        """
        if not reason.strip():
            raise InvalidTransitionError("a reason is required for a deployment change "
                                         "(field 'reason')")
        if not actor.strip():
            raise InvalidTransitionError("who is deciding? Hint: give your name (field 'user')")
        now = _now()
        with self._session(lock_scope=scope) as conn:
            self._check_champion(conn, scope, expect_champion)
            if canary_model is not None:
                stage = self._stage_of(conn, scope, canary_model)
                if stage != "production":
                    raise InvalidTransitionError(
                        f"the canary '{canary_model}' of scope '{scope}' changed meanwhile (now "
                        f"{stage}); look again and retry")
            if expect_latest is not None:
                latest = conn.execute(select(func.max(_deployment.c.id)).where(
                    _deployment.c.scope == scope)).scalar_one_or_none() or 0
                if latest != expect_latest:
                    raise InvalidTransitionError(
                        f"the deployment of scope '{scope}' changed meanwhile; look again "
                        "and retry")
            new_id = conn.execute(_deployment.insert().values(
                scope=scope, mode=mode, canary_model=canary_model, canary_share=canary_share,
                actor=actor, reason=reason, at=now)).inserted_primary_key[0]
        return DeploymentRecord(new_id, scope, mode, canary_model, canary_share, actor, reason,
                                now)


def _upsert(conn: Connection, table: Table, values: dict[str, Any], key: list[str]) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE for the two dialects the store supports."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table).values(**values)
    changed = {name: statement.excluded[name] for name in values if name not in key}
    return statement.on_conflict_do_update(index_elements=key, set_=changed)


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so BEGIN IMMEDIATE below holds.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        # Writers take the lock at the start, so read-then-write cannot lose an update;
        # readers stay deferred and never wait for it (WAL).
        write = conn.get_execution_options().get("promotion_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
