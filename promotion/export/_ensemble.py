"""Ensemble weights of a promoted set, and what each weighting buys on held-out rows.

``score`` is the seed's rule (composite / sum of composites), ``equal`` gives each model the
same share, and ``greedy`` is Caruana et al.'s ensemble selection with replacement, fitted on
one half of the holdout rows; every method is reported on the other half, so no figure is
optimistic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..evaluation._bootstrap import point_metrics
from ..vocabulary import WEIGHTS_METHODS

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


def greedy_selection(probas: Sequence[np.ndarray], y: np.ndarray, size: int,
                     labels: np.ndarray) -> np.ndarray:
    """Caruana ensemble selection with replacement, minimizing log loss; returns weights."""
    from sklearn.metrics import log_loss  # here: importing scikit-learn takes over a second

    counts = np.zeros(len(probas))
    total = np.zeros_like(probas[0])
    for step in range(1, size + 1):
        losses = [log_loss(y, y_proba=(total + p) / step, labels=labels) for p in probas]
        best = int(np.argmin(losses))  # ties go to the earlier (better-ranked) model
        counts[best] += 1
        total += probas[best]
    return counts / size


@dataclass(frozen=True)
class EnsembleReport:
    """Weights of one method and the ensemble's metrics on the reporting half."""

    method: str
    weights: dict[str, float]
    metrics: dict[str, float]


def ensemble_weights(method: str, names: Sequence[str], composites: Sequence[float],
                     probas: Sequence[np.ndarray] | None = None, y: np.ndarray | None = None,
                     *, seed: int = 0, size: int = DEFAULT_ENSEMBLE_SIZE) -> dict[str, float]:
    """Weights of the promoted models by ``method`` (see module doc), summing to 1."""
    if method not in WEIGHTS_METHODS:
        raise InvalidInputError(
            f"unknown weights method '{method}'. Hint: methods are {', '.join(WEIGHTS_METHODS)}")
    if method == "score":
        weights = normalize(composites, "composite scores of the promoted models")
    elif method == "equal":
        weights = normalize([1.0] * len(names))
    else:
        if probas is None or y is None:
            raise InvalidInputError("greedy weights need the models' holdout predictions")
        fit, _ = holdout_halves(len(y), seed)
        labels = np.arange(probas[0].shape[1])
        weights = normalize(greedy_selection([p[fit] for p in probas], y[fit], size, labels))
    return dict(zip(names, weights.tolist(), strict=True))


def compare_methods(names: Sequence[str], composites: Sequence[float],
                    probas: Sequence[np.ndarray], y: np.ndarray, task: str, *, seed: int = 0,
                    size: int = DEFAULT_ENSEMBLE_SIZE) -> tuple[list[EnsembleReport],
                                                                dict[str, dict[str, float]]]:
    """Every method's weights and ensemble metrics on the reporting half, and each single
    model's metrics on the same rows."""
    _, report = holdout_halves(len(y), seed)
    errors = np.zeros(len(report), dtype=bool)
    reports = []
    for method in WEIGHTS_METHODS:
        try:
            weights = ensemble_weights(method, names, composites, probas, y, seed=seed,
                                       size=size)
        except InvalidInputError:
            continue  # e.g. score weights when every composite is 0
        blend = sum(w * p[report] for w, p in zip(weights.values(), probas, strict=True))
        reports.append(EnsembleReport(method, weights,
                                      point_metrics(blend, errors, y[report], task)))
    singles = {name: point_metrics(p[report], errors, y[report], task)
               for name, p in zip(names, probas, strict=True)}
    return reports, singles
