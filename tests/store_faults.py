"""Real faults for the store, CLI and app tests: another process holding the database's
lock, and a small filesystem that fills up."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

#: A process that takes SQLite's write lock (as `sqlite3 promotion.db` then `BEGIN EXCLUSIVE`
#: would) and keeps it until its stdin closes.
_HOLD_SQLITE = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print("holding", flush=True)
    sys.stdin.read()
""")

#: A PostgreSQL session that runs the given SQL in a transaction and keeps it open until its
#: stdin closes (a decider of another app replica, or an operator's session).
_HOLD_POSTGRES = textwrap.dedent("""
    import psycopg, sys
    conn = psycopg.connect(sys.argv[1])
    conn.execute(sys.argv[2])
    print("holding", flush=True)
    sys.stdin.read()
""")


@contextmanager
def _holder(code: str, *args: str) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "holding", "the holder did not start"
        yield process
    finally:
        process.stdin.close()
        process.wait(timeout=60)


def holding_sqlite_lock(database: Path) -> AbstractContextManager[subprocess.Popen]:
    """Another process holding the write lock of the SQLite file ``database``."""
    return _holder(_HOLD_SQLITE, str(database))


def holding_postgres_lock(url: str, sql: str) -> AbstractContextManager[subprocess.Popen]:
    """Another PostgreSQL session holding the locks ``sql`` takes, inside a transaction."""
    return _holder(_HOLD_POSTGRES, url.replace("postgresql+psycopg://", "postgresql://"), sql)


@contextmanager
def small_filesystem(where: Path, size: str = "2m") -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``where`` (skips the test where mounting is not
    permitted: it needs root, or CAP_SYS_ADMIN)."""
    where.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a small tmpfs, and mounting one needs root")
    done = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a small tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(filesystem: Path) -> Path:
    """Fill ``filesystem`` to the last byte with one file; returns it (remove it to free)."""
    filler = filesystem / "filler"
    with filler.open("wb", buffering=0) as handle:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    handle.write(b"\0" * chunk)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
    return filler
