"""Measuring every model of a scope on its holdout, in parallel, cached in the store.

Point estimates come from scikit-learn's metric functions. Their 95% intervals come from a
vectorized bootstrap whose resampled rows are the same for every model of a scope (one seed),
so differences between models are paired. Per-row statistics feeding the bootstrap are checked
against scikit-learn in the tests: the unweighted mean of each equals the library's value.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._align import ClassMismatch, class_positions, model_columns
from ._discovery import Holdout, ModelEntry, Scope, file_sha256
from ._errors import InvalidInputError
from ._loading import ModelLoadError, load_model_bytes, read_model_bytes
from ._metrics import chance_levels, get_metric_names, metric_score
from ._store import Store

if TYPE_CHECKING:
    import joblib
    import pandas as pd

#: Bump when the way metrics are measured changes: old cache entries then stop matching.
#: Also when read_holdout's checks change: a scope whose every model is cached is not read.
EVALUATION_VERSION = 5
#: Environment setting: a Dask scheduler address sends evaluation to that cluster.
DASK_SCHEDULER_SETTING = "PROMOTION_DASK_SCHEDULER"
TOP_K = 5

Progress = Callable[[int, int, str, bool], None]


@dataclass(frozen=True)
class ModelEvaluation:
    """What was measured for one model (or why it could not be)."""

    model_name: str
    model_type: str
    group: str
    status: str  # "ok" or "failed"
    reason: str | None
    sha256: str | None
    cache_key: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    replicate_names: tuple[str, ...] = ()
    replicates: np.ndarray | None = None  # (n_bootstrap, len(replicate_names))
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class ScopeEvaluation:
    """Every model of a scope measured on the same holdout."""

    scope: str
    task: str
    classes: list
    n_rows: int
    holdout_sha256: str
    chance: dict[str, float]
    models: list[ModelEvaluation]
    evaluated: int  # how many were measured now (not from the cache)
    seconds: float
    _columns: dict[str, tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def ok_models(self) -> list[ModelEvaluation]:
        return [m for m in self.models if m.ok]

    def scored_column(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """One metric over the ok models on the 0..1 score scale: points (M,) and bootstrap
        replicates (M, B), cached. Scores do not depend on weights, so a weight change only
        re-weights these. Float64: a metric measured once (no replicates) repeats its point
        value, and differences between models far below float32's resolution still count."""
        if name not in self._columns:
            ok = self.ok_models
            points = np.array([m.metrics.get(name, np.nan) for m in ok], dtype=float)
            n_boot = next((m.replicates.shape[0] for m in ok if m.replicates is not None), 1)
            reps = np.empty((len(ok), n_boot))
            for i, model in enumerate(ok):
                index = model.replicate_names.index(name) if name in model.replicate_names \
                    else None
                if model.replicates is not None and index is not None:
                    reps[i] = model.replicates[:, index]
                else:  # measured once: no sampling spread
                    reps[i] = points[i]
            self._columns[name] = (metric_score(name, points, self.chance),
                                   metric_score(name, reps, self.chance))
        return self._columns[name]

    @cached_property
    def name_order(self) -> np.ndarray:
        """Indices of the ok models sorted by name: the tie-break of every ranking."""
        names = [m.model_name for m in self.ok_models]
        return np.array(sorted(range(len(names)), key=names.__getitem__), dtype=np.intp)


@dataclass(frozen=True)
class RowPredictions:
    """A model's per-row output on the holdout (for charts, ensembles and tests)."""

    proba: np.ndarray  # (rows, classes), rows sum to 1
    errors: np.ndarray  # (rows,) True where predict_proba failed or was not finite


def evaluate_scope(scope: Scope, store: Store, *, n_jobs: int = -1,
                   progress: Progress | None = None,
                   holdout: Holdout | Callable[[], Holdout] | None = None) -> ScopeEvaluation:
    """Measure every model of ``scope``; models unchanged since their last run are not rerun.

    When every model is in the cache, the holdout is hashed, not read: its sha256 and the
    scope's settings key the cache, and each cached entry keeps the holdout's classes and
    class counts. So an app restart does not parse a large holdout again. ``holdout`` is the
    rows already read, or a function that reads them (called only when they are needed).
    """
    started = time.perf_counter()
    read: Holdout | None = holdout if isinstance(holdout, Holdout) else None

    def rows() -> Holdout:
        nonlocal read
        if read is None:
            read = holdout() if callable(holdout) else scope.load_holdout()
        return read

    fingerprint = settings_fingerprint(scope)
    holdout_sha = read.sha256 if read is not None else _holdout_sha256(scope, rows)
    results: dict[str, ModelEvaluation] = {}
    hashed: list[tuple[ModelEntry, str]] = []
    for entry in scope.models:
        if entry.error is not None:
            results[entry.name] = _failed(entry, entry.error, None, None)
            continue
        try:
            hashed.append((entry, file_sha256(entry.model_path)))
        except OSError as err:  # removed or unreadable since discovery: that model fails
            reason = f"{scope.shown(entry.model_path)}: cannot be read ({err.strerror or err})"
            results[entry.name] = _failed(entry, reason, None, None)

    def lookup(sha: str) -> tuple[list[tuple[ModelEntry, str, str]], dict[str, Any]]:
        """Each model with its cache key for holdout ``sha``, and the entries found."""
        keyed = [(entry, model_sha, cache_key(model_sha, sha, fingerprint))
                 for entry, model_sha in hashed]
        return keyed, store.get_evaluations([key for _, _, key in keyed])

    keyed, cached = lookup(holdout_sha)
    summary = next((c.payload.get("holdout") for c in cached.values()), None)
    if summary is None or any(key not in cached for _, _, key in keyed):
        if rows().sha256 != holdout_sha:  # rewritten since it was hashed: key on what was read
            holdout_sha = rows().sha256
            keyed, cached = lookup(holdout_sha)
        summary = _holdout_summary(rows())
    todo = [(entry, sha, key) for entry, sha, key in keyed if key not in cached]
    total = len(scope.models)
    for entry, sha, key in keyed:
        if key in cached:
            results[entry.name] = _from_payload(scope, entry, sha, key, cached[key].payload,
                                                cached[key].replicates, cached=True)
    done = len(results)
    if progress:
        for name in results:
            progress(done, total, name, True)
    measured_now = _run_parallel(todo, scope, rows(), n_jobs) if todo else iter(())
    for entry, sha, key, measured in measured_now:
        payload, replicates, rows_blob = measured
        if payload.pop("transient", False):  # the file changed under us: measure it next time
            results[entry.name] = _failed(entry, f"{scope.shown(entry.model_path)}: "
                                                 f"{payload['reason']}", sha, None)
            done += 1
            if progress:
                progress(done, total, entry.name, False)
            continue
        payload["holdout"] = summary
        store.put_evaluation(key, sha, holdout_sha, payload, replicates, rows_blob)
        results[entry.name] = _from_payload(scope, entry, sha, key, payload, replicates,
                                            cached=False)
        done += 1
        if progress:
            progress(done, total, entry.name, False)
    counts = np.asarray(summary["counts"], dtype=np.int64)
    return ScopeEvaluation(
        scope=scope.name, task=scope.task, classes=list(summary["classes"]),
        n_rows=int(counts.sum()), holdout_sha256=holdout_sha, chance=chance_levels(counts),
        models=[results[entry.name] for entry in scope.models],
        evaluated=len(todo), seconds=time.perf_counter() - started,
    )


def _holdout_sha256(scope: Scope, rows: Callable[[], Holdout]) -> str:
    """The holdout file's sha256; a missing or unreadable file is read for its message."""
    try:
        return file_sha256(scope.holdout_path)
    except OSError:
        return rows().sha256  # raises the holdout's own clear message


def _holdout_summary(holdout: Holdout) -> dict[str, list]:
    """What a scope's evaluation needs of its holdout rows, kept with each cached entry."""
    return {"classes": [c.item() if isinstance(c, np.generic) else c for c in holdout.classes],
            "counts": [int(n) for n in holdout.counts]}


def load_row_predictions(store: Store, evaluation: ModelEvaluation) -> RowPredictions | None:
    """The stored per-row output of an evaluated model, or None."""
    if evaluation.cache_key is None:
        return None
    blob = store.get_rows(evaluation.cache_key)
    if blob is None:
        return None
    with np.load(io.BytesIO(blob)) as arrays:
        proba = arrays["proba"].astype(np.float64)
        errors = arrays["errors"]
    # Stored as float32: renormalize so each row sums to 1 at float64 precision again.
    return RowPredictions(proba / proba.sum(axis=1, keepdims=True), errors)


def settings_fingerprint(scope: Scope) -> str:
    """Everything besides the files that changes what evaluation measures: with the holdout
    file's sha256 it decides the classes and feature columns read from it."""
    cfg = scope.config
    settings = {
        "version": EVALUATION_VERSION, "task": cfg.task, "target": cfg.target,
        "classes": cfg.classes, "positive_class": cfg.positive_class, "features": cfg.features,
        "n_bootstrap": cfg.n_bootstrap, "bootstrap_seed": cfg.bootstrap_seed,
        "latency_rows": cfg.latency_rows, "trusted_types": sorted(cfg.trusted_types),
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def cache_key(model_sha256: str, holdout_sha256: str, fingerprint: str) -> str:
    """Key of one evaluation in the store's cache."""
    return hashlib.sha256(f"{model_sha256}|{holdout_sha256}|{fingerprint}".encode()).hexdigest()


# --- running ---------------------------------------------------------------------------------

def _run_parallel(todo: list[tuple[ModelEntry, str, str]], scope: Scope, holdout: Holdout,
                  n_jobs: int):
    """Yield (entry, sha, key, measurement) as models finish, fastest first."""
    if not todo:
        return
    cfg = scope.config
    job_args = dict(features=holdout.features, y_index=holdout.y_index,
                    n_classes=len(holdout.classes), classes=holdout.classes, task=cfg.task,
                    n_bootstrap=cfg.n_bootstrap, seed=cfg.bootstrap_seed,
                    latency_rows=cfg.latency_rows, models_dir=scope.models_dir,
                    trusted_types=tuple(cfg.trusted_types))
    # In worker processes even for one model: tracemalloc traces a whole process, and in the
    # app's process other sessions' threads would be counted too.
    if n_jobs == 1:
        for entry, sha, key in todo:
            yield entry, sha, key, measure_model(entry.model_path, expected_sha256=sha,
                                                 **job_args)
        return
    import joblib  # here: a served leaderboard reads the cache and never needs it

    jobs = (joblib.delayed(_measure_tagged)(i, entry.model_path, sha, job_args)
            for i, (entry, sha, _) in enumerate(todo))
    with _backend(n_jobs) as parallel:
        for index, measurement in parallel(jobs):
            entry, sha, key = todo[index]
            yield entry, sha, key, measurement


@contextmanager
def _backend(n_jobs: int) -> Iterator[joblib.Parallel]:
    """Local worker processes, or the Dask cluster named by ``PROMOTION_DASK_SCHEDULER``.

    Dask workers read the model files by path, so they must see the models root at the same
    path (one machine, or a shared file system).
    """
    import joblib

    address = os.environ.get(DASK_SCHEDULER_SETTING, "").strip()
    if not address:
        yield joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        return
    from distributed import Client

    try:
        client = Client(address, timeout="5s", set_as_default=False)
    except (OSError, TimeoutError) as err:
        raise InvalidInputError(f"cannot reach the Dask scheduler at '{address}' "
                                f"({DASK_SCHEDULER_SETTING}): {err}") from None
    try:
        with joblib.parallel_config(backend="dask", client=client):
            yield joblib.Parallel(return_as="generator_unordered")
    finally:
        client.close()


def _measure_tagged(index: int, path: Path, sha: str, job_args: dict[str, Any]):
    return index, measure_model(path, expected_sha256=sha, **job_args)


def measure_model(path: Path, *, models_dir: Path, features: pd.DataFrame,
                  y_index: np.ndarray, n_classes: int, classes: list, task: str,
                  n_bootstrap: int, seed: int, latency_rows: int,
                  expected_sha256: str | None = None, trusted_types: tuple[str, ...] = ()
                  ) -> tuple[dict[str, Any], bytes | None, bytes | None]:
    """Load one model file and measure it; returns (payload, replicates, rows) for the store.

    Never raises for a bad model: the payload then has ``status: failed`` and the reason.
    The file must stay inside ``models_dir`` and hash to ``expected_sha256`` (the version the
    result is stored under) before anything is loaded.
    """
    started = time.perf_counter()
    try:
        payload_bytes = read_model_bytes(path, models_dir, path.name, expected_sha256,
                                         "hashed")
    except ModelLoadError as err:
        return {"status": "failed", "reason": err.detail, "transient": True}, None, None
    try:
        model, load_seconds, load_peak = _load(payload_bytes, path.name, trusted_types)
        columns = _model_columns(model, features)
        class_index = _class_positions(model, classes)
        X = features[columns]
        proba, errors, chunk_seconds, chunk_rows = _predict_batch(model, X, class_index,
                                                                  n_classes)
        batch_seconds = float(chunk_seconds.sum())
        latency_started = time.perf_counter()
        latencies = _time_single_rows(model, X, latency_rows, seed)
        latency_seconds = time.perf_counter() - latency_started
    except _ModelProblem as problem:
        return {"status": "failed", "reason": str(problem)}, None, None
    metrics = point_metrics(proba, errors, y_index, task)
    metrics.update(
        latency_p50_ms=float(np.percentile(latencies, 50)),
        latency_p95_ms=float(np.percentile(latencies, 95)),
        throughput_rows_s=len(X) / max(batch_seconds, 1e-9),
        artifact_size_mb=path.stat().st_size / 1e6,
        load_memory_mb=load_peak / 1e6,
    )
    names, replicates = _bootstrap(proba, errors, y_index, task, latencies,
                                   (chunk_seconds, chunk_rows), metrics, n_bootstrap, seed)
    low, high = np.nanpercentile(replicates, [2.5, 97.5], axis=0) if len(replicates) else ([], [])
    payload = {
        "status": "ok", "reason": None, "metrics": metrics,
        "intervals": {n: [float(lo), float(hi)] for n, lo, hi in zip(names, low, high,
                                                                    strict=True)},
        "replicate_names": names,
        "timing": {"load_s": load_seconds, "batch_s": batch_seconds,
                   "latency_s": latency_seconds, "evaluation_s": time.perf_counter() - started},
    }
    # Replicates are raw float32 (read for every model on every start: no parsing);
    # the per-row output, read only on demand, is an .npz.
    return payload, replicates.astype(np.float32).tobytes(), _to_bytes(
        proba=proba.astype(np.float32), errors=errors)


class _ModelProblem(Exception):
    """A model that cannot be measured; the message is shown as the failure reason."""


def _load(payload: bytes, file_name: str, trusted_types: tuple[str, ...]
          ) -> tuple[Any, float, int]:
    """The model, its load time and the peak memory its loading allocates.

    A first, untimed load imports whatever the file needs, so the measured second load
    counts the model's own memory, not the libraries a process happened not to have yet.
    """
    try:
        load_model_bytes(payload, file_name, file_name, trusted_types)
        started = time.perf_counter()
        tracemalloc.start()
        try:
            model = load_model_bytes(payload, file_name, file_name, trusted_types)
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    except ModelLoadError as err:  # an unreadable file is a failed row, never a crash
        raise _ModelProblem(err.detail) from None
    return model, time.perf_counter() - started, peak


def _model_columns(model: Any, features: pd.DataFrame) -> list[str]:
    try:
        columns = model_columns(model, list(features.columns))
    except KeyError as err:
        raise _ModelProblem(f"wrong features: the model needs column(s) the holdout lacks: "
                            f"{err.args[0]}") from None
    n_expected = getattr(model, "n_features_in_", None)
    if n_expected is not None and n_expected != len(columns):
        raise _ModelProblem(f"wrong features: the model takes {n_expected} columns, the "
                            f"holdout has {len(columns)}")
    return columns


def _class_positions(model: Any, classes: list) -> np.ndarray:
    try:
        return class_positions(model, classes)
    except ClassMismatch as err:
        raise _ModelProblem(str(err)) from None


BATCH_CHUNKS = 5


def _predict_batch(model: Any, X: pd.DataFrame, class_index: np.ndarray, n_classes: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Class probabilities of every row, predicted in a few equal chunks.

    Returns (proba, errors, seconds per chunk, rows per chunk); the chunk timings give the
    throughput its bootstrap interval, and a failing chunk is retried row by row.
    """
    bounds = np.linspace(0, len(X), min(BATCH_CHUNKS, len(X)) + 1).astype(int)
    raw = np.empty((len(X), len(class_index)))
    seconds = np.empty(len(bounds) - 1)
    for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        chunk = X.iloc[start:stop]
        started = time.perf_counter()
        try:
            out = np.asarray(model.predict_proba(chunk), dtype=float)
            seconds[i] = time.perf_counter() - started
            if out.shape != (len(chunk), len(class_index)):
                raise _ModelProblem(f"predict_proba returned shape {out.shape}, expected "
                                    f"{(len(chunk), len(class_index))}")
        except _ModelProblem:
            raise
        except Exception:  # find the rows that fail, one by one
            out, seconds[i] = _predict_row_by_row(model, chunk, len(class_index))
        raw[start:stop] = out
    proba = np.zeros((len(X), n_classes))
    proba[:, class_index] = raw
    errors = ~np.isfinite(proba).all(axis=1) | (proba < 0).any(axis=1)
    if errors.all():
        raise _ModelProblem("predict_proba failed or returned NaN on every holdout row")
    # A failed row counts as a uniform guess: it is penalized, never silently dropped.
    proba[errors] = 1.0 / n_classes
    proba /= proba.sum(axis=1, keepdims=True)
    return proba, errors, seconds, np.diff(bounds)


def _predict_row_by_row(model: Any, X: pd.DataFrame, width: int) -> tuple[np.ndarray, float]:
    out = np.full((len(X), width), np.nan)
    first_error: Exception | None = None
    started = time.perf_counter()
    for i in range(len(X)):
        try:
            out[i] = np.asarray(model.predict_proba(X.iloc[[i]]), dtype=float)[0]
        except Exception as err:
            first_error = first_error or err
    if np.isnan(out).all() and first_error is not None:
        raise _ModelProblem(f"predict_proba fails: {type(first_error).__name__}: {first_error}")
    return out, time.perf_counter() - started


def _time_single_rows(model: Any, X: pd.DataFrame, count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).permutation(len(X))[:count]
    singles = [X.iloc[[i]] for i in rows]  # built before timing: only the model is timed
    _quietly(model.predict_proba, singles[0])  # warm-up
    timings = np.empty(len(singles))
    for i, single in enumerate(singles):
        started = time.perf_counter_ns()
        _quietly(model.predict_proba, single)
        timings[i] = (time.perf_counter_ns() - started) / 1e6
    return timings


def _quietly(func: Callable[[Any], Any], arg: Any) -> None:
    try:
        func(arg)
    except Exception:  # failing rows are counted in error_rate by the batch pass
        pass


# --- metrics ---------------------------------------------------------------------------------

def point_metrics(proba: np.ndarray, errors: np.ndarray, y: np.ndarray, task: str
                  ) -> dict[str, float]:
    """The quality metrics of class probabilities against class indices, by scikit-learn."""
    # Imported here, not at the top: scikit-learn and the SciPy under it take over a second to
    # import, and a leaderboard served from the cache never measures (the app's first page).
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        log_loss,
        roc_auc_score,
        top_k_accuracy_score,
    )

    labels = np.arange(proba.shape[1])
    predicted = proba.argmax(axis=1)
    with warnings.catch_warnings():
        # Classes never seen in the holdout's truth are excluded from balanced accuracy.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        metrics = {
            "accuracy": float(accuracy_score(y, predicted)),
            "balanced_accuracy": float(balanced_accuracy_score(y, predicted)),
            "log_loss": float(log_loss(y, y_proba=proba, labels=labels)),
            "error_rate": float(errors.mean()),
        }
    if task == "multiclass":
        metrics["top_5_accuracy"] = float(
            top_k_accuracy_score(y, proba, k=min(TOP_K, len(labels) - 1), labels=labels)
        )
    else:
        metrics["roc_auc"] = float(roc_auc_score(y, proba[:, 1]))
    return metrics


def row_statistics(proba: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row quantities whose means are the metrics (the bootstrap resamples these)."""
    predicted = proba.argmax(axis=1)
    k = min(TOP_K, proba.shape[1] - 1)
    # The same ordering scikit-learn's top_k_accuracy_score uses, so ties break alike.
    top = np.argsort(proba, axis=1, kind="mergesort")[:, ::-1][:, :k]
    eps = np.finfo(np.float64).eps
    p_true = np.clip(proba[np.arange(len(y)), y], eps, 1 - eps)
    return {
        "correct": (predicted == y).astype(float),
        "top_k_hit": (top == y[:, None]).any(axis=1).astype(float),
        "loss": -np.log(p_true),
    }


def bootstrap_counts(n_rows: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """How often each row is drawn in each resample: (n_bootstrap, n_rows), shared by models."""
    rng = np.random.default_rng([seed, n_rows])
    draws = rng.integers(0, n_rows, size=(n_bootstrap, n_rows))
    offsets = (np.arange(n_bootstrap) * n_rows)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=n_bootstrap * n_rows).reshape(
        n_bootstrap, n_rows).astype(np.float64)


def weighted_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of ``weights`` (resample counts), ties counted half."""
    order = np.argsort(score, kind="mergesort")
    ordered = score[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    w = weights[:, order]
    pos = positive[order].astype(bool)
    pos_w = np.add.reduceat(w * pos, starts, axis=1)
    neg_w = np.add.reduceat(w * ~pos, starts, axis=1)
    below = np.cumsum(neg_w, axis=1) - neg_w
    numerator = (pos_w * (below + 0.5 * neg_w)).sum(axis=1)
    denominator = pos_w.sum(axis=1) * neg_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return numerator / denominator


def weighted_balanced_accuracy(correct: np.ndarray, y: np.ndarray, n_classes: int,
                               weights: np.ndarray) -> np.ndarray:
    """Balanced accuracy for each row of ``weights``; classes absent from a resample skipped."""
    onehot = np.zeros((len(y), n_classes))
    onehot[np.arange(len(y)), y] = 1.0
    support = weights @ onehot
    hits = weights @ (onehot * correct[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, hits / support, np.nan)
    return np.nanmean(recall, axis=1)


def _bootstrap(proba: np.ndarray, errors: np.ndarray, y: np.ndarray, task: str,
               latencies: np.ndarray, chunks: tuple[np.ndarray, np.ndarray],
               metrics: dict[str, float], n_bootstrap: int, seed: int
               ) -> tuple[list[str], np.ndarray]:
    weights = bootstrap_counts(len(y), n_bootstrap, seed)
    n = len(y)
    stats = row_statistics(proba, y)
    columns: dict[str, np.ndarray] = {
        "accuracy": weights @ stats["correct"] / n,
        "balanced_accuracy": weighted_balanced_accuracy(stats["correct"], y, proba.shape[1],
                                                        weights),
        "log_loss": weights @ stats["loss"] / n,
        "error_rate": weights @ errors.astype(float) / n,
    }
    if task == "multiclass":
        columns["top_5_accuracy"] = weights @ stats["top_k_hit"] / n
    else:
        columns["roc_auc"] = weighted_auc(proba[:, 1], y == 1, weights)
    rng = np.random.default_rng([seed, len(latencies), 1])
    resampled = latencies[rng.integers(0, len(latencies), size=(n_bootstrap, len(latencies)))]
    columns["latency_p50_ms"] = np.percentile(resampled, 50, axis=1)
    columns["latency_p95_ms"] = np.percentile(resampled, 95, axis=1)
    chunk_seconds, chunk_rows = chunks
    picks = rng.integers(0, len(chunk_seconds), size=(n_bootstrap, len(chunk_seconds)))
    columns["throughput_rows_s"] = (chunk_rows[picks].sum(axis=1)
                                    / np.maximum(chunk_seconds[picks].sum(axis=1), 1e-9))
    for exact in ("artifact_size_mb", "load_memory_mb"):  # measured once, no sampling error
        columns[exact] = np.full(n_bootstrap, metrics[exact])
    names = [name for name in get_metric_names(task) if name in columns]
    return names, np.column_stack([columns[name] for name in names])


# --- (de)serialization -----------------------------------------------------------------------

def _to_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _from_payload(scope: Scope, entry: ModelEntry, sha: str, key: str, payload: dict[str, Any],
                  replicates: bytes | None, *, cached: bool) -> ModelEvaluation:
    if payload["status"] != "ok":
        reason = f"{scope.shown(entry.model_path)}: {payload['reason']}"
        return _failed(entry, reason, sha, key, cached=cached)
    names = tuple(payload["replicate_names"])
    reps = None
    if replicates is not None and names:
        reps = np.frombuffer(replicates, dtype=np.float32).reshape(-1, len(names))
    return ModelEvaluation(
        model_name=entry.name, model_type=entry.model_type, group=entry.group, status="ok",
        reason=None, sha256=sha, cache_key=key, metrics=dict(payload["metrics"]),
        intervals={k: (v[0], v[1]) for k, v in payload["intervals"].items()},
        replicate_names=names, replicates=reps, cached=cached,
    )


def _failed(entry: ModelEntry, reason: str, sha: str | None, key: str | None, *,
            cached: bool = False) -> ModelEvaluation:
    return ModelEvaluation(model_name=entry.name, model_type=entry.model_type,
                           group=entry.group, status="failed", reason=reason, sha256=sha,
                           cache_key=key, cached=cached)

