"""Faults under the store are one message naming the database, and a write they stop saved
nothing: a lock another process holds (a bounded wait, reported while it lasts), a database file
removed, replaced or truncated under a running process (refused before the next write), a
full disk."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from store_faults import fill, holding_postgres_lock, holding_sqlite_lock, small_filesystem

from promotion import InvalidInputError, StoreBusyError, StoreFaultError
from promotion.store import (
    default_db_url,
    on_lock_wait,
    open_store,
    public_url,
)

STORE_BACKENDS = ("sqlite", "postgresql")
SCOPE_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('promotion scope s', 0))"


def decide(store, model: str = "m1", to_stage: str = "production") -> None:
    with store.decision("s") as tx:
        tx.record_move(model, "development", to_stage, actor="ana", reason="chosen",
                       model_sha256=None)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.fixture
def short_wait(monkeypatch) -> None:
    """Writers wait one second for another process's lock (the setting; default 10 s)."""
    monkeypatch.setenv("PROMOTION_LOCK_WAIT_S", "1")


def test_a_lock_held_by_another_process_is_a_bounded_wait_then_one_message(
        backend, store_url, models_root, short_wait):
    store = open_store(models_root, store_url)
    waits: list[str] = []
    if backend == "sqlite":
        holding = holding_sqlite_lock(models_root / "promotion.db")
        where = str(models_root / "promotion.db")
    else:  # another replica in the middle of a decision on the same scope
        holding = holding_postgres_lock(store_url, SCOPE_LOCK)
        where = public_url(store_url)
    with holding as holder:
        with on_lock_wait(waits.append), pytest.raises(StoreBusyError) as err:
            decide(store)
        assert store.history("s") == []  # reads never wait for the writer
    message = one_line(err)
    assert message.startswith(where) or f"the store at {where} is busy" in message
    assert "is busy" in message and "over 1 s" in message and "nothing was saved" in message
    # The holder is named: its process (SQLite, from the OS's lock table) or its session.
    assert (f"process {holder.pid} (python" in message if backend == "sqlite"
            else "PostgreSQL session" in message)
    assert len(waits) == 1 and "busy" in waits[0] and "retrying for up to 1 s" in waits[0]
    decide(store)  # once the holder is gone, the same write goes through
    assert [t.model_name for t in store.history("s")] == ["m1"]
    store.close()


def test_a_table_locked_by_another_session_is_one_message_without_the_password(
        postgres, models_root, short_wait):
    url = postgres.database().replace("postgres@", "postgres:s3cret@")  # trust: any password
    store = open_store(models_root, url)
    with holding_postgres_lock(url, "LOCK TABLE weights IN ACCESS EXCLUSIVE MODE"):
        with pytest.raises(StoreBusyError) as err:
            store.save_weights("s", {"accuracy": 1.0}, actor="ana")
    message = one_line(err)
    assert public_url(url) in message and "s3cret" not in message
    assert "over 1 s" in message and "nothing was saved" in message
    assert store.current_weights("s") is None
    store.close()


@pytest.fixture
def sqlite_store(models_root):
    store = open_store(models_root, default_db_url(models_root))
    decide(store, "m1")
    yield store
    store.close()


def _backup(database: Path, to: Path) -> Path:
    """A consistent copy of the database, as an operator's backup is made."""
    source, copy = sqlite3.connect(database), sqlite3.connect(to)
    source.backup(copy)
    source.close()
    copy.close()
    return to


def _remove(database: Path) -> None:
    database.unlink()


def _replace(database: Path) -> None:
    os.replace(_backup(database, database.with_name("restored.db")), database)


def _truncate(database: Path) -> None:
    os.truncate(database, 0)


@pytest.mark.parametrize(("fault", "said"), [
    (_remove, "was removed since this process opened it"),
    (_replace, "was replaced since this process opened it; nothing was saved. Hint: restart "
               "to use the new one"),
    (_truncate, "was truncated or overwritten since this process opened it"),
])
def test_a_database_file_changed_under_a_running_process_refuses_the_next_write(
        sqlite_store, models_root, fault, said):
    database = models_root / "promotion.db"
    fault(database)
    with pytest.raises(StoreFaultError) as err:
        decide(sqlite_store, "m2")
    assert one_line(err).startswith(f"{database} {said}")
    with pytest.raises(StoreFaultError, match="since this process opened it"):
        sqlite_store.check()  # what the app asks before showing anything
    with pytest.raises(StoreFaultError, match="since this process opened it"):
        sqlite_store.save_weights("s", {"accuracy": 1.0}, actor="ana")
    # Nothing was acknowledged that is not where the next process looks.
    if fault is _remove:
        assert not database.exists()  # not created again, empty, by a new connection
    elif fault is _truncate:
        assert database.stat().st_size == 0
    else:
        fresh = open_store(models_root)
        assert [t.model_name for t in fresh.history("s")] == ["m1"]
        fresh.close()


def test_a_full_disk_refuses_the_write_in_one_message(tmp_path, models_root):
    with small_filesystem(tmp_path / "small") as small:
        database = small / "promotion.db"
        store = open_store(models_root, f"sqlite:///{database}")
        try:
            decide(store, "m1")
            with sqlite3.connect(database) as conn:  # the log empty: the next write needs room
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            filler = fill(small)
            with pytest.raises(StoreFaultError) as err:
                decide(store, "m2")
            assert one_line(err) == (f"cannot write to the store {database}: the disk is full; "
                                     "nothing was saved. Hint: free some space and retry")
            filler.unlink()
            decide(store, "m2")  # room again: the same write goes through
            assert [t.model_name for t in store.history("s")] == ["m1", "m2"]
        finally:
            store.close()


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "1e9"])
def test_a_lock_wait_setting_that_is_not_a_sensible_number_is_one_message(models_root,
                                                                          monkeypatch, value):
    monkeypatch.setenv("PROMOTION_LOCK_WAIT_S", value)
    with pytest.raises(InvalidInputError, match=f"PROMOTION_LOCK_WAIT_S='{value}': must be a "
                                                "number of seconds more than 0 and at most 3600"):
        open_store(models_root)
    assert not (models_root / "promotion.db").exists()
