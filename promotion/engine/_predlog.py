"""The prediction log: one append-only SQLite file per scope, written by the engine.

The engine may not import the store, so this module uses only the standard library's
``sqlite3`` (and numpy for the compact probability blobs). Each served batch is one
transaction, committed before the answer is returned: nothing answered is unlogged. WAL mode
with ``synchronous=NORMAL`` makes a commit survive the process being killed at any point
(the OS holds the written pages); only a power loss may drop the last commits.

Tables: ``batch`` (one row per served batch: time, export, mode, models, per-model latency,
and per request, packed as arrays: the request ids, times, the served model, which models
failed, every model's probabilities and the input features as float32) and ``outcome`` (true
labels by request id, written by ``promotion`` when they arrive; see ``record_outcomes``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError

LOG_AREA = "prediction_log"
PAGE_SIZE = 65536
CHECKPOINT_BYTES = 80 * 2**20

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
    request_ids TEXT NOT NULL,
    times BLOB NOT NULL,
    served BLOB NOT NULL,
    failed BLOB NOT NULL,
    probas BLOB NOT NULL,
    inputs BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS outcome (
    request_id TEXT PRIMARY KEY,
    label TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    source TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS batch_no_update BEFORE UPDATE ON batch
BEGIN SELECT RAISE(ABORT, 'the prediction log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS batch_no_delete BEFORE DELETE ON batch
BEGIN SELECT RAISE(ABORT, 'the prediction log is append-only'); END;
"""
#: ``served`` code of a request answered by the weighted ensemble.
ENSEMBLE_CODE = -1


def log_path(models_dir: Path | str, scope: str) -> Path:
    """Where the prediction log of ``scope`` lives under the models root."""
    return Path(models_dir) / "advanced" / LOG_AREA / f"{scope}.sqlite"


@contextmanager
def guarded(path: Path) -> Iterator[None]:
    """Turn a failure of the log file (locked, corrupt, read-only) into one clear message."""
    try:
        yield
    except (sqlite3.Error, OSError) as err:
        raise InvalidInputError(
            f"{path}: the prediction log cannot be used ({err}). Hint: check that the file is "
            "a prediction log and the folder is writable; move a damaged file aside to start "
            "a new log") from None


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the log at ``path`` (created with its tables when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    # Batches are large blobs: 64 KiB pages write them in a sixteenth of the page chain and
    # halve a 10,000-row batch's write. It takes on a new file only; older logs keep theirs.
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    # Checkpoints (the only fsyncs under NORMAL) every ~80 MB of log rather than every 4 MB:
    # on 10,000-row batches that halves the log's cost.
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_BYTES // page_size}")
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
    served: np.ndarray  # (rows,) index into models, or ENSEMBLE_CODE
    probas: np.ndarray  # (rows, models, classes)
    inputs: np.ndarray  # (rows, features)
    failed: np.ndarray  # (rows, models) bool


class PredictionLog:
    """Appends served batches to one scope's log file (one connection, reused)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None

    def append(self, batch: LoggedBatch) -> None:
        """Write ``batch`` as one row, in one transaction.

        One row per batch, its per-request columns packed as arrays: a row per request would
        cost several times more than the prediction itself on large batches.
        """
        with guarded(self.path), transaction(self._connection()) as conn:
            conn.execute(
                "INSERT INTO batch (at, export, mode, canary, canary_share, models, classes, "
                "features, rows, latency_ms, request_ids, times, served, failed, probas, "
                "inputs) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (float(batch.at.min()) if len(batch.at) else 0.0, batch.export, batch.mode,
                 batch.canary, batch.canary_share, json.dumps(batch.models),
                 json.dumps([_plain(c) for c in batch.classes]), json.dumps(batch.features),
                 len(batch.request_ids), json.dumps(batch.latency_ms),
                 "\n".join(batch.request_ids), _blob(batch.at, np.float64),
                 _blob(batch.served, np.int16), _blob(batch.failed, np.bool_),
                 _blob(batch.probas, np.float32), _blob(batch.inputs, np.float32)))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path)
        return self._conn


def _blob(values: np.ndarray, dtype: type) -> bytes:
    return np.ascontiguousarray(values, dtype=dtype).tobytes()


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class BatchRecord:
    """One logged batch, decoded."""

    id: int
    export: str
    mode: str
    canary: str | None
    canary_share: float | None
    models: list[str]
    classes: list[str]
    features: list[str]
    latency_ms: dict[str, float]
    request_ids: list[str]
    at: np.ndarray
    served: list[str]
    failed: np.ndarray  # (rows, models)
    probas: np.ndarray  # (rows, models, classes)
    inputs: np.ndarray  # (rows, features)


def read_batches(path: Path) -> list[BatchRecord]:
    """Every logged batch, oldest first (empty when there is no log)."""
    if not path.exists():
        return []
    with guarded(path), closing(connect(path)) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute("SELECT * FROM batch ORDER BY id").fetchall()
    return [_decode(row) for row in rows]


def _decode(row: sqlite3.Row) -> BatchRecord:
    models = json.loads(row["models"])
    classes = [str(c) for c in json.loads(row["classes"])]
    features = json.loads(row["features"])
    n = row["rows"]
    codes = np.frombuffer(row["served"], dtype=np.int16)
    return BatchRecord(
        row["id"], row["export"], row["mode"], row["canary"], row["canary_share"], models,
        classes, features, json.loads(row["latency_ms"]),
        row["request_ids"].split("\n") if n else [],
        np.frombuffer(row["times"], dtype=np.float64),
        ["ensemble" if c == ENSEMBLE_CODE else models[c] for c in codes],
        np.frombuffer(row["failed"], dtype=np.bool_).reshape(n, len(models)),
        np.frombuffer(row["probas"], dtype=np.float32).reshape(n, len(models), len(classes)),
        np.frombuffer(row["inputs"], dtype=np.float32).reshape(n, len(features)))


def read_outcomes(path: Path) -> dict[str, str]:
    """The joined labels by request id."""
    if not path.exists():
        return {}
    with guarded(path), closing(connect(path)) as conn:
        return dict(conn.execute("SELECT request_id, label FROM outcome"))


class OutcomeWriter:
    """The outcome table inside one write transaction (see ``writing_outcomes``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def labels(self) -> dict[str, str]:
        """The labels joined so far, by request id."""
        return dict(self._conn.execute("SELECT request_id, label FROM outcome"))

    def add(self, rows: Sequence[tuple[str, str, float, str]]) -> None:
        """Append (request id, label, recorded at, source) rows."""
        self._conn.executemany("INSERT INTO outcome (request_id, label, recorded_at, source) "
                               "VALUES (?,?,?,?)", rows)


@contextmanager
def writing_outcomes(path: Path) -> Iterator[OutcomeWriter]:
    """One write transaction on the log's outcomes: what is read inside it stays true until
    the rows are added (another writer waits)."""
    with guarded(path), closing(connect(path)) as conn, transaction(conn):
        yield OutcomeWriter(conn)


def log_fingerprint(models_dir: Path | str, scope: str) -> tuple[tuple[int, int], ...]:
    """Size and modification time of the scope's log and of its write-ahead file: together
    they change whenever a batch or an outcome lands."""
    path = log_path(models_dir, scope)
    found = []
    for candidate in (path, path.with_name(path.name + "-wal")):
        try:
            stat = candidate.stat()
            found.append((stat.st_size, stat.st_mtime_ns))
        except OSError:
            found.append((-1, -1))
    return tuple(found)
