"""Checking what one member's ``predict_proba`` (or, for regression, ``predict``) returned
for one batch.

A row is valid when it is finite, has no negative value and sums to more than 0. A valid row
whose sum is off 1 by more than ``SUM_TOLERANCE`` is divided by its sum, the same division
evaluation applies (``promotion.evaluation._measure``), and counted so the engine can say so;
a row within the tolerance is left exactly as the model gave it. Every other row is a failed
row of the member. A call that raised, or an output of the wrong shape or not made of
numbers, fails every row. What the engine does with failed rows is its rule (see
``promotion.engine._engine``).

A regression member answers one value per row (``check_values``): a value that is not finite
fails its row; nothing is renormalized.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

#: How far from 1 a row's sum may be and still be served as the model gave it (float32
#: models such as xgboost are off by about 1e-7).
SUM_TOLERANCE = 1e-6


@dataclass(frozen=True)
class MemberOutput:
    """One member's checked probabilities for a batch."""

    #: (rows, classes) in the cards' class order, or for regression (rows, 1) predicted
    #: values; NaN on failed rows
    proba: np.ndarray
    failed: np.ndarray  # (rows,) bool
    reason: str | None  # why rows failed, None when none did
    renormalized: int = 0  # valid rows divided by their sum
    sums: tuple[float, float] | None = None  # lowest and highest such sum


@dataclass(frozen=True)
class MemberNote:
    """Something one member did on a batch that the caller should hear of."""

    model_name: str
    kind: Literal["renormalized", "failed"]
    rows: int  # rows concerned
    total: int  # rows in the batch (or, added up, in every batch)
    detail: str  # what happened, and for failures what the engine did about it

    @property
    def message(self) -> str:
        if self.kind == "renormalized":
            return (f"model '{self.model_name}': {self.rows} of {self.total} rows "
                    f"{self.detail}")
        return f"model '{self.model_name}' failed on {self.rows} of {self.total} rows " \
               f"{self.detail}"

    def plus(self, other: MemberNote) -> MemberNote:
        """The same note over both batches (the first batch's detail is kept)."""
        return replace(self, rows=self.rows + other.rows, total=self.total + other.total)


def failed_output(rows: int, n_classes: int, reason: str) -> MemberOutput:
    """Every row failed, for ``reason``."""
    return MemberOutput(np.full((rows, n_classes), np.nan), np.ones(rows, dtype=bool), reason)


def check_output(raw: Any, rows: int, positions: np.ndarray | None,
                 n_classes: int) -> MemberOutput:
    """``raw`` checked row by row and placed in the cards' class order (``positions``: the
    column of each of the model's classes; None when they are the cards' classes in order)."""
    width = n_classes if positions is None else len(positions)
    try:
        values = np.asarray(raw, dtype=float)
    except (TypeError, ValueError) as err:
        return failed_output(rows, n_classes, "predict_proba returned values that are not "
                                              f"numbers ({type(err).__name__}: {err})")
    if values.shape != (rows, width):
        return failed_output(rows, n_classes, f"predict_proba returned shape {values.shape}, "
                                              f"expected {(rows, width)}")
    with np.errstate(invalid="ignore", over="ignore"):
        sums = values.sum(axis=1)
        # The usual case in few operations: every row a distribution within the tolerance
        # (a NaN or an infinity fails both comparisons).
        healthy = bool((np.abs(sums - 1.0) <= SUM_TOLERANCE).all()
                       and values.min(initial=0) >= 0)
    if healthy:
        placed = values if positions is None else _placed(values, positions, n_classes)
        return MemberOutput(placed, np.zeros(rows, dtype=bool), None)
    not_finite = ~np.isfinite(values).all(axis=1)
    negative = (values < 0).any(axis=1) & ~not_finite
    zero = (sums <= 0) & ~not_finite & ~negative
    failed = not_finite | negative | zero
    reasons = [text for text, rows_of in (("NaN or infinite values", not_finite),
                                          ("negative values", negative),
                                          ("rows that sum to 0", zero)) if rows_of.any()]
    off = ~failed & (np.abs(sums - 1.0) > SUM_TOLERANCE)
    if off.any():
        values = values.copy()
        values[off] /= sums[off, None]
    values[failed] = np.nan
    proba = values if positions is None else _placed(values, positions, n_classes)
    return MemberOutput(proba, failed,
                        "predict_proba returned " + ", ".join(reasons) if reasons else None,
                        int(off.sum()),
                        (float(sums[off].min()), float(sums[off].max())) if off.any() else None)


def check_values(raw: Any, rows: int) -> MemberOutput:
    """A regression member's ``predict`` output checked row by row, as a (rows, 1) column: a
    value that is not finite fails its row; output of the wrong shape or not made of numbers
    fails every row."""
    try:
        values = np.asarray(raw, dtype=float)
    except (TypeError, ValueError) as err:
        return failed_output(rows, 1, "predict returned values that are not numbers "
                                      f"({type(err).__name__}: {err})")
    if values.shape not in ((rows,), (rows, 1)):  # (rows, 1): a model fitted on a 2-D target
        return failed_output(rows, 1, f"predict returned shape {values.shape}, expected "
                                      f"{(rows,)}")
    column = values.reshape(rows, 1)
    failed = ~np.isfinite(column[:, 0])
    if not failed.any():
        return MemberOutput(column, failed, None)
    column = column.copy()
    column[failed] = np.nan
    return MemberOutput(column, failed, "predict returned NaN or infinite values")


def _placed(values: np.ndarray, positions: np.ndarray, n_classes: int) -> np.ndarray:
    """The model's columns moved to the cards' class order (classes it lacks: 0; a row
    failed before, NaN throughout, stays NaN)."""
    proba = np.zeros((len(values), n_classes))
    proba[:, positions] = values
    proba[np.isnan(values).any(axis=1)] = np.nan
    return proba


def renormalized_detail(sums: tuple[float, float]) -> str:
    """How far off the renormalized rows were, in words."""
    low, high = sums
    said = f"{low:.6g}" if f"{low:.6g}" == f"{high:.6g}" else f"{low:.6g} to {high:.6g}"
    return f"summed to {said}, not 1; renormalized"
