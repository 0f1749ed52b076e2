"""The ``1H`` demo scope: next-hour return of a simulated price series, a regression scope.

The prices are simulated, not market data, so the signal in them is known: hourly log
returns with GARCH(1,1) volatility clustering (busier around 13-16 UTC, calmer at weekends),
plus a weak predictable part a trading team would look for: short-term momentum over the last
six hours, a reversal after a large move, and an hour-of-day drift. The noise is most of every
return, so the best models explain about 5% of its variance on the holdout; a linear model,
blind to the reversal's threshold and the hour pattern, about half that; the mean, nothing.

Features are computed from the close prices and volumes up to the row's hour only; the target
is the return of the hour after it. Split by time: the last ``HOLDOUT_HOURS`` rows are held out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.linear_model import Lasso, Ridge
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBRegressor

HOURLY_SCOPE = "1H"
TARGET = "next_return"
#: Rows held out at the end of the series (about 83 days).
HOLDOUT_HOURS = 2_000

_SEED = 3600
_HOURS = 16_200  # simulated returns: 675 days, the first week only feeds the rolling features
_START = "2023-01-02 00:00"  # a Monday; timestamps are UTC hours
_BASE_VOL_BP = 50.0  # typical hourly volatility in basis points (a liquid, volatile asset)
_GARCH_ALPHA, _GARCH_BETA = 0.07, 0.91  # persistent volatility: shocks fade over days
_MOMENTUM = 0.12  # per unit of the last six standardized returns' scaled sum
_REVERSAL = 0.7  # after a move beyond _REVERSAL_AT standard deviations, against it
_REVERSAL_AT = 1.5
#: Drift of the hour starting at each UTC hour, in standard deviations of that hour's return.
_HOUR_DRIFT = np.array([0.0] * 13 + [0.4, 0.4, 0.4] + [0.0] * 5 + [-0.4, -0.4, -0.4])
_LAGS = 6
_MEAN_WINDOWS = (6, 24, 72)
_VOL_WINDOWS = (24, 168)


# --------------------------------------------------------------------------------------
# Simulated market and features
# --------------------------------------------------------------------------------------


def _volatility_profile(stamps: pd.DatetimeIndex) -> np.ndarray:
    """Seasonal volatility factor of the hour starting at each stamp: a bump around the
    13-16 UTC overlap of the big sessions, a quarter less at weekends."""
    hour = stamps.hour.to_numpy()
    weekend = stamps.day_of_week.to_numpy() >= 5
    return (1 + 0.35 * np.exp(-(((hour - 14.5) / 2.5) ** 2))) * np.where(weekend, 0.75, 1.0)


def simulate_market(hours: int = _HOURS, seed: int = _SEED) -> pd.DataFrame:
    """Hourly ``close`` and ``volume`` indexed by the UTC time each hour closes.

    Return ``t`` (the hour ending at stamp ``t``) is ``sigma_t * (signal_t + shock_t)``: sigma
    follows a GARCH(1,1) times the seasonal profile; the signal depends only on earlier
    returns and on the hour, so it is predictable from what is known at ``t - 1``.
    """
    rng = np.random.default_rng(seed)
    stamps = pd.date_range(_START, periods=hours + 1, freq="h")
    shocks = rng.standard_normal(hours + 1)
    seasonal = _volatility_profile(stamps[:-1])  # return t runs from stamp t-1 to stamp t
    drift = _HOUR_DRIFT[stamps[:-1].hour.to_numpy()]
    standardized = np.zeros(hours + 1)  # return / sigma; index 0 is the opening price
    sigma = np.zeros(hours + 1)
    variance = 1.0  # GARCH variance relative to its long-run level (which is 1)
    omega = 1 - _GARCH_ALPHA - _GARCH_BETA
    for t in range(1, hours + 1):
        if t > 1:
            variance = omega + (_GARCH_ALPHA * shocks[t - 1] ** 2 + _GARCH_BETA) * variance
        sigma[t] = _BASE_VOL_BP * np.sqrt(variance) * seasonal[t - 1]
        recent = standardized[max(1, t - _LAGS):t]
        last = standardized[t - 1]
        signal = (drift[t - 1] + _MOMENTUM * recent.sum() / np.sqrt(_LAGS)
                  - _REVERSAL * np.sign(last) * (abs(last) > _REVERSAL_AT))
        standardized[t] = signal + shocks[t]
    returns_bp = sigma * standardized
    close = 100 * np.exp(np.cumsum(returns_bp) / 10_000)
    # Volume follows volatility and the size of the hour's move, as real volume does.
    activity = np.exp(0.8 * np.log(sigma[1:] / _BASE_VOL_BP) + 0.3 * np.abs(standardized[1:])
                      + 0.25 * rng.standard_normal(hours))
    volume = np.concatenate([[np.nan], np.round(1_000 * activity)])
    return pd.DataFrame({"close": np.round(close, 4), "volume": volume},
                        index=pd.DatetimeIndex(stamps, name="timestamp"))


def hourly_features(market: pd.DataFrame) -> pd.DataFrame:
    """One row per hour with a full history and a next hour: features from ``close`` and
    ``volume`` up to the row's hour, and ``next_return`` (basis points) of the hour after.

    Every feature is a trailing computation (a shift by zero or more rows, a rolling window
    ending at the row), so a row never sees a later price.
    """
    returns = 10_000 * np.log(market["close"]).diff()  # basis points
    volume = market["volume"]
    columns: dict[str, pd.Series] = {}
    for lag in range(1, _LAGS + 1):
        columns[f"ret_lag_{lag}"] = returns.shift(lag - 1)
    for window in _MEAN_WINDOWS:
        columns[f"mean_ret_{window}h"] = returns.rolling(window).mean()
    for window in _VOL_WINDOWS:
        columns[f"vol_{window}h"] = returns.rolling(window).std()
    columns["volume_ratio_24h"] = (volume / volume.rolling(24).mean()).round(3)
    columns["hour_of_day"] = pd.Series(market.index.hour, index=market.index)
    columns["day_of_week"] = pd.Series(market.index.day_of_week, index=market.index)
    columns[TARGET] = returns.shift(-1)
    frame = pd.DataFrame(columns).dropna()
    rounded = [c for c in frame.columns if c.startswith(("ret_", "mean_", "vol_")) or c == TARGET]
    frame[rounded] = frame[rounded].round(2)
    return frame.astype({"hour_of_day": np.int64, "day_of_week": np.int64})


def hourly_frames() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Train and holdout frames (split by time; the index is each row's UTC hour, kept out of
    the columns so it is never a feature) and the scope.json of the scope."""
    frame = hourly_features(simulate_market())
    train, holdout = frame.iloc[:-HOLDOUT_HOURS], frame.iloc[-HOLDOUT_HOURS:]
    features = len(frame.columns) - 1
    info = {
        "task": "regression",
        "target": TARGET,
        "holdout": "holdout.csv",
        "description": "Simulated hourly prices, not market data: predict next_return, the "
        "log return of the next hour in basis points, from "
        f"{features} features of the hours up to now (lagged returns, rolling means and "
        "volatilities, relative volume, hour of day, day of week). The simulation has "
        "volatility clustering and a weak real signal (momentum, reversal after large moves, "
        f"an hour-of-day drift). Split by time: the last {HOLDOUT_HOURS:,} hours held out.",
        # A weak signal is a low score: the best models here have R² near 0.06 and a
        # composite near 0.03, so the default floor (0.1) would block every promotion.
        "gates": {"min_composite": 0.02},
    }
    return train, holdout, info


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HourlyModel:
    """One model of the scope: folder name, group, type, seed, hyperparameters (as written to
    meta.json) and a description of what it is."""

    name: str
    group: str
    model_type: str
    seed: int
    params: dict[str, Any]
    description: str


def _variant(model: HourlyModel, seed: int) -> HourlyModel:
    """The same architecture with another seed, named as the other scopes name variants."""
    return replace(model, name=f"{model.name}_seed_{seed}", group="variant", seed=seed,
                   description=f"{model.description} Same architecture as {model.name}, "
                               f"seed {seed}.")


# Noise is most of the target: leaves of at least 50 rows, shallow trees and slow boosting
# keep the trees from learning it; the limits also keep every fit under a second.
_RANDOM_FOREST = HourlyModel(
    "random_forest", "tree", "random_forest", 0,
    {"n_estimators": 50, "max_depth": 7, "min_samples_leaf": 50, "max_features": 0.5,
     "max_samples": 0.5},
    "Random forest of 50 trees of depth 7 (min_samples_leaf 50, each on half the rows).")
_XGBOOST = HourlyModel(
    "xgboost", "tree", "xgboost", 0,
    {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8,
     "colsample_bytree": 0.8, "min_child_weight": 50, "tree_method": "hist"},
    "XGBoost histogram boosting: 200 rounds of depth-3 trees, learning rate 0.05, "
    "row/column subsampling 0.8/0.8.")
_MLP_COMMON: dict[str, Any] = {"alpha": 1e-2, "learning_rate_init": 2e-3, "batch_size": 512,
                               "early_stopping": True, "validation_fraction": 0.1,
                               "n_iter_no_change": 10, "tol": 1e-3, "max_iter": 200}

HOURLY_MODELS: tuple[HourlyModel, ...] = (
    _XGBOOST,
    _RANDOM_FOREST,
    HourlyModel("extra_trees", "tree", "extra_trees", 0,
                {"n_estimators": 80, "max_depth": 8, "min_samples_leaf": 50,
                 "max_features": 0.7},
                "Extremely randomized trees, 80 trees of depth 8 (min_samples_leaf 50)."),
    HourlyModel("hist_gradient_boosting", "tree", "hist_gradient_boosting", 0,
                {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15,
                 "min_samples_leaf": 100, "early_stopping": True, "validation_fraction": 0.1,
                 "n_iter_no_change": 10},
                "scikit-learn histogram gradient boosting, up to 200 iterations with early "
                "stopping, learning rate 0.05."),
    HourlyModel("mlp_small", "neural", "mlp", 0, {"hidden_layer_sizes": [32], **_MLP_COMMON},
                "Multi-layer perceptron with hidden layers [32] on standardized inputs, early "
                "stopping on a 10% validation split."),
    HourlyModel("mlp_large", "neural", "mlp", 0,
                {"hidden_layer_sizes": [64, 32], **_MLP_COMMON},
                "Multi-layer perceptron with hidden layers [64, 32] on standardized inputs, "
                "early stopping on a 10% validation split."),
    _variant(_RANDOM_FOREST, 1),
    _variant(_XGBOOST, 1),
    _variant(_XGBOOST, 2),
    HourlyModel("ridge", "linear", "ridge", 0, {"alpha": 10.0},
                "Ridge regression (alpha 10) on standardized inputs: the linear baseline."),
    HourlyModel("lasso", "linear", "lasso", 0, {"alpha": 0.5},
                "Lasso regression (alpha 0.5) on standardized inputs: a sparse linear model."),
    HourlyModel("mean_baseline", "linear", "mean", 0, {"strategy": "mean"},
                "Predicts the training mean of next_return for every hour: no skill, the "
                "reference a composite of 0 stands for."),
)


def hourly_estimator(model: HourlyModel, n_jobs: int) -> BaseEstimator:
    """Unfitted estimator of one model: trees on the raw features, the others on
    standardized ones (the mean needs neither)."""
    params, seed = model.params, model.seed
    if model.model_type == "xgboost":
        return XGBRegressor(random_state=seed, n_jobs=n_jobs, **params)
    if model.model_type == "random_forest":
        return RandomForestRegressor(random_state=seed, n_jobs=n_jobs, **params)
    if model.model_type == "extra_trees":
        return ExtraTreesRegressor(random_state=seed, n_jobs=n_jobs, **params)
    if model.model_type == "hist_gradient_boosting":
        return HistGradientBoostingRegressor(random_state=seed, **params)
    if model.model_type == "mean":
        return DummyRegressor(**params)
    if model.model_type == "mlp":
        layers = tuple(params["hidden_layer_sizes"])  # a list in meta.json, a tuple here
        regressor: BaseEstimator = MLPRegressor(
            random_state=seed, **{**params, "hidden_layer_sizes": layers})
    elif model.model_type == "ridge":
        regressor = Ridge(**params)
    elif model.model_type == "lasso":
        regressor = Lasso(**params)
    else:
        raise ValueError(f"unknown model type {model.model_type!r}")
    return Pipeline([("preprocess", StandardScaler()), ("regressor", regressor)])
