"""Native booster files (LightGBM ``model.txt``, XGBoost ``model.ubj``/``model.json``, CatBoost
``model.cbm``), each built by its own library's parser from verified bytes, never unpickled.

A file is loaded for what its scope needs: ``predict_proba`` (a classifier) or ``predict`` (a
regressor). The booster's own objective says which it is, and a file of the other kind is
refused with its objective named. LightGBM and XGBoost classifiers predict for class indexes
0..K-1 and keep no labels: meta.json's ``classes`` names each output column, else the labels
are those indexes. CatBoost files keep their own labels. A regressor answers one value per row
(the library's own ``predict``) and has no class probabilities. The libraries are imported
only when such a file is loaded; LightGBM and CatBoost are optional (requirements-formats.txt).

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
    """A native file that cannot serve as the model asked for; the message is the reason."""


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


class NativeBooster:
    """What every loaded booster shows: ``n_features_in_``, ``library`` and, when the booster
    names its features, ``feature_names_in_`` (the holdout's spelling of them)."""

    def __init__(self, n_features: int, feature_names: list[str] | None, library: str) -> None:
        self.n_features_in_ = n_features
        self.feature_names_in_ = feature_names
        self.library = library


class NativeClassifier(NativeBooster):
    """A classifier booster behind the face the project measures and serves:
    ``predict_proba`` and ``classes_``."""

    def __init__(self, proba: Callable[[Any], np.ndarray], classes: Sequence[Any],
                 n_features: int, feature_names: list[str] | None, library: str) -> None:
        super().__init__(n_features, feature_names, library)
        self._proba = proba
        self.classes_ = np.asarray(list(classes), dtype=object)

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self._proba(X)

    def __repr__(self) -> str:
        return f"NativeClassifier({self.library}, classes={self.classes_.tolist()})"


class NativeRegressor(NativeBooster):
    """A regression booster: ``predict`` gives one value per row (the library's own
    prediction, on the target's scale). It has no ``classes_`` and no ``predict_proba``:
    asking for class probabilities is an error that says so."""

    def __init__(self, values: Callable[[Any], np.ndarray], n_features: int,
                 feature_names: list[str] | None, library: str, objective: str) -> None:
        super().__init__(n_features, feature_names, library)
        self._values = values
        self.objective = objective

    def predict(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return np.asarray(self._values(X), dtype=float).reshape(-1)

    @property
    def predict_proba(self) -> Any:
        # A property raising AttributeError: hasattr() is False, so loaders asking for
        # predict_proba refuse it, and a direct call gets this message instead of a bare one.
        raise AttributeError(f"a {self.library} regressor (objective {self.objective}) "
                             "predicts values, not class probabilities: call predict")

    def __repr__(self) -> str:
        return f"NativeRegressor({self.library}, objective={self.objective})"


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

#: Each library's objectives by kind, as its files name them.
_LIGHTGBM_OBJECTIVES = {
    "predict_proba": ("binary", "cross_entropy", "multiclass", "multiclassova"),
    "predict": ("regression", "regression_l1", "huber", "fair", "poisson", "quantile", "mape",
                "gamma", "tweedie")}
_XGBOOST_OBJECTIVES = {
    "predict_proba": ("binary:logistic", "binary:logitraw", "multi:softprob", "multi:softmax"),
    "predict": ("reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror",
                "reg:absoluteerror", "reg:logistic", "reg:gamma", "reg:tweedie",
                "count:poisson")}
_CATBOOST_LOSSES = {
    "predict_proba": ("Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll"),
    "predict": ("RMSE", "MAE", "Quantile", "Expectile", "Huber", "Lq", "MAPE", "Poisson",
                "Tweedie", "LogLinQuantile")}
_KIND = {"predict_proba": "a classifier's", "predict": "a regressor's"}
_WHAT = {"predict_proba": "a classifier (predict_proba, no predict for values)",
         "predict": "a regressor (predict, no predict_proba)"}


def _check_objective(library: str, objective: str, known: dict[str, tuple[str, ...]],
                     needs: str, classes: Sequence[Any] | None = None) -> None:
    """Refuse a booster whose objective is not of the kind ``needs`` asks for, naming it, and
    labels in meta.json for a regressor (it has no classes to name)."""
    if objective not in known[needs]:
        other = "predict" if needs == "predict_proba" else "predict_proba"
        what = f": it is {_WHAT[other]}" if objective in known[other] else ""
        raise NativeFormatError(f"has {library} objective '{objective or 'none'}', not "
                                f"{_KIND[needs]} ({', '.join(known[needs])}){what}")
    if needs == "predict" and classes is not None:
        raise NativeFormatError(f"is a regressor ({library} objective '{objective}'), so "
                                "meta.json field 'classes' does not apply. Hint: remove it")


def load_lightgbm(payload: bytes, classes: Sequence[Any] | None,
                  needs: str = "predict_proba") -> NativeBooster:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise NativeFormatError("is not a LightGBM text model (not UTF-8 text)") from None
    header = dict(line.split("=", 1) for line in text.split("\nTree=", 1)[0].splitlines()
                  if "=" in line)
    objective = header.get("objective", "").split(" ")[0]
    _check_objective("LightGBM", objective, _LIGHTGBM_OBJECTIVES, needs, classes)
    lgb = _library("lightgbm")
    try:
        booster = lgb.Booster(model_str=text)
    except Exception as err:
        raise NativeFormatError(f"is not a LightGBM model: {str(err)[:200]}") from None
    names = _named(booster.feature_name(), lambda i, n: n == f"Column_{i}")
    if needs == "predict":
        return NativeRegressor(lambda X: booster.predict(X, num_threads=1),
                               booster.num_feature(), names, "lightgbm", objective)
    n_classes = int(header.get("num_class", "1"))
    binary = objective in ("binary", "cross_entropy")
    labels = _labels(classes, 2 if binary else n_classes)

    def proba(X: Any) -> np.ndarray:
        out = np.asarray(booster.predict(X, num_threads=1), dtype=float)
        if binary:
            return _two_columns(out)
        return out / out.sum(axis=1, keepdims=True) if objective == "multiclassova" else out

    return NativeClassifier(proba, labels, booster.num_feature(), names, "lightgbm")


def lightgbm_columns(expected: list[str], available: Sequence[str]) -> list[str]:
    """LightGBM stores feature names with whitespace turned into ``_``: map them back."""
    spelled = {re.sub(r"\s", "_", str(c)): str(c) for c in available}
    return [c if c in set(available) else spelled.get(c, c) for c in expected]


# --- XGBoost ---------------------------------------------------------------------------------

def load_xgboost(payload: bytes, classes: Sequence[Any] | None,
                 needs: str = "predict_proba") -> NativeBooster:
    xgb = _library("xgboost")
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(payload))
        learner = json.loads(booster.save_config())["learner"]
    except Exception as err:
        raise NativeFormatError(f"is not an XGBoost model: {str(err)[:200]}") from None
    objective = learner["objective"]["name"]
    _check_objective("XGBoost", objective, _XGBOOST_OBJECTIVES, needs, classes)
    booster.set_param({"nthread": 1})
    names = _named(booster.feature_names, lambda i, n: n == f"f{i}")
    if needs == "predict":
        return NativeRegressor(
            lambda X: booster.inplace_predict(_plain_numbers(X), predict_type="value"),
            booster.num_features(), names, "xgboost", objective)
    binary = objective.startswith("binary:")
    n_classes = 2 if binary else int(learner["learner_model_param"]["num_class"])
    labels = _labels(classes, n_classes)
    margin_only = objective in ("binary:logitraw", "multi:softmax")

    def proba(X: Any) -> np.ndarray:
        out = np.asarray(booster.inplace_predict(
            _plain_numbers(X), predict_type="margin" if margin_only else "value"), dtype=float)
        if binary:
            return _two_columns(1.0 / (1.0 + np.exp(-out)) if margin_only else out)
        return _softmax(out) if margin_only else out

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

def load_catboost(payload: bytes, classes: Sequence[Any] | None,
                  needs: str = "predict_proba") -> Any:
    """A CatBoost classifier as the library's own object (it keeps its labels), or a
    regressor behind ``NativeRegressor`` (CatBoost's regressor lists an empty ``classes_``,
    which would make it look like a classifier)."""
    cb = _library("catboost")
    probe = cb.CatBoost()
    try:
        probe.load_model(blob=payload)
        loss = str(probe.get_all_params().get("loss_function", "")).split(":")[0]
    except Exception as err:
        raise NativeFormatError(f"is not a CatBoost model: {str(err)[:200]}") from None
    _check_objective("CatBoost", loss, _CATBOOST_LOSSES, needs)
    if needs == "predict":
        model = cb.CatBoostRegressor()
        model.load_model(blob=payload)
        names = [str(n) for n in (model.feature_names_ or [])]
        placeholder = names == [str(i) for i in range(len(names))]
        return NativeRegressor(model.predict, len(names), None if placeholder else names,
                               "catboost", loss)
    model = cb.CatBoostClassifier()
    model.load_model(blob=payload)
    return model


#: Which library parses each native file, by its suffix: (bytes, meta.json classes, the method
#: the model must have) -> the model.
NATIVE_LOADERS: dict[str, Callable[[bytes, Sequence[Any] | None, str], Any]] = {
    ".txt": load_lightgbm, ".ubj": load_xgboost, ".json": load_xgboost, ".cbm": load_catboost}
