"""Faults under the store, each one line that names the database: a lock another process holds
for too long, a full disk, a read-only or damaged database, a server that does not answer, and
a SQLite file removed, replaced or truncated under a running process (found before the next
write, which is refused rather than acknowledged and lost).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ..errors import PromotionError, StoreBusyError, StoreFaultError

# SQLite's primary result codes (the low byte of an extended code).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26
# PostgreSQL's SQLSTATEs: a lock wait ran out (lock_timeout); a statement was cancelled
# (statement_timeout, or an operator); no room; a read-only transaction or server.
_PG_BUSY, _PG_CANCELLED, _PG_FULL, _PG_READONLY = "55P03", "57014", "53100", "25006"

#: A writer waits this long, silently, before it reports that another process holds the lock:
#: the store's own writers take turns in milliseconds, and only a longer wait is worth showing.
GRACE_MS = 500
#: The first bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Said by every refused change, so a user knows there is nothing to undo.
NOTHING_SAVED = "nothing was saved"


# waiting, as the app shows it ------------------------------------------------------------

_waiting_report: ContextVar[Callable[[str], None] | None] = ContextVar(
    "promotion_store_waiting_report", default=None)


@contextmanager
def on_lock_wait(report: Callable[[str], None]) -> Iterator[None]:
    """Within the block, ``report(message)`` is called when a write of this thread finds the
    store's lock held by another process and keeps waiting for it (the app shows it as a
    "busy, retrying" state); the write then goes through, or fails with StoreBusyError."""
    token = _waiting_report.set(report)
    try:
        yield
    finally:
        _waiting_report.reset(token)


# the SQLite file a store opened ----------------------------------------------------------

@dataclass(frozen=True)
class DatabaseFile:
    """The SQLite file a store opened, as it was then, to be found again before each write."""

    shown: str  # the path as configured: what messages name
    path: Path  # the same, absolute (the working directory may change)
    device: int
    inode: int

    @classmethod
    def opened(cls, shown: str) -> DatabaseFile:
        path = Path(shown).absolute()
        status = path.stat()
        return cls(shown, path, status.st_dev, status.st_ino)

    def problem(self) -> tuple[str, str] | None:
        """What happened to the file since it was opened, with what to do; None when it is
        still the file opened and still a SQLite database."""
        since = "since this process opened it"
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return (f"{self.shown} was removed {since}",
                    "put it back, or restart to begin a new, empty store there")
        if (status.st_dev, status.st_ino) != (self.device, self.inode):
            return f"{self.shown} was replaced {since}", "restart to use the new one"
        try:
            with self.path.open("rb") as handle:
                header = handle.read(len(SQLITE_HEADER))
        except OSError as err:
            return f"{self.shown} cannot be read now ({err.strerror})", "check the file"
        if header != SQLITE_HEADER:
            return (f"{self.shown} was truncated or overwritten {since}",
                    "restore it from a backup, then restart")
        return None


# who holds a lock ------------------------------------------------------------------------

def file_lock_holders(paths: list[Path]) -> list[int]:
    """The processes holding a write lock on any of ``paths``, from Linux's /proc/locks (SQLite
    locks the database file, and in WAL mode its ``-shm`` file); empty where not known."""
    keys = set()
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            continue
        keys.add((os.major(status.st_dev), os.minor(status.st_dev), status.st_ino))
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    holders: list[int] = []
    for line in lines:
        fields = line.split()
        if "->" in fields or len(fields) < 6 or fields[3] != "WRITE":
            continue  # a waiter, or a read lock
        try:
            major, minor, inode = fields[5].split(":")
            key, pid = (int(major, 16), int(minor, 16), int(inode)), int(fields[4])
        except ValueError:
            continue
        if key in keys and pid > 0 and pid not in holders:
            holders.append(pid)
    return holders


def describe_process(pid: int) -> str:
    """'process 844 (python3)', or this process's own connection."""
    if pid == os.getpid():
        return f"another connection of this process ({pid})"
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return f"process {pid}"
    return f"process {pid} ({name})"


_PG_HOLDER = text(
    "SELECT a.pid, a.usename, a.application_name FROM pg_locks l JOIN pg_stat_activity a "
    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(:key, 0) LIMIT 1")


# one store's faults ----------------------------------------------------------------------

class StoreGuard:
    """What a store knows to turn faults into messages: where it is (no password), how long a
    write waits for another process's lock, and for SQLite the file it opened."""

    def __init__(self, where: str, lock_wait_s: float, database: str | None) -> None:
        self.where = where
        self.lock_wait_s = lock_wait_s
        self._database = database  # the SQLite file's path as configured; None: a server
        self.file: DatabaseFile | None = None

    def opened(self) -> None:
        """Remember the SQLite file as it is now (once the store has opened it)."""
        if self._database:
            self.file = DatabaseFile.opened(self._database)

    def check_file(self, consequence: str = NOTHING_SAVED) -> None:
        """Raise StoreFaultError when the SQLite file was removed, replaced or truncated since
        the store opened it; ``consequence`` says what that means for the caller."""
        problem = self.file.problem() if self.file is not None else None
        if problem is not None:
            what, hint = problem
            raise StoreFaultError(f"{what}; {consequence}. Hint: {hint}")

    @contextmanager
    def translating(self) -> Iterator[None]:
        """Database errors that are faults (not bugs) leave as one-line PromotionErrors."""
        try:
            yield
        except (DBAPIError, sqlite3.Error) as err:
            fault = self.fault(err)
            if fault is None:
                raise
            raise fault from None

    def fault(self, err: DBAPIError | sqlite3.Error) -> PromotionError | None:
        """The message for a database error, or None for one that is not a fault (a bug)."""
        known = self.known_fault(err)
        if known is not None:
            return known
        orig = err.orig if isinstance(err, DBAPIError) else err
        state = _sqlstate(orig)
        if _is_operational(orig) and (state is None or state.startswith("08")):
            why = " ".join(str(orig).split())[:200]
            return StoreFaultError(f"cannot reach the store at {self.where} ({why}); "
                                   f"{NOTHING_SAVED}. Hint: check that the server is up")
        return None

    def known_fault(self, err: DBAPIError | sqlite3.Error) -> PromotionError | None:
        """The message for a busy, full, read-only, damaged or replaced database; None for
        anything else (a connection that failed is the caller's to word)."""
        orig = err.orig if isinstance(err, DBAPIError) else err
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            return self._sqlite_fault(code & 0xFF, " ".join(str(orig).split())[:200])
        state = _sqlstate(orig)
        if state == _PG_BUSY:
            return self.busy(None)
        if state == _PG_CANCELLED:
            return StoreFaultError(f"the store at {self.where} cancelled the statement "
                                   f"(statement_timeout, or an operator); {NOTHING_SAVED}. "
                                   "Hint: retry")
        if state == _PG_FULL:
            return self.full()
        if state == _PG_READONLY:
            return self.read_only()
        return None

    def _sqlite_fault(self, code: int, why: str) -> PromotionError | None:
        if code in (_BUSY, _LOCKED):
            return self.busy(self.sqlite_holder())
        if code in (_CORRUPT, _NOTADB, _IOERR, _CANTOPEN):
            try:  # a file removed or replaced under us says more than SQLite's own words
                self.check_file()
            except StoreFaultError as replaced:
                return replaced
        if code == _FULL:
            return self.full()
        if code == _READONLY:
            return self.read_only()
        if code in (_CORRUPT, _NOTADB):
            return StoreFaultError(f"the store {self.where} is damaged ({why}); "
                                   f"{NOTHING_SAVED}. Hint: restore it from a backup")
        if code in (_IOERR, _CANTOPEN):
            return StoreFaultError(f"cannot use the store {self.where} ({why}); {NOTHING_SAVED}")
        return None

    # the messages ------------------------------------------------------------------------
    def busy(self, holder: str | None) -> StoreBusyError:
        who = holder or "another process"
        wait = f"{self.lock_wait_s:g} s"
        if self._database:
            hint = ("retry, or stop that process" if holder else
                    f"retry, or find the process holding {self.where} (fuser {self.where})")
            return StoreBusyError(f"{self.where} is busy: {who} has held its write lock for "
                                  f"over {wait}; {NOTHING_SAVED}. Hint: {hint}")
        return StoreBusyError(f"the store at {self.where} is busy: {who} has held a lock this "
                              f"change needs for over {wait}; {NOTHING_SAVED}. Hint: retry, or "
                              "find the session in pg_stat_activity")

    def waiting(self, holder: str | None) -> str:
        """What the app shows while a write waits for the lock."""
        who = holder or "another process"
        return (f"{self.where} is busy: {who} is writing to it; retrying for up to "
                f"{self.lock_wait_s:g} s…")

    def full(self) -> StoreFaultError:
        return StoreFaultError(f"cannot write to the store {self.where}: the disk is full; "
                               f"{NOTHING_SAVED}. Hint: free some space and retry")

    def read_only(self) -> StoreFaultError:
        return StoreFaultError(f"cannot write to the store {self.where}: it is read-only (file "
                               f"permissions, or a read-only disk); {NOTHING_SAVED}")

    # taking the write lock -----------------------------------------------------------------
    def sqlite_holder(self) -> str | None:
        if self.file is None:
            return None
        shm = self.file.path.with_name(self.file.path.name + "-shm")
        holders = file_lock_holders([self.file.path, shm])
        others = [pid for pid in holders if pid != os.getpid()] or holders
        return ", ".join(describe_process(pid) for pid in others[:3]) or None

    def begin_sqlite_write(self, raw: Any) -> None:
        """BEGIN IMMEDIATE on a raw sqlite3 connection: wait up to the lock wait for another
        writer (reporting the wait after GRACE_MS), then make sure the file is still the one
        opened, so a change is never written into a removed or replaced file."""
        wait_ms = max(1, round(self.lock_wait_s * 1000))
        started = time.monotonic()
        try:
            raw.execute(f"PRAGMA busy_timeout={min(GRACE_MS, wait_ms)}")
            try:
                raw.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                if err.sqlite_errorcode & 0xFF not in (_BUSY, _LOCKED):
                    raise
                self._report_waiting(self.sqlite_holder)
                left = wait_ms - round((time.monotonic() - started) * 1000)
                raw.execute(f"PRAGMA busy_timeout={max(1, left)}")
                raw.execute("BEGIN IMMEDIATE")  # busy again: translated by the caller
        finally:
            raw.execute(f"PRAGMA busy_timeout={wait_ms}")
        try:
            self.check_file()
        except StoreFaultError:
            raw.execute("ROLLBACK")
            raise

    def take_pg_lock(self, conn: Connection, key: str) -> None:
        """The transaction-level advisory lock on ``key``, waiting at most the lock wait
        (``lock_timeout``) for the session holding it, and reporting that wait."""
        params = {"key": key}
        if conn.execute(text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"),
                        params).scalar():
            return
        row = conn.execute(_PG_HOLDER, params).first()
        holder = (f"PostgreSQL session {row.pid} (user {row.usename}"
                  + (f", {row.application_name}" if row.application_name else "") + ")"
                  ) if row is not None else None
        self._report_waiting(lambda: holder)
        try:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), params)
        except DBAPIError as err:
            if _sqlstate(err.orig) == _PG_BUSY:
                raise self.busy(holder) from None
            raise

    def _report_waiting(self, holder: Callable[[], str | None]) -> None:
        report = _waiting_report.get()
        if report is not None:
            report(self.waiting(holder()))


def _is_operational(orig: BaseException) -> bool:
    """True for a driver's OperationalError (a lost or refused connection, not a bug)."""
    return any(kind.__name__ == "OperationalError" for kind in type(orig).__mro__)


def _sqlstate(orig: BaseException | None) -> str | None:
    """A PostgreSQL driver error's SQLSTATE (psycopg 3, or psycopg2's pgcode)."""
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return str(state) if state else None
