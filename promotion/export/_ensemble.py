"""Ensemble weights of a promoted set, and what each weighting buys on held-out rows.

``score`` is the seed's rule (composite / sum of composites), ``equal`` gives each model the
same share, and ``greedy`` is Caruana et al.'s ensemble selection with replacement, fitted on
one half of the holdout rows; every method is reported on the other half, so no figure is
optimistic. The ensemble's answer is the weighted mean of the members' outputs: class
probabilities (rows, classes), or for a regression scope predicted values (rows,); greedy
selection minimizes log loss on the former and squared error on the latter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..evaluation._bootstrap import point_metrics, regression_point_metrics
from ..vocabulary import WEIGHTS_METHODS, is_regression

DEFAULT_ENSEMBLE_SIZE = 25


def normalize(raw: Sequence[float], what: str = "weights") -> np.ndarray:
    """Non-negative weights scaled to sum to 1; all-zero or negative input is refused."""
    values = np.asarray(raw, dtype=float)
    if values.size == 0:
        raise InvalidInputError(f"no {what} to normalize: nothing is promoted")
    if not np.isfinite(values).all() or (values < 0).any():
        raise InvalidInputError(f"{what} must be finite and >= 0, got {values.tolist()}")
    total = math.fsum(values.tolist())
    if total <= 0:
        raise InvalidInputError(
            f"{what} are all zero, so they cannot be normalized. Hint: use the 'equal' "
            "weights method")
    weights = values / total
    # Put the rounding residue on the largest weight so the sum is 1 to the last bit we can.
    weights[int(np.argmax(weights))] += 1.0 - math.fsum(weights.tolist())
    return weights


def holdout_halves(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the fitting half and the reporting half (fixed by the seed)."""
    order = np.random.default_rng([seed, n_rows, 2]).permutation(n_rows)
    return np.sort(order[: n_rows // 2]), np.sort(order[n_rows // 2:])


def greedy_selection(outputs: Sequence[np.ndarray], y: np.ndarray, size: int,
                     labels: np.ndarray | None = None) -> np.ndarray:
    """Caruana ensemble selection with replacement; returns weights. Class probabilities
    (rows, classes) are blended to minimize log loss over ``labels``; predicted values
    (rows,) to minimize the squared error against the targets ``y``."""
    if outputs[0].ndim == 1:
        def loss(blend: np.ndarray) -> float:
            return float(np.mean((blend - y) ** 2))
    else:
        from sklearn.metrics import log_loss  # here: importing scikit-learn takes over a second

        def loss(blend: np.ndarray) -> float:
            return float(log_loss(y, y_proba=blend, labels=labels))

    counts = np.zeros(len(outputs))
    total = np.zeros_like(outputs[0], dtype=float)
    for step in range(1, size + 1):
        losses = [loss((total + p) / step) for p in outputs]
        best = int(np.argmin(losses))  # ties go to the earlier (better-ranked) model
        counts[best] += 1
        total += outputs[best]
    return counts / size


@dataclass(frozen=True)
class EnsembleReport:
    """Weights of one method and the ensemble's metrics on the reporting half."""

    method: str
    weights: dict[str, float]
    metrics: dict[str, float]


def ensemble_weights(method: str, names: Sequence[str], composites: Sequence[float],
                     outputs: Sequence[np.ndarray] | None = None, y: np.ndarray | None = None,
                     *, seed: int = 0, size: int = DEFAULT_ENSEMBLE_SIZE) -> dict[str, float]:
    """Weights of the promoted models by ``method`` (see module doc), summing to 1.
    ``outputs`` are the models' holdout outputs (class probabilities, or predicted values)
    and ``y`` the holdout's class indexes (or targets): greedy weights need them."""
    if method not in WEIGHTS_METHODS:
        raise InvalidInputError(
            f"unknown weights method '{method}'. Hint: methods are {', '.join(WEIGHTS_METHODS)}")
    if method == "score":
        weights = normalize(composites, "composite scores of the promoted models")
    elif method == "equal":
        weights = normalize([1.0] * len(names))
    else:
        if outputs is None or y is None:
            raise InvalidInputError("greedy weights need the models' holdout predictions")
        fit, _ = holdout_halves(len(y), seed)
        labels = None if outputs[0].ndim == 1 else np.arange(outputs[0].shape[1])
        weights = normalize(greedy_selection([p[fit] for p in outputs], y[fit], size, labels))
    return dict(zip(names, weights.tolist(), strict=True))


def blend(weights: Sequence[float], outputs: Sequence[np.ndarray]) -> np.ndarray:
    """The ensemble's answer: the weighted mean of the members' outputs."""
    return sum((w * p for w, p in zip(weights, outputs, strict=True)),
               np.zeros_like(outputs[0], dtype=float))


def compare_methods(names: Sequence[str], composites: Sequence[float],
                    outputs: Sequence[np.ndarray], y: np.ndarray, task: str, *, seed: int = 0,
                    size: int = DEFAULT_ENSEMBLE_SIZE) -> tuple[list[EnsembleReport],
                                                                dict[str, dict[str, float]]]:
    """Every method's weights and ensemble metrics on the reporting half, and each single
    model's metrics on the same rows (RMSE, MAE and R² for regression)."""
    _, report = holdout_halves(len(y), seed)
    errors = np.zeros(len(report), dtype=bool)

    def measured(output: np.ndarray) -> dict[str, float]:
        if is_regression(task):
            return regression_point_metrics(output, errors, y[report])
        return point_metrics(output, errors, y[report], task)

    reports = []
    for method in WEIGHTS_METHODS:
        try:
            weights = ensemble_weights(method, names, composites, outputs, y, seed=seed,
                                       size=size)
        except InvalidInputError:
            continue  # e.g. score weights when every composite is 0
        mixed = blend(list(weights.values()), [p[report] for p in outputs])
        reports.append(EnsembleReport(method, weights, measured(mixed)))
    singles = {name: measured(p[report]) for name, p in zip(names, outputs, strict=True)}
    return reports, singles
