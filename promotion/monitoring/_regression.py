"""Live RMSE and MAE of a regression scope, per model and window, against the holdout's.

RMSE and MAE come from scikit-learn on the logged values and the joined outcomes, each with a
95% normal-approximation interval of the mean of its per-request loss (central limit
theorem): MAE ± 1.96 · sd(|e|)/√n, and for RMSE the interval of the mean squared error,
MSE ± 1.96 · sd(e²)/√n, square-rooted (its lower end floored at 0). Lower is better for both.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from ..contract import ModelCard
from ..vocabulary import is_regression
from ._live import LiveData, _paired, live_metric

if TYPE_CHECKING:
    import pandas as pd

#: The live metrics of a regression scope, each lower-is-better.
REGRESSION_METRICS = ("rmse", "mae")
_Z = NormalDist().inv_cdf(0.975)


def live_errors(predicted: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """RMSE and MAE of ``predicted`` against outcomes ``y`` by scikit-learn, each with its
    95% normal-approximation interval (see the module docstring): name -> (value, low,
    high)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    n = len(y)
    if n == 0:
        return dict.fromkeys(REGRESSION_METRICS, (math.nan, math.nan, math.nan))
    miss = np.asarray(predicted, dtype=float) - np.asarray(y, dtype=float)
    mse = float(mean_squared_error(y, predicted))
    rmse = math.sqrt(mse)
    mae = float(mean_absolute_error(y, predicted))
    if n < 2:  # one request: no spread to estimate
        return {"rmse": (rmse, math.nan, math.nan), "mae": (mae, math.nan, math.nan)}
    mse_half = _Z * float(np.std(miss ** 2, ddof=1)) / math.sqrt(n)
    mae_half = _Z * float(np.std(np.abs(miss), ddof=1)) / math.sqrt(n)
    return {"rmse": (rmse, math.sqrt(max(mse - mse_half, 0.0)), math.sqrt(mse + mse_half)),
            "mae": (mae, max(mae - mae_half, 0.0), mae + mae_half)}


def served_errors(live: LiveData) -> tuple[int, dict[str, tuple[float, float, float]]]:
    """RMSE and MAE of the values actually served (the ensemble's weighted mean, or the
    deciding model's) on every request with an outcome: how many, and each with its 95%
    interval as ``live_errors`` gives it."""
    if not live.regression or live.served_values is None:
        return 0, live_errors(np.zeros(0), np.zeros(0))
    rows = live.labelled & np.isfinite(live.served_values)
    return int(rows.sum()), live_errors(live.served_values[rows], live.y[rows])


def key_live(live: LiveData, model: str, rows: np.ndarray, task: str
             ) -> tuple[float, float, float]:
    """The task's key metric of ``model`` live on ``rows`` (a mask): top-5 accuracy or AUC
    (higher is better), or RMSE for regression (lower is better); with its 95% interval."""
    if is_regression(task):
        return live_errors(live.predicted(model)[rows], live.y[rows])["rmse"]
    return live_metric(live.probas[model][rows], live.y[rows], task)


#: Columns of ``regression_windows`` and ``regression_comparison``.
REGRESSION_WINDOW_COLUMNS = ["model", "window", "metric", "outcomes", "value", "low", "high",
                             "holdout", "holdout_low", "holdout_high"]


def regression_windows(live: LiveData, cards: list[ModelCard], freq: str = "D"
                       ) -> pd.DataFrame:
    """Per model, time window and metric (RMSE, MAE; lower is better): outcomes, the live
    value with its 95% interval and the holdout's value and interval from the card, on the
    requests every model scored (the same requests side by side)."""
    import pandas as pd

    models = [c.model_name for c in cards if c.model_name in live.probas]
    if live.empty or not models or not live.regression:
        return pd.DataFrame(columns=REGRESSION_WINDOW_COLUMNS)
    keep = _paired(live, models, np.ones(len(live.y), dtype=bool))
    windows = live.requests["at"].dt.floor(freq)
    by_name = {c.model_name: c for c in cards}
    records = []
    for window in sorted(windows[keep].unique()):
        rows = keep & (windows == window).to_numpy()
        for model in models:
            records.extend(_error_records(live, by_name[model], rows, window=window))
    return pd.DataFrame.from_records(records, columns=REGRESSION_WINDOW_COLUMNS)


def regression_comparison(live: LiveData, cards: list[ModelCard]) -> pd.DataFrame:
    """Every model of ``cards`` over the whole log on the same requests (those every model
    scored and that have an outcome): RMSE and MAE with their 95% intervals and the holdout's,
    and ``vs_reference``: each value relative to the ``reference`` model's (the champion, or
    the first card when there is none), e.g. 0.06 for 6% higher: worse."""
    import pandas as pd

    models = [c.model_name for c in cards if c.model_name in live.probas]
    if live.empty or not models or not live.regression:
        return pd.DataFrame(columns=[*REGRESSION_WINDOW_COLUMNS, "reference", "vs_reference"])
    rows = _paired(live, models, np.ones(len(live.y), dtype=bool))
    by_name = {c.model_name: c for c in cards}
    reference = next((c.model_name for c in cards if c.role == "champion"
                      and c.model_name in models), models[0])
    frame = pd.DataFrame.from_records(
        [r for model in models for r in _error_records(live, by_name[model], rows, window=None)],
        columns=REGRESSION_WINDOW_COLUMNS)
    base = frame["metric"].map(frame[frame["model"] == reference].set_index("metric")["value"])
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["vs_reference"] = np.where(base > 0, frame["value"] / base - 1, np.nan)
    frame.insert(len(frame.columns) - 1, "reference", reference)
    return frame


def _error_records(live: LiveData, card: ModelCard, rows: np.ndarray, *, window: object
                   ) -> list[dict[str, object]]:
    live_values = live_errors(live.predicted(card.model_name)[rows], live.y[rows])
    records = []
    for metric in REGRESSION_METRICS:
        value, low, high = live_values[metric]
        held = card.metrics.get(metric)
        records.append({"model": card.model_name, "window": window, "metric": metric,
                        "outcomes": int(rows.sum()), "value": value, "low": low,
                        "high": high,
                        "holdout": held.value if held is not None else None,
                        "holdout_low": held.low if held is not None else None,
                        "holdout_high": held.high if held is not None else None})
    return records
