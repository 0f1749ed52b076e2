"""The prediction log: one append-only SQLite file per scope, written by the engine.

The engine may not import the store, so this module uses only the standard library's
``sqlite3`` (and numpy for the compact probability blobs). Each served batch is one
transaction, committed before the answer is returned: nothing answered is unlogged. WAL mode
with ``synchronous=NORMAL`` makes a commit survive the process being killed at any point
(the OS holds the written pages); only a power loss may drop the last commits.

Tables: ``batch`` (one row per served batch: time, export, mode, models, per-model latency,
every model's probabilities and the input features as float32 arrays, rows × models × classes
and rows × features), ``request`` (one row per request: id, time, its row in the batch, the
served model, which models failed) and ``outcome`` (true labels, written by ``promotion`` when
they arrive; see ``record_outcomes``). Keeping the arrays per batch makes a request's row small:
logging stays a small share of the batch's prediction time.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import InvalidInputError

LOG_AREA = "prediction_log"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    export TEXT NOT NULL,
    mode TEXT NOT NULL,
    canary TEXT,
    canary_share REAL,
    models TEXT NOT NULL,
    classes TEXT NOT NULL,
    features TEXT NOT NULL,
    rows INTEGER NOT NULL,
    latency_ms TEXT NOT NULL,
    probas BLOB NOT NULL,
    inputs BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS request (
    request_id TEXT PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batch(id),
    row INTEGER NOT NULL,
    at REAL NOT NULL,
    served TEXT NOT NULL,
    failed TEXT
);
CREATE TABLE IF NOT EXISTS outcome (
    request_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    source TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS request_no_update BEFORE UPDATE ON request
BEGIN SELECT RAISE(ABORT, 'the prediction log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS request_no_delete BEFORE DELETE ON request
BEGIN SELECT RAISE(ABORT, 'the prediction log is append-only'); END;
"""


def log_path(models_dir: Path | str, scope: str) -> Path:
    """Where the prediction log of ``scope`` lives under the models root."""
    return Path(models_dir) / "advanced" / LOG_AREA / f"{scope}.sqlite"


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the log at ``path`` (created with its tables when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(_SCHEMA)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: committed on success, rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass(frozen=True)
class LoggedBatch:
    """What one served batch writes to the log."""

    at: np.ndarray  # (rows,) unix seconds
    export: str
    mode: str
    canary: str | None
    canary_share: float | None
    models: list[str]
    classes: list
    features: list[str]
    latency_ms: dict[str, float]  # per model, per row
    request_ids: Sequence[str]
    served: Sequence[str]
    probas: np.ndarray  # (rows, models, classes)
    inputs: np.ndarray  # (rows, features)
    failed: Sequence[str | None]


class PredictionLog:
    """Appends served batches to one scope's log file (one connection, reused)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def append(self, batch: LoggedBatch) -> None:
        """Write ``batch`` in one transaction; a request id seen before is refused whole."""
        conn = self._connection()
        probas = np.ascontiguousarray(batch.probas, dtype=np.float32)
        inputs = np.ascontiguousarray(batch.inputs, dtype=np.float32)
        try:
            with transaction(conn):
                batch_id = conn.execute(
                    "INSERT INTO batch (at, export, mode, canary, canary_share, models, "
                    "classes, features, rows, latency_ms, probas, inputs) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (float(batch.at.min()) if len(batch.at) else 0.0, batch.export,
                     batch.mode, batch.canary, batch.canary_share, json.dumps(batch.models),
                     json.dumps([_plain(c) for c in batch.classes]),
                     json.dumps(batch.features), len(batch.request_ids),
                     json.dumps(batch.latency_ms), probas.tobytes(),
                     inputs.tobytes())).lastrowid
                conn.executemany(
                    "INSERT INTO request (request_id, batch_id, row, at, served, failed) "
                    "VALUES (?,?,?,?,?,?)",
                    zip(batch.request_ids, itertools.repeat(batch_id), itertools.count(),
                        batch.at.tolist(), batch.served, batch.failed))
        except sqlite3.IntegrityError:
            raise InvalidInputError(
                f"{self.path}: a request id of this batch is already logged; request ids "
                "must be unique (field request_ids)") from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path)
        return self._conn


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


def read_requests(path: Path) -> tuple[list[dict], dict[int, dict]]:
    """Every logged request with its outcome (None when unknown), in time order, and the
    batches they belong to by id."""
    if not path.exists():
        return [], {}
    with closing(connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT r.request_id, r.at, r.served, r.failed, r.batch_id, r.row, o.label "
            "FROM request r LEFT JOIN outcome o ON o.request_id = r.request_id "
            "ORDER BY r.at, r.batch_id, r.row").fetchall()
        batches = {b["id"]: dict(b) for b in conn.execute("SELECT * FROM batch")}
    return [dict(row) for row in rows], batches
