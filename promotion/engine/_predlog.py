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

A batch of a regression export logs an empty ``classes`` list (a classification export always
has at least two classes, so old logs read as before). Its ``probas`` blob holds float64, per
request each model's predicted value and then the value served: (rows, models + 1). Its
outcomes are numbers, kept as text like every label (``repr`` of the float: it reads back
exactly).
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError

LOG_AREA = "prediction_log"
#: Between a scope and a replica's id in a replica's log file name; ids are REPLICA_ID.
REPLICA_MARK = "@"
REPLICA_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
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


def log_path(models_dir: Path | str, scope: str, replica: str | None = None) -> Path:
    """Where the prediction log of ``scope`` lives under the models root; a server replica
    (``serve --replica``) writes its own file beside it, ``<scope>@<replica>.sqlite``."""
    name = scope if replica is None else f"{scope}{REPLICA_MARK}{replica}"
    return Path(models_dir) / "advanced" / LOG_AREA / f"{name}.sqlite"


def log_paths(models_dir: Path | str, scope: str) -> list[Path]:
    """Every prediction-log file of ``scope`` that exists: the scope's own, then each
    replica's, by name."""
    main = log_path(models_dir, scope)
    replicas = sorted(p for p in main.parent.glob(f"{glob_escape(scope)}{REPLICA_MARK}*.sqlite")
                      if REPLICA_ID.fullmatch(p.name[len(scope) + 1:-len(".sqlite")]))
    return [p for p in (main, *replicas) if p.exists()]


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
    #: Regression only: the value served to each request (rows,); ``probas`` then holds each
    #: model's predicted value (rows, models, 1).
    served_values: np.ndarray | None = None


def is_regression_batch(classes: Sequence[object]) -> bool:
    """Whether a logged batch is of a regression export: it lists no classes (a
    classification export lists at least two)."""
    return len(classes) == 0


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
                 _outputs_blob(batch), _blob(batch.inputs, np.float32)))

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


def _outputs_blob(batch: LoggedBatch) -> bytes:
    """The models' outputs: probabilities as float32; for regression each model's value and
    the served one, float64 (rows, models + 1)."""
    if not is_regression_batch(batch.classes):
        return _blob(batch.probas, np.float32)
    rows = len(batch.request_ids)
    served = (batch.served_values if batch.served_values is not None
              else np.full(rows, np.nan))
    values = batch.probas.reshape(rows, len(batch.models))
    return _blob(np.column_stack([values, served]), np.float64)


def _plain(value: object) -> object:
    return value.item() if hasattr(value, "item") else value


#: The per-request parts of a logged batch (columns of ``batch``). A reader names the ones it
#: needs; the others are not read from the file (the probabilities and inputs are most of it).
PARTS = ("request_ids", "times", "served", "failed", "probas", "inputs")
_FACTS = ("id", "export", "mode", "canary", "canary_share", "models", "classes", "features",
          "rows", "latency_ms")


@dataclass(frozen=True)
class BatchRecord:
    """One logged batch, decoded. A part not asked for (see ``iter_batches``) is empty."""

    id: int
    export: str
    mode: str
    canary: str | None
    canary_share: float | None
    models: list[str]
    classes: list[str]
    features: list[str]
    latency_ms: dict[str, float]
    rows: int
    request_ids: list[str]
    at: np.ndarray  # (rows,) unix seconds
    served: np.ndarray  # (rows,) int16: index into models, or ENSEMBLE_CODE
    failed: np.ndarray  # (rows, models)
    probas: np.ndarray  # (rows, models, classes) float32; regression (rows, models, 1) float64
    inputs: np.ndarray  # (rows, features) float32
    #: Regression: the value served to each request (rows,) float64; empty otherwise.
    served_values: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def regression(self) -> bool:
        return is_regression_batch(self.classes)

    def served_by(self) -> list[str]:
        """The model that answered each request (``ensemble`` for the weighted set)."""
        return ["ensemble" if c == ENSEMBLE_CODE else self.models[c]
                for c in self.served.tolist()]


def read_batches(path: Path) -> list[BatchRecord]:
    """Every logged batch with every part, oldest first (empty when there is no log). Holds
    the whole log in memory: monitoring streams it with ``iter_batches`` instead."""
    if not path.exists():
        return []
    with reading(path) as conn:
        return list(iter_batches(conn))


@contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read connection to the log that sees one snapshot of it until the block ends, so
    several queries agree with each other while the engine keeps appending.

    When server replicas log beside it (``<scope>@<replica>.sqlite``), their batches are
    read with the scope's own through one ``batch`` view (ids made unique per file), and
    outcomes stay in the scope's own file: every reader sees every replica.
    """
    with guarded(path), closing(connect(path)) as conn:
        _with_replicas(conn, path)
        conn.execute("BEGIN")  # deferred: the first read fixes the snapshot
        try:
            yield conn
        finally:
            conn.execute("COMMIT")


#: Low bits of a batch id read through the replicas' view: which file it came from.
_FILE_BITS = 8


def _with_replicas(conn: sqlite3.Connection, path: Path) -> None:
    """Attach the replicas' logs of ``path`` and shadow ``batch`` with a view of them all."""
    stem = path.name.removesuffix(".sqlite")
    replicas = sorted(p for p in path.parent.glob(f"{glob_escape(stem)}{REPLICA_MARK}*.sqlite")
                      if REPLICA_ID.fullmatch(p.name[len(stem) + 1:-len(".sqlite")]))
    if not replicas:
        return
    columns = [row[1] for row in conn.execute("PRAGMA main.table_info(batch)")][1:]
    arms = [f"SELECT (id << {_FILE_BITS}) AS id, {', '.join(columns)} FROM main.batch"]
    for k, replica in enumerate(replicas, start=1):
        conn.execute(f"ATTACH DATABASE ? AS replica{k}", (str(replica),))
        arms.append(f"SELECT (id << {_FILE_BITS}) | {k} AS id, {', '.join(columns)} "
                    f"FROM replica{k}.batch")
    # A temporary view is found before the main table of the same name.
    conn.execute(f"CREATE TEMP VIEW batch AS {' UNION ALL '.join(arms)}")


def iter_batches(conn: sqlite3.Connection, parts: Sequence[str] = PARTS, *,
                 export: str | None = None, last_id: int | None = None,
                 skip_empty: bool = False) -> Iterator[BatchRecord]:
    """The logged batches oldest first, decoded one at a time: a log larger than memory is
    read in the memory of its largest batch. Only ``parts`` are read (the others come back
    empty); ``export`` keeps that export's batches, ``last_id`` stops at that batch (the
    snapshot an earlier pass saw), ``skip_empty`` leaves out batches of no request."""
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown parts of a logged batch: {', '.join(unknown)}")
    columns = [*_FACTS, *parts]
    where, params = ["1"], []
    if export is not None:
        where.append("export = ?")
        params.append(export)
    if last_id is not None:
        where.append("id <= ?")
        params.append(last_id)
    if skip_empty:
        where.append("rows > 0")
    cursor = conn.execute(f"SELECT {', '.join(columns)} FROM batch WHERE {' AND '.join(where)} "
                          "ORDER BY id", params)
    cursor.row_factory = sqlite3.Row
    # The cursor steps through the file: one batch's bytes in memory at a time.
    for row in cursor:
        yield _decode(row, parts)


def _decode(row: sqlite3.Row, parts: Sequence[str]) -> BatchRecord:
    models = _json(row["models"])
    classes = [str(c) for c in _json(row["classes"])]
    features = _json(row["features"])
    n = row["rows"]

    def part(name: str, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
        if name not in parts:
            return np.zeros((0,) * len(shape), dtype=dtype)
        return np.frombuffer(row[name], dtype=dtype).reshape(shape)

    if is_regression_batch(classes):  # each model's value, then the served one (float64)
        outputs = part("probas", np.float64, (n, len(models) + 1))
        asked = "probas" in parts
        probas = outputs[:, :len(models), None] if asked else np.zeros((0, 0, 0))
        served_values = outputs[:, len(models)] if asked else np.zeros(0)
    else:
        probas = part("probas", np.float32, (n, len(models), len(classes)))
        served_values = np.zeros(0)
    return BatchRecord(
        row["id"], row["export"], row["mode"], row["canary"], row["canary_share"], models,
        classes, features, json.loads(row["latency_ms"]), n,
        row["request_ids"].split("\n") if n and "request_ids" in parts else [],
        part("times", np.float64, (n,)), part("served", np.int16, (n,)),
        part("failed", np.bool_, (n, len(models))), probas,
        part("inputs", np.float32, (n, len(features))), served_values)


@functools.lru_cache(maxsize=256)
def _json_cached(text: str) -> tuple:
    return tuple(json.loads(text))


def _json(text: str) -> list:
    """A JSON list of the log (models, classes, features): a log of many small batches
    repeats the same few texts, each parsed once."""
    return list(_json_cached(text))


@dataclass(frozen=True)
class LogSummary:
    """What a reader sizes its arrays by, read without the per-request parts."""

    batches: int  # batches of at least one request
    rows: int  # requests in them
    last_id: int | None  # the newest batch in this snapshot
    models: list[str]  # every model logged, in order of first appearance
    classes: list[str]  # of the newest batch of at least one request
    features: list[str]  # idem


def summarize(conn: sqlite3.Connection) -> LogSummary:
    """The log's size and its newest classes and features (``reading`` gives the snapshot)."""
    batches, rows, last_id = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(rows), 0), MAX(id) FROM batch WHERE rows > 0").fetchone()
    models: dict[str, None] = {}
    for (text,) in conn.execute("SELECT models FROM batch WHERE rows > 0 GROUP BY models "
                                "ORDER BY MIN(id)"):
        models.update(dict.fromkeys(_json(text)))
    newest = conn.execute("SELECT classes, features FROM batch WHERE rows > 0 ORDER BY id DESC "
                          "LIMIT 1").fetchone()
    classes, features = ([str(c) for c in _json(newest[0])], _json(newest[1])) if newest else (
        [], [])
    return LogSummary(batches, rows, last_id, list(models), classes, features)


def labels_of(conn: sqlite3.Connection, request_ids: Sequence[str]) -> list[tuple[int, str]]:
    """(position in ``request_ids``, label) of each of them with a joined outcome: looked up
    in the outcome table's index, one batch of ids at a time (no map of every label)."""
    if not request_ids:
        return []
    return conn.execute("SELECT ids.key, outcome.label FROM json_each(?) AS ids "
                        "JOIN outcome ON outcome.request_id = ids.value",
                        (json.dumps(list(request_ids)),)).fetchall()


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
    found = []
    paths = log_paths(models_dir, scope) or [log_path(models_dir, scope)]
    for candidate in [c for p in paths for c in (p, p.with_name(p.name + "-wal"))]:
        try:
            stat = candidate.stat()
            found.append((stat.st_size, stat.st_mtime_ns))
        except OSError:
            found.append((-1, -1))
    return tuple(found)
