"""The evaluation cache: its keys, and the one place a measurement is written to and read from
the store.

An entry is a JSON payload (status, reason, metrics, intervals, replicate names, timing and
the holdout's classes and counts), the bootstrap replicates as raw float32 bytes (read for
every model on every start: no parsing) and the per-row output as an ``.npz`` (read only on
demand).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._results import HoldoutSummary, Measurement, ModelEvaluation, RowPredictions, Timing

if TYPE_CHECKING:
    from ..scopes._discovery import Scope
    from ..store._abstract import Store

#: Bump when the way metrics are measured changes, or the stored payload's shape: old cache
#: entries then stop matching. Also when read_holdout's checks change: a scope whose every
#: model is cached is not read.
EVALUATION_VERSION = 6


def settings_fingerprint(scope: Scope, preprocessor: str | None) -> str:
    """Everything besides the model and holdout files that changes what evaluation measures
    (``preprocessor``: the sha256 of the scope's preprocessor file): with the holdout file's
    sha256 it decides the classes and feature columns read from it."""
    cfg = scope.config
    settings = {
        "version": EVALUATION_VERSION, "task": cfg.task, "target": cfg.target,
        "classes": cfg.classes, "positive_class": cfg.positive_class, "features": cfg.features,
        "n_bootstrap": cfg.n_bootstrap, "bootstrap_seed": cfg.bootstrap_seed,
        "latency_rows": cfg.latency_rows, "trusted_types": sorted(cfg.trusted_types),
        "preprocessor": preprocessor,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def preprocessor_sha256(scope: Scope) -> str | None:
    """The sha256 of the scope's preprocessor file (None without one; a missing or unreadable
    file is named when the holdout is prepared)."""
    from ..scopes._discovery import file_sha256

    path = scope.preprocessor_path
    if path is None:
        return None
    try:
        return file_sha256(path)
    except OSError:
        return "unreadable"


def cache_key(model_sha256: str, holdout_sha256: str, fingerprint: str) -> str:
    """Key of one evaluation in the store's cache."""
    return hashlib.sha256(f"{model_sha256}|{holdout_sha256}|{fingerprint}".encode()).hexdigest()


@dataclass(frozen=True)
class CachedMeasurement:
    """One cache entry: a measurement (without its per-row output) and its holdout."""

    measurement: Measurement
    holdout: HoldoutSummary


def read_cached(store: Store, keys: list[str]) -> dict[str, CachedMeasurement]:
    """The cache entries found among ``keys``."""
    return {key: _from_stored(found.payload, found.replicates)
            for key, found in store.get_evaluations(keys).items()}


def write_cached(store: Store, key: str, model_sha256: str, holdout_sha256: str,
                 measurement: Measurement, holdout: HoldoutSummary) -> None:
    """Keep ``measurement`` (with its replicates and per-row output) under ``key``."""
    replicates = rows = None
    if measurement.replicates is not None:
        replicates = measurement.replicates.astype(np.float32).tobytes()
    if measurement.rows is not None:
        buffer = io.BytesIO()
        output = measurement.rows.output
        if output.ndim == 1:  # predicted values: one column, kept at full precision
            np.savez(buffer, predicted=output, errors=measurement.rows.errors)
        else:
            np.savez(buffer, proba=output.astype(np.float32), errors=measurement.rows.errors)
        rows = buffer.getvalue()
    store.put_evaluation(key, model_sha256, holdout_sha256, _payload(measurement, holdout),
                         replicates, rows)


def load_row_predictions(store: Store, evaluation: ModelEvaluation) -> RowPredictions | None:
    """The stored per-row output of an evaluated model, or None."""
    if evaluation.cache_key is None:
        return None
    blob = store.get_rows(evaluation.cache_key)
    if blob is None:
        return None
    with np.load(io.BytesIO(blob)) as arrays:
        errors = arrays["errors"]
        if "predicted" in arrays:
            return RowPredictions(arrays["predicted"].astype(np.float64), errors)
        proba = arrays["proba"].astype(np.float64)
    # Stored as float32: renormalize so each row sums to 1 at float64 precision again.
    return RowPredictions(proba / proba.sum(axis=1, keepdims=True), errors)


def _payload(measurement: Measurement, holdout: HoldoutSummary) -> dict[str, Any]:
    summary: dict[str, Any] = {"classes": list(holdout.classes), "counts": list(holdout.counts)}
    if holdout.regression_chance:
        summary["regression_chance"] = dict(holdout.regression_chance)
    if not measurement.ok:
        failed = {"status": "failed", "reason": measurement.reason, "holdout": summary}
        if measurement.timeout_s is not None:  # the limit it ran into, to compare with later ones
            failed["timeout_s"] = measurement.timeout_s
        return failed
    timing = measurement.timing
    return {
        "status": "ok", "reason": None, "metrics": measurement.metrics,
        "intervals": {name: list(bounds) for name, bounds in measurement.intervals.items()},
        "replicate_names": list(measurement.replicate_names),
        "timing": None if timing is None else {
            "load_s": timing.load_s, "batch_s": timing.batch_s,
            "latency_s": timing.latency_s, "evaluation_s": timing.evaluation_s},
        "holdout": summary,
    }


def _from_stored(payload: dict[str, Any], replicates: bytes | None) -> CachedMeasurement:
    stored = payload["holdout"]
    holdout = HoldoutSummary(tuple(stored["classes"]), tuple(stored["counts"]),
                             tuple(stored.get("regression_chance", {}).items()))
    if payload["status"] != "ok":
        return CachedMeasurement(Measurement.failed(payload["reason"],
                                                    timeout_s=payload.get("timeout_s")), holdout)
    names = tuple(payload["replicate_names"])
    values = None
    if replicates is not None and names:
        values = np.frombuffer(replicates, dtype=np.float32).reshape(-1, len(names))
    timing = payload.get("timing")
    return CachedMeasurement(Measurement(
        metrics=dict(payload["metrics"]),
        intervals={name: (low, high) for name, (low, high) in payload["intervals"].items()},
        replicate_names=names, replicates=values,
        timing=Timing(**timing) if timing is not None else None,
    ), holdout)
