"""Outcomes: true labels joined to the logged requests, whenever they arrive.

A request of a regression export takes a number as its label (the true value), kept as the
text of its float so it reads back exactly; a label that is not a finite number is refused
with the file, row and column named, and nothing of the file is joined.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine._predlog import (
    is_regression_batch,
    iter_batches,
    log_path,
    log_paths,
    reading,
    writing_outcomes,
)
from ..errors import InvalidInputError

if TYPE_CHECKING:  # pandas loads where a labels file is read
    import pandas as pd


@dataclass(frozen=True)
class OutcomeReport:
    """What joining a labels file did: written, and every id not written with the reason."""

    written: int
    unmatched: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # same label again: ignored
    conflicts: list[str] = field(default_factory=list)  # another label: the first is kept
    unknown_labels: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)  # logged more than once

    def summary(self) -> str:
        parts = [f"{self.written} outcome(s) joined"]
        for name, ids in (("unmatched (no such request logged)", self.unmatched),
                          ("duplicate (same label again, ignored)", self.duplicates),
                          ("conflicting (another label; the first is kept)", self.conflicts),
                          ("with an unknown label", self.unknown_labels),
                          ("ambiguous (logged more than once; not joined)", self.ambiguous)):
            if ids:
                shown = ", ".join(ids[:5]) + (f" … (+{len(ids) - 5})" if len(ids) > 5 else "")
                parts.append(f"{len(ids)} {name}: {shown}")
        return "; ".join(parts)


def read_labels(path: Path) -> pd.DataFrame:
    """A labels CSV with columns ``request_id`` and ``label`` (read as text)."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file is missing (argument --file)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{path}: not a readable CSV ({err})") from None
    for column in ("request_id", "label"):
        if column not in frame.columns:
            raise InvalidInputError(f"{path}: column '{column}' is missing (the file needs "
                                    "request_id,label)")
    return frame[["request_id", "label"]]


def record_outcomes(models_dir: Path, scope: str, labels: pd.DataFrame, *,
                    source: str = "labels") -> OutcomeReport:
    """Join true labels to the logged requests of ``scope``.

    A label may arrive any time after its request (late labels are fine). An id that was
    never logged is reported as unmatched and not kept; one logged more than once is reported
    as ambiguous and not kept. The first label of a request wins: a repeat with the same label
    is reported as a duplicate, one with another label as a conflict; neither changes what is
    stored. A request of a regression export takes a number (see the module doc).
    """
    path = log_path(models_dir, scope)
    wanted = set(labels["request_id"].astype(str).str.strip())
    classes: set[str] = set()
    logged: Counter[str] = Counter()  # of the labelled ids only: the log is streamed
    numeric: set[str] = set()  # of those, the requests of a regression export
    seen = False
    if log_paths(models_dir, scope):  # the replicas' requests too; outcomes stay in ``path``
        with reading(path) as conn:
            for batch in iter_batches(conn, ("request_ids",)):
                seen = True
                classes.update(batch.classes)
                found = [i for i in batch.request_ids if i in wanted]
                logged.update(found)
                if is_regression_batch(batch.classes):
                    numeric.update(found)
    if not seen:
        raise InvalidInputError(f"{path}: no prediction logged for scope '{scope}' yet. "
                                "Hint: serve predictions first (python -m promotion predict or "
                                "simulate)")
    ids = labels["request_id"].astype(str).str.strip().tolist()
    texts = labels["label"].astype(str).str.strip().tolist()
    # Every number read before anything is written (a bad one joins nothing), each as the
    # text of its float: "1.50" and "1.5" are the same label.
    if numeric:
        texts = [_number(text, at, request_id, source) if request_id in numeric else text
                 for at, (request_id, text) in enumerate(zip(ids, texts, strict=True))]
    report = OutcomeReport(written=0)
    with writing_outcomes(path) as outcomes:
        stored = outcomes.labels()
        rows = []
        for request_id, label in zip(ids, texts, strict=True):
            if request_id not in logged:
                report.unmatched.append(request_id)
            elif logged[request_id] > 1:
                report.ambiguous.append(request_id)
            elif label not in classes and request_id not in numeric:
                report.unknown_labels.append(request_id)
            elif request_id in stored:
                (report.duplicates if stored[request_id] == label
                 else report.conflicts).append(request_id)
            else:
                stored[request_id] = label
                rows.append((request_id, label, time.time(), source))
        outcomes.add(rows)
    return replace(report, written=len(rows))


def _number(text: str, at: int, request_id: str, source: str) -> str:
    """A regression label as stored: the text of its float (which reads back exactly)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidInputError(
            f"{source}: row {at + 1} (request_id '{request_id}'), column 'label': {text!r} is "
            "not a finite number; the request was served by a regression export, whose "
            "outcomes are the true values. Hint: write the number, e.g. 151.0")
    return repr(value)

