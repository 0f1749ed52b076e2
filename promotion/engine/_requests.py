"""Request rows from a CSV file, read strictly and in batches (``python -m promotion predict``).

``RequestsCsv.check`` reads the whole file once without keeping it: the header must name each
column once and every feature the cards need; every row must have one value per header
column (pandas alone would take a longer first row's extra fields as an index, shifting every
feature, and fill a short row with NaN); request ids, when the file has a ``request_id``
column, must be present and unique across the file. Only then is a row served:
``batches`` reads the file again, ``batch_rows`` rows at a time, with pandas' usual parsing
of values, so memory stays bounded by a batch whatever the file's size. A value that is not
a number in a numeric feature is named with its line; the scope's text categories
(``text_features``) are read as text, and an empty value is missing in any column.

Lines are numbered as an editor shows them (the header is line 1); blank lines are skipped,
as pandas skips them. Values are separated by commas; a quoted value may hold commas and
line breaks.
"""

from __future__ import annotations

import csv
import io
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple

import numpy as np

from ..errors import InvalidInputError
from ._align import require_columns

if TYPE_CHECKING:
    import pandas as pd

#: The optional column naming each request (kept as written: "007" stays "007").
REQUEST_ID = "request_id"
#: Rows per served batch: each is one engine call and one prediction-log row.
BATCH_ROWS = 10_000


@dataclass(frozen=True)
class RequestBatch:
    """Rows of the file, ready for ``PredictionEngine.serve``."""

    features: pd.DataFrame  # the cards' feature columns
    request_ids: list[str] | None  # None when the file has no request_id column
    lines: list[int]  # each row's first line in the file


class _Record(NamedTuple):
    """One record of the file (a tuple: a million of them are made per million rows)."""

    line: int  # first line of the record
    text: str  # as read, line breaks included
    fields: list[str] | None  # parsed only when the record holds a quote
    count: int  # number of fields

    def field(self, index: int) -> str:
        values = self.fields if self.fields is not None else \
            self.text.rstrip("\r\n").split(",")
        return values[index]


def _records(handle: IO[str]) -> Iterator[_Record]:
    """Every non-blank record of the file, with its field count.

    A line without a quote is counted directly (a comma is a separator); a record holding a
    quote goes through ``csv``, which reads exactly the lines it spans.
    """
    lines = iter(handle)
    number = 0
    for line in lines:
        number += 1
        if not line.strip():
            continue
        if '"' not in line:
            yield _Record(number, line, None, line.count(",") + 1)
            continue
        taken = [line]
        try:
            fields = next(csv.reader(_spanned(taken, lines), strict=True))
        except csv.Error as err:
            raise _BadQuote(number, str(err)) from None
        yield _Record(number, "".join(taken), fields, len(fields))
        number += len(taken) - 1


class _BadQuote(Exception):
    """A quoted value the csv module cannot read (e.g. never closed)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(line, reason)
        self.line, self.reason = line, reason


def _spanned(taken: list[str], lines: Iterator[str]) -> Iterator[str]:
    """``taken``'s line, then more of ``lines`` as csv asks for them, each added to
    ``taken``: the raw text of one record."""
    yield taken[0]
    for more in lines:
        taken.append(more)
        yield more


class RequestsCsv:
    """A checked CSV of request rows (see the module doc)."""

    def __init__(self, path: Path, header: list[str], features: list[str], rows: int,
                 text_features: Sequence[str] = ()) -> None:
        self.path = path
        self.header = header
        self.features = features
        self.rows = rows
        self.text_features = [name for name in features if name in set(text_features)]

    @classmethod
    def check(cls, path: Path | str, features: Sequence[str],
              text_features: Sequence[str] = ()) -> RequestsCsv:
        """Read ``path`` once and refuse it, naming the line, unless every row is sound."""
        path = Path(path)
        with _opened(path) as handle, _decoding(path):
            records = _records(handle)
            header = _header(path, next(records, None), list(features))
            ids = header.index(REQUEST_ID) if REQUEST_ID in header else None
            hashes = array("q")
            rows = 0
            for record in records:
                _check_count(path, record, len(header))
                if ids is not None:
                    hashes.append(hash(_request_id(path, record, ids)))
                rows += 1
        if ids is not None:
            _check_unique(path, np.frombuffer(hashes, dtype=np.int64), ids)
        return cls(path, header, list(features), rows, text_features)

    def batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[RequestBatch]:
        """The rows, ``batch_rows`` at a time, in file order."""
        if batch_rows < 1:
            raise InvalidInputError(f"batch_rows {batch_rows}: must be at least 1")
        with _opened(self.path) as handle, _decoding(self.path):
            records = _records(handle)
            next(records)  # the header
            chunk: list[_Record] = []
            for record in records:
                chunk.append(record)
                if len(chunk) == batch_rows:
                    yield self._batch(chunk)
                    chunk = []
            if chunk:
                yield self._batch(chunk)

    def _batch(self, chunk: list[_Record]) -> RequestBatch:
        import pandas as pd

        # Every record has one value per column (checked), so pandas cannot shift them.
        frame = pd.read_csv(io.StringIO("".join(r.text for r in chunk)), header=None,
                            names=self.header, index_col=False, usecols=self.features,
                            dtype=dict.fromkeys(self.text_features, str))
        lines = [r.line for r in chunk]
        for name in self.features:
            if name not in self.text_features and \
                    not pd.api.types.is_numeric_dtype(frame[name].dtype):
                _refuse_text(self.path, frame[name], name, lines)
        ids = None
        if REQUEST_ID in self.header:
            at = self.header.index(REQUEST_ID)
            ids = [r.field(at) for r in chunk]
        return RequestBatch(frame[self.features], ids, lines)


def _opened(path: Path) -> IO[str]:
    try:
        # newline="": line breaks inside quoted values are kept for csv; utf-8-sig drops a BOM
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file is missing (argument --input)") from None
    except OSError as err:
        raise InvalidInputError(f"{path}: cannot be read ({err.strerror or err})") from None


@contextmanager
def _decoding(path: Path) -> Iterator[None]:
    try:
        yield
    except _BadQuote as err:
        raise InvalidInputError(f"{path}: line {err.line}: a quoted value cannot be read "
                                f"({err.reason})") from None
    except UnicodeDecodeError as err:
        raise InvalidInputError(f"{path}: is not UTF-8 text ({err.reason}). Hint: save it as "
                                "UTF-8 CSV") from None


def _header(path: Path, record: _Record | None, features: list[str]) -> list[str]:
    if record is None:
        raise InvalidInputError(f"{path}: is empty; its first line must name the columns "
                                f"(the cards need {', '.join(features[:5])}"
                                + (" ..." if len(features) > 5 else "") + ")")
    header = record.fields if record.fields is not None else \
        record.text.rstrip("\r\n").split(",")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise InvalidInputError(f"{path}: line {record.line}: the header names column "
                                    f"'{name}' twice")
        seen.add(name)
    try:
        require_columns(header, features)
    except InvalidInputError as err:
        raise InvalidInputError(f"{path}: {err}") from None
    return header


def _check_count(path: Path, record: _Record, expected: int) -> None:
    if record.count != expected:
        raise InvalidInputError(
            f"{path}: line {record.line}: {record.count} fields, the header has {expected}. "
            "Hint: every row needs one value per header column")


def _request_id(path: Path, record: _Record, at: int) -> str:
    value = record.field(at)
    if not value.strip():
        raise InvalidInputError(f"{path}: line {record.line}: the request id is empty "
                                f"(column {REQUEST_ID}). Hint: give every row its own id")
    return value


def _check_unique(path: Path, hashes: np.ndarray, at: int) -> None:
    """Refuse a request id used twice, naming both lines. Only ids whose hashes collide are
    read again and compared, so checking a file keeps 8 bytes per row, not its ids."""
    ordered = np.sort(hashes)
    repeated = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if not repeated:
        return
    first_seen: dict[str, int] = {}
    with _opened(path) as handle, _decoding(path):
        records = _records(handle)
        next(records)
        for record in records:
            value = record.field(at)
            if hash(value) not in repeated:
                continue
            if value in first_seen:
                raise InvalidInputError(
                    f"{path}: line {record.line}: request id '{value}' repeats line "
                    f"{first_seen[value]} (column {REQUEST_ID}). Hint: give every row its "
                    "own id")
            first_seen[value] = record.line


def _refuse_text(path: Path, column: pd.Series, name: str, lines: list[int]) -> None:
    import pandas as pd

    numbers = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero((numbers.isna() & column.notna()).to_numpy())
    if len(bad):
        raise InvalidInputError(f"{path}: line {lines[bad[0]]}: column '{name}' holds "
                                f"{column.iloc[bad[0]]!r}, not a number")
