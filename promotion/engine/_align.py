"""Matching a model's ``predict_proba`` columns to a scope's classes (no heavy imports)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInputError
from ._native import NativeBooster, lightgbm_columns

if TYPE_CHECKING:
    import pandas as pd


class ClassMismatch(ValueError):
    """The model predicts a class the scope does not have."""


def plain_label(label: Any) -> Any:
    """A class label comparable across int, float and str spellings of the same value."""
    if isinstance(label, float) and label.is_integer():
        return int(label)
    if isinstance(label, str) and label.lstrip("-").isdigit():
        return int(label)
    return label


def class_positions(model: Any, classes: list) -> np.ndarray:
    """For each column of the model's predict_proba, its position in ``classes``."""
    model_classes = getattr(model, "classes_", None)
    if model_classes is None:
        raise ClassMismatch("the model has no classes_; it must be a fitted classifier")
    lookup = {plain_label(c): i for i, c in enumerate(classes)}
    positions = []
    for label in np.asarray(model_classes).tolist():
        if plain_label(label) not in lookup:
            raise ClassMismatch(f"the model predicts class {label!r}, which the scope does not "
                                "have. Hint: list every class in scope.json field 'classes'")
        positions.append(lookup[plain_label(label)])
    return np.asarray(positions)


def _catboost_names(model: Any) -> list[str] | None:
    """CatBoost keeps its feature names in ``feature_names_`` (its ``n_features_in_`` reads 0
    once loaded or unpickled); names "0", "1", ... are its placeholders for unnamed ones."""
    if not type(model).__module__.startswith("catboost"):
        return None
    names = [str(n) for n in (getattr(model, "feature_names_", None) or [])]
    return None if names == [str(i) for i in range(len(names))] else names


def declared_feature_count(model: Any) -> Any:
    """How many features the model says it takes (None when it does not say)."""
    if type(model).__module__.startswith("catboost"):
        return len(getattr(model, "feature_names_", None) or []) or None
    return getattr(model, "n_features_in_", None)


def model_columns(model: Any, available: list[str]) -> list[str]:
    """The feature columns the model takes, in its own order; missing ones raise KeyError."""
    expected = getattr(model, "feature_names_in_", None)
    if expected is None:
        expected = _catboost_names(model)
    if expected is None:
        return list(available)
    expected = [str(c) for c in expected]
    if isinstance(model, NativeBooster) and model.library == "lightgbm":
        expected = lightgbm_columns(expected, available)
    missing = [c for c in expected if c not in set(available)]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise KeyError(shown)
    return expected


def require_columns(available: Sequence[str], needed: Sequence[str]) -> None:
    """Refuse input that lacks one of the cards' feature columns (extra ones are fine)."""
    have = set(available)
    missing = [c for c in needed if c not in have]
    if missing:
        raise InvalidInputError(
            f"input is missing feature column '{missing[0]}'"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + f"; the cards need {len(needed)} columns (field feature_names)")


def category_code(label: object) -> float:
    """A text value as a number for the prediction log and drift: a stable 24-bit hash,
    exact in float32, so a category is matched by value wherever it is counted."""
    digest = hashlib.blake2b(str(label).encode("utf-8"), digest_size=3).digest()
    return float(int.from_bytes(digest, "big"))


def input_numbers(frame: pd.DataFrame) -> np.ndarray:
    """The rows as float64: numbers as they are, text and categories by ``category_code``,
    missing values as NaN."""
    import pandas as pd

    columns = []
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series):
            columns.append(series.to_numpy(dtype=float, na_value=np.nan))
            continue
        index, uniques = pd.factorize(series)
        codes = np.array([category_code(u) for u in uniques] + [np.nan])
        columns.append(codes[index])  # index -1 (missing) takes the trailing NaN
    return np.column_stack(columns) if columns else np.zeros((len(frame), 0))
