"""Measuring every model of a scope on its holdout, in parallel, cached in the store.

Point estimates come from scikit-learn's metric functions, their 95% intervals from a paired
bootstrap (``_bootstrap``); one model is measured by ``_measure``, and results are kept in the
store's cache (``_cache``) under the model file's, the holdout's and the settings' hashes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..scopes._discovery import Holdout, ModelEntry, Scope, file_sha256
from ..settings import setting
from ._cache import (
    CachedMeasurement,
    cache_key,
    preprocessor_sha256,
    read_cached,
    settings_fingerprint,
    write_cached,
)
from ._isolation import ModelTask, measure_isolated
from ._measure import MeasureInputs, measure_model
from ._results import HoldoutSummary, Measurement, ModelEvaluation, Progress, ScopeEvaluation

if TYPE_CHECKING:
    import joblib

    from ..store._abstract import Store

#: Environment setting: a Dask scheduler address sends evaluation to that cluster.
DASK_SCHEDULER_SETTING = "PROMOTION_DASK_SCHEDULER"


@dataclass(frozen=True)
class _Job:
    """One model file to look up in the cache, or to measure: its version and its key."""

    entry: ModelEntry
    sha256: str
    key: str


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

    preprocessor = preprocessor_sha256(scope)  # the version loaded, if anything is measured
    fingerprint = settings_fingerprint(scope, preprocessor)
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

    def lookup(sha: str) -> tuple[list[_Job], dict[str, CachedMeasurement]]:
        """Each model with its cache key for holdout ``sha``, and the entries found."""
        jobs = [_Job(entry, model_sha, cache_key(model_sha, sha, _with_classes(fingerprint,
                                                                              entry)))
                for entry, model_sha in hashed]
        found = read_cached(store, [job.key for job in jobs])
        # A timeout is kept: measuring a hanging model again would make every command wait
        # the whole limit again. Under a lower limit than today's it proves nothing: measure.
        limit = scope.config.model_timeout_s
        return jobs, {key: entry for key, entry in found.items()
                      if not entry.measurement.timed_out_below(limit)}

    jobs, cached = lookup(holdout_sha)
    summary = next((found.holdout for found in cached.values()), None)
    if summary is None or any(job.key not in cached for job in jobs):
        if rows().sha256 != holdout_sha:  # rewritten since it was hashed: key on what was read
            holdout_sha = rows().sha256
            jobs, cached = lookup(holdout_sha)
        summary = HoldoutSummary.of(rows())
    todo = [job for job in jobs if job.key not in cached]
    total = len(scope.models)
    for job in jobs:
        if job.key in cached:
            results[job.entry.name] = _evaluation(scope, job, cached[job.key].measurement,
                                                  cached=True)
    done = len(results)
    if progress:
        for name in results:
            progress(done, total, name, True)
    # Closed on the way out even when a progress callback raises (the app stopping a run):
    # that ends the worker processes at once.
    with closing(_run_parallel(todo, scope, rows, n_jobs, preprocessor)) as measured_now:
        for job, measured in measured_now:
            # A failure of the model is kept like a success: the same file fails the same way.
            # Transient ones are not: the file changed under us, or the process measuring it
            # was killed from outside (_isolation says which crashes are the model's).
            if not measured.transient:
                write_cached(store, job.key, job.sha256, holdout_sha, measured, summary)
            results[job.entry.name] = _evaluation(scope, job, measured, cached=False)
            done += 1
            if progress:
                progress(done, total, job.entry.name, False)
    return ScopeEvaluation(
        scope=scope.name, task=scope.task, classes=list(summary.classes),
        n_rows=summary.n_rows, holdout_sha256=holdout_sha, chance=summary.chance_levels(),
        models=[results[entry.name] for entry in scope.models],
        evaluated=len(todo), seconds=time.perf_counter() - started,
    )


def _with_classes(fingerprint: str, entry: ModelEntry) -> str:
    """The settings fingerprint, plus meta.json's ``classes`` when they name a booster's
    output columns: relabelling them changes what is measured."""
    declared = entry.meta.classes if entry.meta else None
    return fingerprint if declared is None else f"{fingerprint}|{declared!r}"


def _holdout_sha256(scope: Scope, rows: Callable[[], Holdout]) -> str:
    """The holdout file's sha256; a missing or unreadable file is read for its message."""
    try:
        return file_sha256(scope.holdout_path)
    except OSError:
        return rows().sha256  # raises the holdout's own clear message


def _evaluation(scope: Scope, job: _Job, measured: Measurement, *, cached: bool
                ) -> ModelEvaluation:
    entry = job.entry
    if not measured.ok:
        # A transient failure is not stored, so no key leads to it.
        key = None if measured.transient else job.key
        return _failed(entry, f"{scope.shown(entry.model_path)}: {measured.reason}",
                       job.sha256, key, cached=cached)
    return ModelEvaluation(
        model_name=entry.name, model_type=entry.model_type, group=entry.group, status="ok",
        reason=None, sha256=job.sha256, cache_key=job.key, metrics=measured.metrics,
        intervals=measured.intervals, replicate_names=measured.replicate_names,
        replicates=measured.replicates, cached=cached, model_file=entry.model_file,
    )


def _failed(entry: ModelEntry, reason: str, sha: str | None, key: str | None, *,
            cached: bool = False) -> ModelEvaluation:
    return ModelEvaluation(model_name=entry.name, model_type=entry.model_type,
                           group=entry.group, status="failed", reason=reason, sha256=sha,
                           cache_key=key, cached=cached)


# --- running ---------------------------------------------------------------------------------

def _run_parallel(todo: list[_Job], scope: Scope, holdout: Callable[[], Holdout],
                  n_jobs: int, preprocessor: str | None
                  ) -> Iterator[tuple[_Job, Measurement]]:
    """Each job with its measurement, as models finish (fastest first).

    Always in worker processes, one model at a time each, even with one job or one CPU: a
    model that exits, crashes or hangs then ends its worker, never the caller (the app's
    server, a command); and tracemalloc, which traces a whole process, counts only the model.
    """
    if not todo:
        return  # everything came from the cache
    inputs = MeasureInputs.of(scope, holdout(), preprocessor)
    if setting(DASK_SCHEDULER_SETTING):
        import joblib  # here: a served leaderboard reads the cache and never needs it

        calls = (joblib.delayed(_measure_tagged)(i, job, inputs) for i, job in enumerate(todo))
        with _dask_backend() as parallel:
            for index, measured in parallel(calls):
                yield todo[index], measured
        return
    tasks = [ModelTask(job.entry.name, job.entry.model_path, job.sha256) for job in todo]
    with closing(measure_isolated(tasks, inputs, workers=_worker_count(n_jobs),
                                  timeout_s=scope.config.model_timeout_s)) as measured_now:
        for index, measured in measured_now:
            yield todo[index], measured


def _worker_count(n_jobs: int) -> int:
    """Worker processes for ``n_jobs`` (joblib's convention: -1 is every CPU this process
    may use, affinity and container limits included)."""
    if n_jobs > 0:
        return n_jobs
    import joblib

    return max(1, joblib.cpu_count() + 1 + n_jobs)


def _measure_tagged(index: int, job: _Job, inputs: MeasureInputs) -> tuple[int, Measurement]:
    """``measure_model`` in a worker; the index says which job finished (any order)."""
    return index, measure_model(job.entry.model_path, inputs, job.sha256)


@contextmanager
def _dask_backend() -> Iterator[joblib.Parallel]:
    """The Dask cluster named by ``PROMOTION_DASK_SCHEDULER``.

    Dask workers read the model files by path, so they must see the models root at the same
    path (one machine, or a shared file system).
    """
    import joblib

    address = setting(DASK_SCHEDULER_SETTING)
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
