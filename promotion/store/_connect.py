"""Opening the database: the engine with its settings per dialect (SQLite's pragmas and write
lock, PostgreSQL's lock wait), what messages call the database, and errors while opening."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from ..errors import InvalidInputError
from ..settings import lock_wait_seconds
from ._faults import StoreGuard


def public_url(url: str) -> str:
    """A URL (database, MLflow tracking) fit to show and record: the user and password
    dropped from its host part; a malformed one loses everything up to its last '@'."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url.rsplit("@", 1)[-1]
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rsplit('@', 1)[-1]}{slash}{path}"


def _sqlite_database(url: str) -> str | None:
    """The ``database`` part of a SQLite URL ("" in memory); None for anything else (a
    malformed URL is reported when opening)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    return (parsed.database or "") if parsed.get_backend_name() == "sqlite" else None


def sqlite_file(url: str) -> str | None:
    """The database file a SQLite URL names, as written; None for a server, for SQLite in
    memory, or for a SQLite URI (``file:...``)."""
    database = _sqlite_database(url)
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def no_sqlite_file(url: str) -> bool:
    """True for a SQLite URL without a database file yet (or in memory, or a URI)."""
    if _sqlite_database(url) is None:
        return False
    database = sqlite_file(url)
    return database is None or not Path(database).exists()


def guard_for(url: str) -> StoreGuard:
    """The fault messages of the store at ``url``: its file (SQLite) or its public URL."""
    database = sqlite_file(url)
    return StoreGuard(database or public_url(url), lock_wait_seconds(), database)


@contextmanager
def opening(url: str, guard: StoreGuard | None = None) -> Iterator[None]:
    """While opening the store: a busy, full or missing database is its one message; any other
    failure to connect is 'cannot open the store at URL'."""
    try:
        yield
    except (ArgumentError, NoSuchModuleError, DBAPIError) as err:
        known = guard.known_fault(err) if guard and isinstance(err, DBAPIError) else None
        if known is not None:
            raise known from None
        why = " ".join(str(err.orig if isinstance(err, DBAPIError) else err).split())
        raise InvalidInputError(f"cannot open the store at '{public_url(url)}' "
                                f"(PROMOTION_DB_URL): {why[:200]}") from None


def make_engine(url: str, guard: StoreGuard) -> Engine:
    """The engine of the store at ``url``: writers wait ``guard.lock_wait_s`` for a lock."""
    wait_ms = max(1, round(guard.lock_wait_s * 1000))
    if not url.startswith("sqlite"):
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "postgresql":
            @event.listens_for(engine, "connect")
            def _pg_lock_wait(dbapi_conn: Any, _record: Any) -> None:
                # Every statement waits at most this long for a lock (tables, rows, the
                # advisory locks deciders take), then fails: reported as busy.
                cursor = dbapi_conn.cursor()
                cursor.execute(f"SET lock_timeout = {wait_ms}")
                cursor.close()
                dbapi_conn.commit()
        return engine
    engine = create_engine(url, connect_args={"timeout": guard.lock_wait_s})

    @event.listens_for(engine, "do_connect")
    def _existing_file_only(_dialect: Any, _record: Any, cargs: list, cparams: dict) -> None:
        # Once the store is open, a new connection must not create the file again, empty,
        # where it was removed: open it read-write only if it is there.
        if guard.file is not None and not cparams.get("uri"):
            cargs[:] = [f"file:{quote(str(guard.file.path))}?mode=rw"]
            cparams["uri"] = True

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        guard.check_file()  # before the pragmas, which would make an emptied file a database
        # Let SQLAlchemy, not the driver, open transactions, so BEGIN IMMEDIATE below holds.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={wait_ms}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Connection) -> None:
        # Writers take the lock at the start, so read-then-write cannot lose an update;
        # readers stay deferred and never wait for it (WAL).
        raw = conn.connection.dbapi_connection
        if conn.get_execution_options().get("promotion_write", False):
            guard.begin_sqlite_write(raw)
        else:
            raw.execute("BEGIN")

    return engine
