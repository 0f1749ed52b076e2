"""Deterministic demo model zoo: four scopes of trained classifiers and one of regressors
(``1H``, see ``_hourly``), plus their holdout sets.

Layout written under ``<models_dir>/<scope>/``::

    scope.json                 task, target, holdout file name, description
    holdout.csv                feature columns + target column
    <model_name>/model.joblib  fitted estimator (stock scikit-learn / xgboost objects only)
    <model_name>/meta.json     what the model is and how it was trained (never how well it does)
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    VotingClassifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits
from xgboost import XGBClassifier

from ._hourly import HOURLY_MODELS, HOURLY_SCOPE, hourly_estimator, hourly_frames
from ._loans import (
    LOAN_MODELS,
    LOANS_SCOPE,
    OTHER_FORMAT_MODELS,
    PREPROCESSOR_FILE,
    loan_frames,
    loan_preprocessor,
)

# digits first: the app builds and ranks it before its first page. 1H next, so the first
# scope to join it behind that page is a regression one.
DEMO_SCOPES: tuple[str, ...] = (
    "digits", HOURLY_SCOPE, "credit_default", "lotto_6_49", LOANS_SCOPE)

# Integer-coded categorical columns of the credit_default scope (one-hot encoded for the
# scaled models, native categoricals for hist gradient boosting, plain integers for trees).
CREDIT_CATEGORICAL: tuple[str, ...] = (
    "merchant_category",  # 0..11
    "device_type",  # 0..3
    "region",  # 0..7
    "payment_method",  # 0..4
    "email_domain_risk",  # 0..2
    "signup_channel",  # 0..5
    "customer_segment",  # 0..3
    "day_of_week",  # 0..6
    "shipping_speed",  # 0..2
)

_HOLDOUT_FILE = "holdout.csv"
_SCOPE_FILE = "scope.json"
_MODEL_FILE = "model.joblib"
_META_FILE = "meta.json"
_N_JOBS = 2  # the demo must stay polite on small (2-core) machines

_CREDIT_SEED = 20240601
_CREDIT_ROWS = 24_000
_CREDIT_POSITIVE_RATE = 0.05
_LOTTO_SEED = 649
_LOTTO_DRAWS = 4_000
_LOTTO_HISTORY = 10  # draws summarised by the last10_* features


# --------------------------------------------------------------------------------------
# Model line-up
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ModelSlot:
    """One model folder of every scope: its name, base configuration, group and seed."""

    name: str
    config: str
    group: str
    seed: int


_LINEUP: tuple[_ModelSlot, ...] = (
    _ModelSlot("xgboost", "xgboost", "tree", 0),
    _ModelSlot("random_forest", "random_forest", "tree", 0),
    _ModelSlot("extra_trees", "extra_trees", "tree", 0),
    _ModelSlot("hist_gradient_boosting", "hist_gradient_boosting", "tree", 0),
    _ModelSlot("mlp_small", "mlp_small", "neural", 0),
    _ModelSlot("mlp_medium", "mlp_medium", "neural", 0),
    _ModelSlot("mlp_large", "mlp_large", "neural", 0),
    _ModelSlot("mlp_medium_seed_1", "mlp_medium", "variant", 1),
    _ModelSlot("mlp_medium_seed_2", "mlp_medium", "variant", 2),
    _ModelSlot("xgboost_seed_1", "xgboost", "variant", 1),
    _ModelSlot("xgboost_seed_2", "xgboost", "variant", 2),
    _ModelSlot("logistic_regression", "logistic_regression", "linear", 0),
)
#: How many models each demo scope holds.
MODELS_PER_SCOPE = len(_LINEUP)

_MODEL_TYPES: dict[str, str] = {
    "xgboost": "xgboost",
    "random_forest": "random_forest",
    "extra_trees": "extra_trees",
    "hist_gradient_boosting": "hist_gradient_boosting",
    "mlp_small": "mlp",
    "mlp_medium": "mlp",
    "mlp_large": "mlp",
    "logistic_regression": "logistic_regression",
}

_MLP_COMMON: dict[str, Any] = {
    "alpha": 1e-3,
    "learning_rate_init": 1e-3,
    "early_stopping": True,
    "validation_fraction": 0.1,
    "n_iter_no_change": 20,
    "max_iter": 300,
}

# Hyperparameters shared by all scopes; _SCOPE_PARAMS overrides them per scope so that
# the whole zoo trains in about a minute on two cores and every model.joblib stays small.
_BASE_PARAMS: dict[str, dict[str, Any]] = {
    "xgboost": {
        "n_estimators": 200,
        "max_depth": 4,
        "learning_rate": 0.1,
        # Sub-sampling < 1 is what makes the seed variants differ from the base model.
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "tree_method": "hist",
    },
    "random_forest": {"n_estimators": 150, "max_features": "sqrt", "min_samples_leaf": 2},
    "extra_trees": {"n_estimators": 150, "max_features": "sqrt", "min_samples_leaf": 2},
    "hist_gradient_boosting": {
        "max_iter": 200,
        "learning_rate": 0.1,
        "max_leaf_nodes": 15,
        "early_stopping": True,
        "validation_fraction": 0.1,
        "n_iter_no_change": 10,
    },
    "mlp_small": {"hidden_layer_sizes": [32], **_MLP_COMMON},
    "mlp_medium": {"hidden_layer_sizes": [64, 32], **_MLP_COMMON},
    "mlp_large": {"hidden_layer_sizes": [128, 64], **_MLP_COMMON},
    "logistic_regression": {"C": 1.0, "max_iter": 5000},
}

_SCOPE_PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "digits": {
        # Fully grown extra trees on 64 pixels are large: fewer trees keep the file < 10 MB.
        "extra_trees": {"n_estimators": 100},
        "logistic_regression": {"C": 0.1},
    },
    "credit_default": {
        "xgboost": {
            "n_estimators": 300,
            "max_depth": 3,
            "learning_rate": 0.05,
            "min_child_weight": 10,
        },
        # Depth/leaf limits keep the forests to a few MB on 16,800 training rows.
        "random_forest": {"n_estimators": 150, "min_samples_leaf": 20, "max_depth": 14},
        "extra_trees": {"n_estimators": 150, "min_samples_leaf": 20, "max_depth": 14},
        "hist_gradient_boosting": {
            "learning_rate": 0.05,
            "max_iter": 300,
            "categorical_features": list(CREDIT_CATEGORICAL),
        },
        "logistic_regression": {"C": 0.5},
    },
    "lotto_6_49": {
        # 49 classes: every boosting round grows 49 trees and every leaf stores 49 values.
        "xgboost": {"n_estimators": 50, "max_depth": 3},
        "random_forest": {"n_estimators": 100, "min_samples_leaf": 20, "max_depth": 10},
        "extra_trees": {"n_estimators": 100, "min_samples_leaf": 20, "max_depth": 10},
        "hist_gradient_boosting": {"max_iter": 50, "learning_rate": 0.05},
        "logistic_regression": {"C": 0.1},
    },
}

_DESCRIPTIONS: dict[str, str] = {
    "xgboost": "XGBoost histogram boosting: {n_estimators} rounds of depth-{max_depth} trees, "
    "learning rate {learning_rate}, row/column subsampling {subsample}/{colsample_bytree}.",
    "random_forest": "Random forest of {n_estimators} trees (min_samples_leaf {min_samples_leaf}).",
    "extra_trees": "Extremely randomized trees, {n_estimators} trees (min_samples_leaf "
    "{min_samples_leaf}).",
    "hist_gradient_boosting": "scikit-learn histogram gradient boosting, up to {max_iter} "
    "iterations with early stopping, learning rate {learning_rate}.",
    "mlp": "Multi-layer perceptron with hidden layers {hidden_layer_sizes} on standardized "
    "inputs, early stopping on a 10% validation split.",
    "logistic_regression": "L2-regularized logistic regression (C={C}) on standardized inputs.",
}


# --------------------------------------------------------------------------------------
# Scope data
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ScopeData:
    """Train and holdout frames of one scope plus the content of its scope.json."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    info: dict[str, Any]
    categorical: tuple[str, ...] = field(default=())

    @property
    def target(self) -> str:
        """Name of the target column."""
        return str(self.info["target"])

    @property
    def features(self) -> list[str]:
        """Feature columns, in holdout order."""
        return [c for c in self.holdout.columns if c != self.target]


def _digits_data() -> _ScopeData:
    """Handwritten 8x8 digits (bundled with scikit-learn), stratified 70/30 split."""
    bunch = load_digits()
    frame = pd.DataFrame(
        bunch.data.astype(np.int64), columns=[f"pixel_{i}" for i in range(bunch.data.shape[1])]
    )
    frame["digit"] = bunch.target.astype(np.int64)
    train, holdout = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["digit"])
    info = {
        "task": "multiclass",
        "target": "digit",
        "holdout": _HOLDOUT_FILE,
        "description": "Handwritten digits 0-9 as 8x8 grey-level images (scikit-learn's "
        "bundled UCI digits); 64 pixel intensities 0-16 per image. Stratified 70/30 split.",
    }
    return _ScopeData(train.reset_index(drop=True), holdout.reset_index(drop=True), info)


def _credit_features(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Synthetic buy-now-pay-later applicant and order features (36 columns)."""
    age = np.clip(np.round(rng.normal(38, 12, n)), 18, 80).astype(np.int64)
    income = np.round(rng.lognormal(np.log(42_000), 0.55, n) * (1 + 0.01 * (age - 38)), 0)
    income = np.maximum(income, 6_000.0)
    prior_defaults = rng.poisson(0.12, n)
    prior_late = rng.poisson(0.5 + 0.8 * prior_defaults)
    income_z = (np.log(income) - np.log(42_000)) / 0.55
    credit_score = np.clip(
        np.round(650 + 35 * income_z - 45 * prior_defaults + rng.normal(0, 70, n)), 300, 850
    ).astype(np.int64)
    account_age = np.round(rng.gamma(1.5, 300, n)).astype(np.int64)
    order_amount = np.round(rng.lognormal(np.log(120), 0.8, n), 2)
    orders_365 = rng.poisson(rng.gamma(2.0, 3.0, n))
    utilization = np.round(rng.beta(2, 5, n), 4)
    balance = np.round(utilization * rng.lognormal(np.log(3_000), 0.5, n), 2)
    session_minutes = np.round(rng.lognormal(np.log(6), 0.7, n), 2)
    # More orders at daytime/evening than at night.
    hour_weights = np.array(
        [1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 7, 7, 6, 6, 6, 7, 8, 9, 9, 8, 5, 2]
    )
    columns: dict[str, np.ndarray] = {
        "age": age,
        "annual_income": income,
        "credit_score": credit_score,
        "account_age_days": account_age,
        "email_age_days": account_age + np.round(rng.gamma(2.0, 400, n)).astype(np.int64),
        "order_amount": order_amount,
        "installments": rng.choice([3, 4, 6, 12], n, p=[0.4, 0.35, 0.15, 0.1]),
        "cart_items": 1 + rng.poisson(1.5, n),
        "num_orders_90d": rng.binomial(orders_365, 0.3),
        "num_orders_365d": orders_365,
        "avg_order_amount_365d": np.where(
            orders_365 > 0, np.round(order_amount * rng.lognormal(0, 0.3, n), 2), 0.0
        ),
        "days_since_last_order": np.round(rng.gamma(1.2, 40, n)).astype(np.int64),
        "open_bnpl_plans": rng.poisson(0.8, n),
        "outstanding_balance": balance,
        "credit_utilization": utilization,
        "debt_to_income": np.round(balance / income, 5),
        "prior_defaults": prior_defaults,
        "prior_late_payments": prior_late,
        "failed_payment_attempts_30d": rng.poisson(0.15 + 0.25 * prior_late),
        "returns_365d": rng.binomial(orders_365, 0.1),
        "address_change_90d": (rng.random(n) < 0.08).astype(np.int64),
        "phone_verified": (rng.random(n) < 0.85).astype(np.int64),
        "session_minutes": session_minutes,
        "hour_of_day": rng.choice(24, n, p=hour_weights / hour_weights.sum()),
        "pages_viewed": 1 + rng.poisson(1.5 * session_minutes),
        "discount_pct": rng.choice([0, 5, 10, 15, 20], n, p=[0.6, 0.15, 0.12, 0.08, 0.05]),
        "order_to_income_ratio": np.round(order_amount / income, 6),
        "merchant_category": rng.choice(12, n, p=_normalized(12, 11, 9, 8, 8, 7, 7, 6, 6, 5, 5, 3)),
        "device_type": rng.choice(4, n, p=[0.55, 0.3, 0.1, 0.05]),
        "region": rng.integers(0, 8, n),
        "payment_method": rng.choice(5, n, p=[0.5, 0.25, 0.1, 0.1, 0.05]),
        "email_domain_risk": rng.choice(3, n, p=[0.8, 0.15, 0.05]),
        "signup_channel": rng.integers(0, 6, n),
        "customer_segment": rng.choice(4, n, p=[0.4, 0.3, 0.2, 0.1]),
        "day_of_week": rng.integers(0, 7, n),
        "shipping_speed": rng.choice(3, n, p=[0.7, 0.2, 0.1]),
    }
    return pd.DataFrame({name: np.asarray(values) for name, values in columns.items()})


def _normalized(*weights: float) -> np.ndarray:
    """Weights scaled to a probability vector."""
    array = np.asarray(weights, dtype=float)
    return array / array.sum()


def _credit_default_logit(df: pd.DataFrame) -> np.ndarray:
    """Default log-odds (without intercept) from a handful of features.

    Thresholds and interactions are deliberate: they give tree models a small edge over the
    linear baseline. Columns not used here (region, device_type, session_minutes, ...) are
    pure noise or only correlated with the signal.
    """
    merchant_risk = np.array([0, 0.12, 0, 0.38, 0.25, 0, 0.75, 0, 0.12, 1.1, 0.5, 0])
    payment_risk = np.array([0, 0.25, 0.12, 0.9, 0.38])
    domain_risk = np.array([0, 0.6, 1.4])
    young_long_plan = (df["age"] < 25) & (df["installments"] >= 6)
    unverified_mover = (df["address_change_90d"] == 1) & (df["phone_verified"] == 0)
    new_account_big_order = (df["account_age_days"] < 90) & (df["order_to_income_ratio"] > 0.005)
    return (
        1.0 * np.minimum(df["prior_defaults"], 3)
        + 0.4 * np.minimum(df["prior_late_payments"], 5)
        + 0.6 * np.minimum(df["failed_payment_attempts_30d"], 4)
        + 1.5 * (df["credit_utilization"] > 0.55)
        + 1.25 * np.maximum((600 - df["credit_score"]) / 60, 0)
        + 1.5 * new_account_big_order
        + 1.25 * young_long_plan
        + 1.6 * unverified_mover
        + 1.25 * df["hour_of_day"].between(1, 5)
        + 0.2 * np.minimum(df["open_bnpl_plans"], 4)
        + merchant_risk[df["merchant_category"]]
        + payment_risk[df["payment_method"]]
        + domain_risk[df["email_domain_risk"]]
    ).to_numpy(dtype=float)


def _intercept_for_rate(logit: np.ndarray, rate: float) -> float:
    """Intercept that makes the mean default probability equal to ``rate``."""
    low, high = -30.0, 30.0
    for _ in range(100):  # bisection: mean sigmoid is monotone in the intercept
        mid = (low + high) / 2
        if np.mean(1 / (1 + np.exp(-(logit + mid)))) < rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _credit_data() -> _ScopeData:
    """Synthetic BNPL default data (~5% positives), stratified 70/30 split."""
    rng = np.random.default_rng(_CREDIT_SEED)
    frame = _credit_features(rng, _CREDIT_ROWS)
    logit = _credit_default_logit(frame)
    probability = 1 / (1 + np.exp(-(logit + _intercept_for_rate(logit, _CREDIT_POSITIVE_RATE))))
    frame["default"] = (rng.random(len(frame)) < probability).astype(np.int64)
    train, holdout = train_test_split(
        frame, test_size=0.3, random_state=0, stratify=frame["default"]
    )
    info = {
        "task": "binary",
        "target": "default",
        "holdout": _HOLDOUT_FILE,
        "description": "Synthetic buy-now-pay-later orders: will the customer default "
        "(1) or repay (0)? About 5% defaults; 36 features (numeric and integer-coded "
        f"categorical: {', '.join(CREDIT_CATEGORICAL)}). Stratified 70/30 split.",
    }
    return _ScopeData(
        train.reset_index(drop=True), holdout.reset_index(drop=True), info, CREDIT_CATEGORICAL
    )


def _lotto_draws(rng: np.random.Generator, n_draws: int) -> np.ndarray:
    """Fair 6/49 draws, balls in draw order, shape (n_draws, 6)."""
    return np.stack([rng.choice(49, 6, replace=False) + 1 for _ in range(n_draws)])


def _lotto_frame(draws: np.ndarray) -> pd.DataFrame:
    """One row per draw that has a full history: lagged draws, summaries, next first ball."""
    rows = np.arange(_LOTTO_HISTORY, len(draws))
    columns: dict[str, np.ndarray] = {}
    for lag in (1, 2, 3):
        for ball in range(6):
            columns[f"d{lag}_b{ball + 1}"] = draws[rows - lag, ball]
    windows = np.stack([draws[i - _LOTTO_HISTORY : i] for i in rows])
    columns["last10_mean_ball"] = np.round(windows.mean(axis=(1, 2)), 3)
    columns["last10_odd_count"] = (windows % 2 == 1).sum(axis=(1, 2))
    columns["last10_high_count"] = (windows >= 25).sum(axis=(1, 2))
    columns["next_first_ball"] = draws[rows, 0]
    return pd.DataFrame(columns)


def _lotto_data() -> _ScopeData:
    """Synthetic fair 6/49 lottery history, split by time (first 75% train)."""
    frame = _lotto_frame(_lotto_draws(np.random.default_rng(_LOTTO_SEED), _LOTTO_DRAWS))
    cut = int(len(frame) * 0.75)
    info = {
        "task": "multiclass",
        "target": "next_first_ball",
        "holdout": _HOLDOUT_FILE,
        "classes": list(range(1, 50)),
        "description": f"Synthetic draws of a fair 6/49 lottery ({_LOTTO_DRAWS} draws). "
        "Predict the first ball of the next draw from the previous three draws and "
        "last-10-draw summaries. The draws are independent, so no model can beat chance "
        "(1/49); split by time, last 25% held out.",
    }
    return _ScopeData(
        frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True), info
    )


_SCOPE_LOADERS: dict[str, Callable[[], _ScopeData]] = {
    "digits": _digits_data,
    "credit_default": _credit_data,
    "lotto_6_49": _lotto_data,
}


# --------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------


def _model_params(scope: str, config: str) -> dict[str, Any]:
    """Hyperparameters of ``config`` in ``scope`` (JSON-serializable, no seed)."""
    return {**_BASE_PARAMS[config], **_SCOPE_PARAMS.get(scope, {}).get(config, {})}


def _preprocessor(data: _ScopeData) -> BaseEstimator:
    """Standardize numeric columns; one-hot encode the integer-coded categorical ones."""
    if not data.categorical:
        return StandardScaler()
    numeric = [c for c in data.features if c not in data.categorical]
    return ColumnTransformer(
        [
            ("numeric", StandardScaler(), numeric),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(data.categorical),
            ),
        ]
    )


def _labels_are_zero_based(y: pd.Series) -> bool:
    """Whether the labels are exactly 0..K-1, as XGBClassifier requires."""
    labels = np.unique(y.to_numpy())
    return bool(np.array_equal(labels, np.arange(len(labels))))


def _xgboost(params: dict[str, Any], seed: int, data: _ScopeData) -> BaseEstimator:
    """XGBClassifier whose ``classes_`` are the scope's true labels.

    XGBClassifier only accepts labels 0..K-1 and its ``classes_`` is always
    ``arange(n_classes_)``. For other labels (lotto balls 1..49) it is wrapped in a
    single-member soft VotingClassifier: that label-encodes y before fitting, exposes the
    original labels as ``classes_`` and returns XGBoost's probabilities unchanged.
    """
    booster = XGBClassifier(random_state=seed, n_jobs=_N_JOBS, **params)
    if _labels_are_zero_based(data.train[data.target]):
        return booster
    return VotingClassifier([("xgboost", booster)], voting="soft")


def _make_estimator(scope: str, slot: _ModelSlot, data: _ScopeData) -> BaseEstimator:
    """Unfitted estimator for one model slot of a scope."""
    params = _model_params(scope, slot.config)
    model_type = _MODEL_TYPES[slot.config]
    if model_type == "xgboost":
        return _xgboost(params, slot.seed, data)
    if model_type == "random_forest":
        return RandomForestClassifier(random_state=slot.seed, n_jobs=_N_JOBS, **params)
    if model_type == "extra_trees":
        return ExtraTreesClassifier(random_state=slot.seed, n_jobs=_N_JOBS, **params)
    if model_type == "hist_gradient_boosting":
        return HistGradientBoostingClassifier(random_state=slot.seed, **params)
    if model_type == "mlp":
        mlp_params = {**params, "hidden_layer_sizes": tuple(params["hidden_layer_sizes"])}
        classifier: BaseEstimator = MLPClassifier(random_state=slot.seed, **mlp_params)
    elif model_type == "logistic_regression":
        classifier = LogisticRegression(random_state=slot.seed, **params)
    else:
        raise ValueError(f"unknown model type {model_type!r}")
    return Pipeline([("preprocess", _preprocessor(data)), ("classifier", classifier)])


def _describe(scope: str, slot: _ModelSlot, data: _ScopeData) -> str:
    """Human-readable description of a model slot (configuration only, no metrics)."""
    params = _model_params(scope, slot.config)
    model_type = _MODEL_TYPES[slot.config]
    text = _DESCRIPTIONS[model_type].format(**params)
    if model_type == "xgboost" and not _labels_are_zero_based(data.train[data.target]):
        text += " Wrapped in a one-member soft VotingClassifier so classes_ are the true labels."
    if data.categorical and model_type in ("mlp", "logistic_regression"):
        text += " Categorical codes are one-hot encoded."
    if slot.group == "variant":
        text += f" Same architecture as {slot.config}, seed {slot.seed}."
    return text


def _fit(estimator: BaseEstimator, data: _ScopeData, one_thread: str | None = "blas"
         ) -> list[str]:
    """Fit on the training frame; return the messages of any convergence warnings.

    ``one_thread`` is the thread pool kept to one thread (threadpoolctl's ``user_api``; None
    for all, OpenMP too).
    """
    # One BLAS thread: the MLPs' small matrix products gain nothing from two, and two
    # OpenBLAS threads on a busy 2-core machine sometimes spin-wait for 10x longer fits.
    # Tree models parallelize with joblib/OpenMP and are not affected (unless one_thread
    # is None).
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(1, user_api=one_thread):
        # Only convergence warnings are recorded (and reported); all others pass through.
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(data.train[data.features], data.train[data.target])
    messages: list[str] = []
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            messages.append(str(warning.message).splitlines()[0])
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return messages


# --------------------------------------------------------------------------------------
# Atomic file output
# --------------------------------------------------------------------------------------


def _temp_sibling(path: Path, kind: str = "tmp") -> Path:
    """Hidden name next to ``path`` that is unique to this process."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def _write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace``."""
    temp = _temp_sibling(path)
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    _write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def _write_csv_atomic(path: Path, frame: pd.DataFrame) -> None:
    """Write ``frame`` as CSV without index, atomically."""
    temp = _temp_sibling(path)
    frame.to_csv(temp, index=False)
    os.replace(temp, path)


def _remove(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _publish_folder(temp: Path, final: Path) -> None:
    """Move a finished temp folder to ``final``, replacing any previous version."""
    if final.exists():
        # A non-empty folder cannot be os.replace'd; park the old one, then swap.
        old = _temp_sibling(final, "old")
        _remove(old)
        os.replace(final, old)
        os.replace(temp, final)
        _remove(old)
    else:
        os.replace(temp, final)


def _remove_stale_temps(scope_dir: Path) -> None:
    """Delete temp files/folders left behind by killed builds (their process is gone)."""
    for entry in scope_dir.glob(".*.*-*"):
        kind, _, pid = entry.name.rpartition(".")[2].partition("-")
        if kind in ("tmp", "old") and pid.isdigit() and not _process_alive(int(pid)):
            _remove(entry)


def _process_alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


# --------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------


def _model_complete(model_dir: Path, model_file: str = _MODEL_FILE) -> bool:
    """Whether a model folder has both its artifact and its metadata."""
    return (model_dir / model_file).is_file() and (model_dir / _META_FILE).is_file()


def _missing_models(scope_dir: Path) -> list[_ModelSlot]:
    """Model slots of the line-up without a complete folder in ``scope_dir``."""
    return [slot for slot in _LINEUP if not _model_complete(scope_dir / slot.name)]


def _scope_files_present(scope_dir: Path) -> bool:
    """Whether scope.json and holdout.csv both exist."""
    return (scope_dir / _SCOPE_FILE).is_file() and (scope_dir / _HOLDOUT_FILE).is_file()


def _build_model(scope: str, slot: _ModelSlot, data: _ScopeData, scope_dir: Path) -> list[str]:
    """Train one model and publish its folder atomically; return convergence notes."""
    estimator = _make_estimator(scope, slot, data)
    started = time.perf_counter()
    notes = _fit(estimator, data)
    seconds = time.perf_counter() - started
    meta = {
        "model_type": _MODEL_TYPES[slot.config],
        "group": slot.group,
        "description": _describe(scope, slot, data),
        "seed": slot.seed,
        "params": _model_params(scope, slot.config),
        "training": {
            "rows": len(data.train),
            "seconds": round(seconds, 2),
            "features": len(data.features),
        },
    }
    _publish_model(scope_dir / slot.name, estimator, meta)
    return notes


def _publish_model(final: Path, estimator: BaseEstimator, meta: dict[str, Any]) -> None:
    """Write model.joblib and meta.json into a temp folder, then publish it as ``final``: a
    build killed half-way never leaves a model folder without its metadata."""
    temp = _temp_sibling(final)
    _remove(temp)
    temp.mkdir()
    joblib.dump(estimator, temp / _MODEL_FILE)
    _write_json_atomic(temp / _META_FILE, meta)
    _publish_folder(temp, final)


def _build_scope(models_dir: Path, scope: str, force: bool, progress: Callable[[str], None]) -> int:
    """Build what is missing of one scope (everything if ``force``); return models built."""
    scope_dir = models_dir / scope
    scope_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(scope_dir)
    if not force and _scope_files_present(scope_dir) and not _missing_models(scope_dir):
        progress(f"{scope}: complete, skipped (use --force to rebuild)")
        return 0
    data = _SCOPE_LOADERS[scope]()
    todo = list(_LINEUP) if force else _missing_models(scope_dir)
    progress(
        f"{scope}: train {len(data.train)} x {len(data.features)}, "
        f"holdout {len(data.holdout)} x {len(data.features)}, target {data.target!r}; "
        f"building {len(todo)} of {len(_LINEUP)} models"
    )
    if force or not _scope_files_present(scope_dir):
        _write_csv_atomic(scope_dir / _HOLDOUT_FILE, data.holdout)
        _write_json_atomic(scope_dir / _SCOPE_FILE, data.info)
    for index, slot in enumerate(todo, start=1):
        started = time.perf_counter()
        notes = _build_model(scope, slot, data, scope_dir)
        elapsed = time.perf_counter() - started
        suffix = f" ({'; '.join(notes)})" if notes else ""
        progress(f"{scope} [{index}/{len(todo)}] {slot.name} trained in {elapsed:.1f}s{suffix}")
    return len(todo)


def _build_loans(models_dir: Path, force: bool, progress: Callable[[str], None]) -> int:
    """Build the loan_applications scope (see ``_loans``): its holdout, scope.json, shared
    preprocessor and models; what is complete is skipped unless ``force``."""
    scope_dir = models_dir / LOANS_SCOPE
    scope_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(scope_dir)
    todo = [m for m in LOAN_MODELS if force or not _model_complete(scope_dir / m.name)]
    others = [m for m in OTHER_FORMAT_MODELS
              if force or not _model_complete(scope_dir / m.name, m.model_file)]
    if (not todo and not others and _scope_files_present(scope_dir)
            and (scope_dir / PREPROCESSOR_FILE).is_file()):
        progress(f"{LOANS_SCOPE}: complete, skipped (use --force to rebuild)")
        return 0
    train, holdout, info = loan_frames()
    features = [c for c in holdout.columns if c != info["target"]]
    preprocessor = loan_preprocessor(train[features])
    progress(f"{LOANS_SCOPE}: train {len(train)} x {len(features)}, holdout {len(holdout)}, "
             f"shared preprocessor; building {len(todo)} of {len(LOAN_MODELS)} models")
    temp = _temp_sibling(scope_dir / PREPROCESSOR_FILE)
    joblib.dump(preprocessor, temp)
    os.replace(temp, scope_dir / PREPROCESSOR_FILE)
    _write_csv_atomic(scope_dir / _HOLDOUT_FILE, holdout)
    _write_json_atomic(scope_dir / _SCOPE_FILE, info)
    X = preprocessor.transform(train[features])
    for model in todo:
        started = time.perf_counter()
        estimator = model.make()
        with threadpool_limits(1), warnings.catch_warnings():  # no OpenMP spin-waits
            warnings.simplefilter("ignore", ConvergenceWarning)
            estimator.fit(X, train[info["target"]])
        seconds = time.perf_counter() - started
        meta = {"model_type": model.model_type, "group": model.group,
                "description": model.description, "seed": 0,
                "training": {"rows": len(train), "seconds": round(seconds, 2),
                             "features": len(features), "preprocessor": PREPROCESSOR_FILE}}
        _publish_model(scope_dir / model.name, estimator, meta)
        progress(f"{LOANS_SCOPE} {model.name} trained in {seconds:.1f}s")
    for model in others:  # the same, kept in their own file formats (no pickle)
        started = time.perf_counter()
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            payload, extra = model.fit_bytes(X, train[info["target"]])
        seconds = time.perf_counter() - started
        meta = {"model_type": model.model_type, "group": model.group,
                "description": model.description, "seed": 0, "model_file": model.model_file,
                **extra, "training": {"rows": len(train), "seconds": round(seconds, 2),
                                      "features": len(features),
                                      "preprocessor": PREPROCESSOR_FILE}}
        temp = _temp_sibling(scope_dir / model.name)
        _remove(temp)
        temp.mkdir()
        (temp / model.model_file).write_bytes(payload)
        _write_json_atomic(temp / _META_FILE, meta)
        _publish_folder(temp, scope_dir / model.name)
        progress(f"{LOANS_SCOPE} {model.name} ({model.model_file}) trained in {seconds:.1f}s")
    return len(todo) + len(others)


def _build_hourly(models_dir: Path, force: bool, progress: Callable[[str], None]) -> int:
    """Build the 1H regression scope (see ``_hourly``): its holdout, scope.json and models;
    what is complete is skipped unless ``force``."""
    scope_dir = models_dir / HOURLY_SCOPE
    scope_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(scope_dir)
    todo = [m for m in HOURLY_MODELS if force or not _model_complete(scope_dir / m.name)]
    if not todo and _scope_files_present(scope_dir):
        progress(f"{HOURLY_SCOPE}: complete, skipped (use --force to rebuild)")
        return 0
    data = _ScopeData(*hourly_frames())  # the time index stays out of the holdout's columns
    progress(
        f"{HOURLY_SCOPE}: train {len(data.train)} x {len(data.features)}, "
        f"holdout {len(data.holdout)} x {len(data.features)}, target {data.target!r}; "
        f"building {len(todo)} of {len(HOURLY_MODELS)} models"
    )
    if force or not _scope_files_present(scope_dir):
        _write_csv_atomic(scope_dir / _HOLDOUT_FILE, data.holdout)
        _write_json_atomic(scope_dir / _SCOPE_FILE, data.info)
    for index, model in enumerate(todo, start=1):
        estimator = hourly_estimator(model, _N_JOBS)
        started = time.perf_counter()
        # Every fit takes under a second: two OpenMP threads on a busy 2-core machine would
        # spend longer spin-waiting than they save, so all pools get one thread.
        notes = _fit(estimator, data, one_thread=None)
        seconds = time.perf_counter() - started
        meta = {
            "model_type": model.model_type,
            "group": model.group,
            "description": model.description,
            "seed": model.seed,
            "params": model.params,
            "training": {
                "rows": len(data.train),
                "seconds": round(seconds, 2),
                "features": len(data.features),
            },
        }
        _publish_model(scope_dir / model.name, estimator, meta)
        suffix = f" ({'; '.join(notes)})" if notes else ""
        progress(f"{HOURLY_SCOPE} [{index}/{len(todo)}] {model.name} trained in "
                 f"{seconds:.1f}s{suffix}")
    return len(todo)


#: The scopes with a builder of their own; the others are built by ``_build_scope``.
_OWN_BUILDERS: dict[str, Callable[[Path, bool, Callable[[str], None]], int]] = {
    HOURLY_SCOPE: _build_hourly,
    LOANS_SCOPE: _build_loans,
}


def build_demo_zoo(
    models_dir: Path,
    *,
    force: bool = False,
    progress: Callable[[str], None] = print,
    scopes: Sequence[str] = DEMO_SCOPES,
) -> list[Path]:
    """Build the demo scopes under models_dir; return the scope folders built or found."""
    if isinstance(scopes, str):  # a lone scope name, not a sequence of characters
        scopes = (scopes,)
    unknown = [scope for scope in scopes if scope not in (*_SCOPE_LOADERS, *_OWN_BUILDERS)]
    if unknown:
        raise ValueError(f"unknown demo scope(s): {', '.join(unknown)}")
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    built = sum(_OWN_BUILDERS[scope](models_dir, force, progress) if scope in _OWN_BUILDERS
                else _build_scope(models_dir, scope, force, progress) for scope in scopes)
    progress(
        f"demo zoo: {len(scopes)} scope(s) in {models_dir}, {built} model(s) built, "
        f"total {time.perf_counter() - started:.1f}s"
    )
    return [models_dir / scope for scope in scopes]


def build_demo_monitoring(models_dir: Path, store: Any, *, scope: str = "digits",
                          requests: int = 3000, progress: Callable[[str], None] = print
                          ) -> None:
    """Give the Monitoring page live data: on ``scope``, the three best models promoted, the
    best made champion, the second a 10% canary, and ``requests`` replayed holdout rows with
    their outcomes, spread over eight days. Skipped when the scope already has a log."""
    from promotion.engine import log_path
    from promotion.lifecycle import GateFailure
    from promotion.monitoring import simulate
    from promotion.usecases import change_stage, deploy, scope_state

    if log_path(models_dir, scope).exists():
        progress(f"{scope}: a prediction log exists already; monitoring demo skipped")
        return
    ranked = [row.model_name for row in scope_state(models_dir, scope, store).board.ranked][:3]
    for name, stage in [(n, "production") for n in ranked] + [(ranked[0], "champion")]:
        reason = f"demo: rank {ranked.index(name) + 1} on the holdout"
        try:
            change_stage(models_dir, scope, store, name, stage, actor="demo", reason=reason)
        except GateFailure:  # the demo shows monitoring, whatever the gates say
            change_stage(models_dir, scope, store, name, stage, actor="demo", reason=reason,
                         override=True)
    deploy(models_dir, scope, store, "canary", actor="demo", canary=ranked[1],
           canary_share=0.10, reason="demo: start the runner-up as a 10% canary")
    report = simulate(models_dir, scope, requests, seed=0, days=8.0)
    progress(f"{scope}: {report.requests} requests replayed; {report.outcomes.summary()}")
