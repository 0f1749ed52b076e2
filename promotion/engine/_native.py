"""Native booster files (LightGBM ``model.txt``, XGBoost ``model.ubj``/``model.json``, CatBoost
``model.cbm``), each built by its own library's parser from verified bytes, never unpickled.

LightGBM and XGBoost boosters predict for class indexes 0..K-1 and keep no labels: meta.json's
``classes`` names each output column, else the labels are those indexes. CatBoost files keep
their own labels. The libraries are imported only when such a file is loaded; LightGBM and
CatBoost are optional (requirements-formats.txt).

Boosters predict on one thread: the evaluation measures one model per core, and a single row
(what a served request mostly is) is answered fastest so; threads started per call cost more
than the few trees' work (measured in bench/bench_formats.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


class NativeFormatError(ValueError):
    """A native file that cannot serve as a classifier; the message is the reason."""


#: For each optional library: the name users know it by, and how to install it.
_PACKAGES = {"lightgbm": "LightGBM", "xgboost": "XGBoost", "catboost": "CatBoost"}


def not_installed(package: str, what: str) -> str:
    """The reason a model cannot load without ``package``, with how to install it."""
    how = (f"pip install -r requirements-formats.txt (or pip install {package})"
           if package in ("lightgbm", "catboost") else f"pip install {package}")
    return f"{what}, and {package} is not installed. Hint: {how}"


def _library(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise NativeFormatError(not_installed(module, f"is a {_PACKAGES[module]} model file")
                                ) from None


class NativeClassifier:
    """A booster behind the face the project measures and serves: ``predict_proba``,
    ``classes_``, ``n_features_in_`` and, when the booster names its features,
    ``feature_names_in_`` (the holdout's spelling of them)."""

    def __init__(self, proba: Callable[[Any], np.ndarray], classes: Sequence[Any],
                 n_features: int, feature_names: list[str] | None, library: str) -> None:
        self._proba = proba
        self.classes_ = np.asarray(list(classes), dtype=object)
        self.n_features_in_ = n_features
        self.feature_names_in_ = feature_names
        self.library = library

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self._proba(X)

    def __repr__(self) -> str:
        return f"NativeClassifier({self.library}, classes={self.classes_.tolist()})"


def _two_columns(p1: np.ndarray) -> np.ndarray:
    p1 = np.asarray(p1, dtype=float).reshape(-1)
    return np.column_stack([1.0 - p1, p1])


def _softmax(margin: np.ndarray) -> np.ndarray:
    shifted = margin - margin.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _labels(declared: Sequence[Any] | None, n_classes: int) -> list[Any]:
    if declared is None:
        return list(range(n_classes))
    if len(declared) != n_classes:
        raise NativeFormatError(
            f"predicts {n_classes} classes, but meta.json field 'classes' lists "
            f"{len(declared)}")
    return list(declared)


def _named(names: Sequence[str] | None, defaults: Callable[[int, str], bool]
           ) -> list[str] | None:
    """The booster's feature names, or None when they are the library's placeholders."""
    if not names or all(defaults(i, n) for i, n in enumerate(names)):
        return None
    return [str(n) for n in names]


# --- LightGBM --------------------------------------------------------------------------------

def load_lightgbm(payload: bytes, classes: Sequence[Any] | None) -> NativeClassifier:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise NativeFormatError("is not a LightGBM text model (not UTF-8 text)") from None
    header = dict(line.split("=", 1) for line in text.split("\nTree=", 1)[0].splitlines()
                  if "=" in line)
    objective = header.get("objective", "").split(" ")[0]
    if objective not in ("binary", "cross_entropy", "multiclass", "multiclassova"):
        shown = objective or "none"
        raise NativeFormatError(f"has LightGBM objective '{shown}', not a classifier's "
                                "(binary, cross_entropy, multiclass, multiclassova)")
    lgb = _library("lightgbm")
    try:
        booster = lgb.Booster(model_str=text)
    except Exception as err:
        raise NativeFormatError(f"is not a LightGBM model: {str(err)[:200]}") from None
    n_classes = int(header.get("num_class", "1"))
    binary = objective in ("binary", "cross_entropy")
    labels = _labels(classes, 2 if binary else n_classes)

    def proba(X: Any) -> np.ndarray:
        out = np.asarray(booster.predict(X, num_threads=1), dtype=float)
        if binary:
            return _two_columns(out)
        return out / out.sum(axis=1, keepdims=True) if objective == "multiclassova" else out

    names = _named(booster.feature_name(), lambda i, n: n == f"Column_{i}")
    return NativeClassifier(proba, labels, booster.num_feature(), names, "lightgbm")


def lightgbm_columns(expected: list[str], available: Sequence[str]) -> list[str]:
    """LightGBM stores feature names with whitespace turned into ``_``: map them back."""
    spelled = {re.sub(r"\s", "_", str(c)): str(c) for c in available}
    return [c if c in set(available) else spelled.get(c, c) for c in expected]


# --- XGBoost ---------------------------------------------------------------------------------

def load_xgboost(payload: bytes, classes: Sequence[Any] | None) -> NativeClassifier:
    xgb = _library("xgboost")
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(payload))
        learner = json.loads(booster.save_config())["learner"]
    except Exception as err:
        raise NativeFormatError(f"is not an XGBoost model: {str(err)[:200]}") from None
    objective = learner["objective"]["name"]
    if objective not in ("binary:logistic", "binary:logitraw", "multi:softprob",
                         "multi:softmax"):
        raise NativeFormatError(f"has XGBoost objective '{objective}', not a classifier's "
                                "(binary:logistic, binary:logitraw, multi:softprob, "
                                "multi:softmax)")
    binary = objective.startswith("binary:")
    n_classes = 2 if binary else int(learner["learner_model_param"]["num_class"])
    labels = _labels(classes, n_classes)
    margin_only = objective in ("binary:logitraw", "multi:softmax")

    booster.set_param({"nthread": 1})

    def proba(X: Any) -> np.ndarray:
        out = np.asarray(booster.inplace_predict(
            _plain_numbers(X), predict_type="margin" if margin_only else "value"), dtype=float)
        if binary:
            return _two_columns(1.0 / (1.0 + np.exp(-out)) if margin_only else out)
        return _softmax(out) if margin_only else out

    names = _named(booster.feature_names, lambda i, n: n == f"f{i}")
    return NativeClassifier(proba, labels, booster.num_features(), names, "xgboost")


def _plain_numbers(X: Any) -> Any:
    """A frame of numbers as an array: XGBoost converts a one-row frame ~20 times slower than
    it predicts it. Columns are already in the booster's order; a frame with categories stays
    a frame (XGBoost reads them from it)."""
    import pandas as pd

    if isinstance(X, pd.DataFrame) and all(pd.api.types.is_numeric_dtype(t) for t in X.dtypes):
        return X.to_numpy(dtype=float, na_value=np.nan)
    return X


# --- CatBoost --------------------------------------------------------------------------------

def load_catboost(payload: bytes, classes: Sequence[Any] | None) -> Any:
    cb = _library("catboost")
    model = cb.CatBoostClassifier()
    try:
        model.load_model(blob=payload)
    except Exception as err:
        raise NativeFormatError(f"is not a CatBoost model: {str(err)[:200]}") from None
    return model


#: Which library parses each native file, by its suffix.
NATIVE_LOADERS: dict[str, Callable[[bytes, Sequence[Any] | None], Any]] = {
    ".txt": load_lightgbm, ".ubj": load_xgboost, ".json": load_xgboost, ".cbm": load_catboost}
