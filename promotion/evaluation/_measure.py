"""Measuring one model file on a scope's holdout: load it, predict, time it, bootstrap it.

Runs in worker processes (or on a Dask cluster): everything it needs travels in
``MeasureInputs``, and what it finds comes back as one ``Measurement``.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine._align import ClassMismatch, class_positions, declared_feature_count, model_columns
from ..engine._loading import ModelLoadError, load_model_bytes, meta_classes, read_model_bytes
from ..engine._preprocess import fitted_input, load_preprocessor, take_rows, transform_features
from ..vocabulary import is_regression
from ._bootstrap import bootstrap_replicates, point_metrics, regression_point_metrics
from ._results import Measurement, RowPredictions, Timing

if TYPE_CHECKING:
    import pandas as pd

    from ..scopes._discovery import Holdout, Scope

#: The batch pass predicts in this many equal chunks: their timings give throughput its
#: bootstrap interval.
BATCH_CHUNKS = 5


@dataclass(frozen=True)
class MeasureInputs:
    """What measuring any model of a scope needs: the holdout rows and the scope's settings.

    ``y`` holds each row's class as an index into ``classes``, or for a regression task the
    target values (and ``classes`` is empty).
    """

    models_dir: Path
    features: pd.DataFrame
    y: np.ndarray
    classes: list
    task: str
    n_bootstrap: int
    seed: int
    latency_rows: int
    trusted_types: tuple[str, ...] = ()

    @property
    def regression(self) -> bool:
        return is_regression(self.task)

    @property
    def method(self) -> str:
        """The model method measured: ``predict`` for regression, else ``predict_proba``."""
        return "predict" if self.regression else "predict_proba"

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def of(cls, scope: Scope, holdout: Holdout, preprocessor_sha256: str | None = None
           ) -> MeasureInputs:
        """The scope's inputs; its preprocessor, if any, applied here once for every model
        (refused unless its bytes hash to ``preprocessor_sha256``, when given)."""
        cfg = scope.config
        features = model_features(scope, holdout.features, preprocessor_sha256)
        y = holdout.y if holdout.is_regression else holdout.y_index
        return cls(models_dir=scope.models_dir, features=features,
                   y=y, classes=list(holdout.classes), task=cfg.task,
                   n_bootstrap=cfg.n_bootstrap, seed=cfg.bootstrap_seed,
                   latency_rows=cfg.latency_rows, trusted_types=tuple(cfg.trusted_types))


def model_features(scope: Scope, features: pd.DataFrame, expected_sha256: str | None = None
                   ) -> pd.DataFrame:
    """What every model of ``scope`` takes: the raw feature columns, or the output of the
    scope's preprocessor on them (loaded with a model file's checks: the version the results
    are stored under, ``expected_sha256``)."""
    path = scope.preprocessor_path
    if path is None:
        return features
    shown = f"{scope.shown(path)} (scope.json field 'preprocessor')"
    preprocessor = load_preprocessor(path, scope.models_dir, shown,
                                     expected_sha256=expected_sha256, what="hashed",
                                     trusted_types=scope.config.trusted_types).model
    return transform_features(preprocessor, features, shown)


@dataclass(frozen=True)
class _Batch:
    """The batch pass: every row's output (class probabilities, or predicted values), and
    each chunk's rows and seconds."""

    output: np.ndarray
    errors: np.ndarray
    chunk_seconds: np.ndarray
    chunk_rows: np.ndarray


class _ModelProblem(Exception):
    """A model that cannot be measured; the message is shown as the failure reason."""


def measure_model(path: Path, inputs: MeasureInputs, expected_sha256: str | None = None
                  ) -> Measurement:
    """Load one model file and measure it.

    Never raises for a bad model: the measurement then has the reason. The file must stay
    inside ``inputs.models_dir`` and hash to ``expected_sha256`` (the version the result is
    stored under) before anything is loaded.
    """
    started = time.perf_counter()
    try:
        payload = read_model_bytes(path, inputs.models_dir, path.name, expected_sha256,
                                   "hashed")
    except ModelLoadError as err:
        return Measurement.failed(err.detail, transient=True)
    try:
        model, load_seconds, load_peak = _load(payload, path.name, inputs.trusted_types,
                                                meta_classes(path), inputs.method)
        frame = inputs.features[_model_columns(model, inputs.features)]
        X = fitted_input(model, frame)
        if inputs.regression:
            _refuse_classifier(model)
            batch = _predict_values(model, X, frame)
        else:
            batch = _predict_batch(model, X, _class_positions(model, inputs.classes),
                                   inputs.n_classes, frame)
        latency_started = time.perf_counter()
        latencies = _time_single_rows(getattr(model, inputs.method), X, inputs.latency_rows,
                                      inputs.seed)
        latency_seconds = time.perf_counter() - latency_started
    except _ModelProblem as problem:
        return Measurement.failed(str(problem))
    except SystemExit as exit_:  # a model that asks to end the process it runs in
        return Measurement.failed(f"the model raised SystemExit({exit_.code!r})")
    batch_seconds = float(batch.chunk_seconds.sum())
    metrics = (regression_point_metrics(batch.output, batch.errors, inputs.y)
               if inputs.regression
               else point_metrics(batch.output, batch.errors, inputs.y, inputs.task))
    metrics.update(
        latency_p50_ms=float(np.percentile(latencies, 50)),
        latency_p95_ms=float(np.percentile(latencies, 95)),
        throughput_rows_s=len(X) / max(batch_seconds, 1e-9),
        artifact_size_mb=path.stat().st_size / 1e6,
        load_memory_mb=load_peak / 1e6,
    )
    replicates = bootstrap_replicates(
        batch.output, batch.errors, inputs.y, inputs.task, latencies=latencies,
        chunk_seconds=batch.chunk_seconds, chunk_rows=batch.chunk_rows, exact=metrics,
        n_bootstrap=inputs.n_bootstrap, seed=inputs.seed)
    return Measurement(
        metrics=metrics, intervals=replicates.intervals(), replicate_names=replicates.names,
        # float32: what the cache keeps, so a fresh result ranks exactly like a cached one.
        replicates=replicates.values.astype(np.float32),
        rows=RowPredictions(batch.output, batch.errors),
        timing=Timing(load_s=load_seconds, batch_s=batch_seconds, latency_s=latency_seconds,
                      evaluation_s=time.perf_counter() - started),
    )


def _load(payload: bytes, file_name: str, trusted_types: tuple[str, ...],
          classes: list | None, method: str) -> tuple[Any, float, int]:
    """The model, its load time and the peak memory its loading allocates.

    A first, untimed load imports whatever the file needs, so the measured second load
    counts the model's own memory, not the libraries a process happened not to have yet.
    """
    try:
        load_model_bytes(payload, file_name, file_name, trusted_types, classes, needs=method)
        started = time.perf_counter()
        tracemalloc.start()
        try:
            model = load_model_bytes(payload, file_name, file_name, trusted_types, classes,
                                     needs=method)
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
    except Exception as err:  # the model's own attribute: whatever it holds is its problem
        shown = _attribute_text(model, "feature_names_in_")
        raise _ModelProblem(f"feature_names_in_ is not a list of column names ({shown}): "
                            f"{_one_line(err)}") from None
    try:
        n_expected = declared_feature_count(model)
        wrong = n_expected is not None and int(n_expected) != len(columns)
    except Exception as err:
        raise _ModelProblem(f"n_features_in_ is not a number of columns: {_one_line(err)}"
                            ) from None
    if wrong:
        raise _ModelProblem(f"wrong features: the model takes {n_expected} columns, the "
                            f"holdout has {len(columns)}")
    return columns


def _class_positions(model: Any, classes: list) -> np.ndarray:
    try:
        return class_positions(model, classes)
    except ClassMismatch as err:
        raise _ModelProblem(str(err)) from None
    except Exception as err:  # e.g. a classes_ property that raises
        raise _ModelProblem(f"reading classes_ raised {_one_line(err)}") from None


def _attribute_text(model: Any, name: str) -> str:
    """A model attribute, shown briefly (reading it may itself fail)."""
    try:
        return _one_line(repr(getattr(model, name)), 60)
    except Exception:
        return "unreadable"


def _one_line(value: object, limit: int = 300) -> str:
    """An exception (as ``Type: message``) or a text on one line, cut to ``limit`` characters:
    a failure reason is one line of a table."""
    text = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _refuse_classifier(model: Any) -> None:
    """A classifier's ``predict`` gives labels, not quantities: measuring it in a regression
    scope would rank nonsense. A model is taken at its word when it declares its kind
    (scikit-learn's estimator tags; CatBoost's regressor declares itself one yet has
    ``classes_``); otherwise ``classes_`` marks a classifier."""
    kind = _declared_kind(model)
    if kind == "regressor":
        return
    if kind == "classifier" or hasattr(model, "classes_"):
        raise _ModelProblem(f"holds a classifier ({type(model).__name__}); scope.json field "
                            "'task' says regression")


def _declared_kind(model: Any) -> str | None:
    """``classifier``, ``regressor`` or None, as the model's estimator tags say."""
    try:
        from sklearn.utils import get_tags

        return get_tags(model).estimator_type
    except Exception:  # not a scikit-learn estimator: it may still say so the old way
        kind = getattr(model, "_estimator_type", None)
        return kind if isinstance(kind, str) else None


def _call_in_chunks(call: Callable[[Any], Any], X: pd.DataFrame | np.ndarray,
                    width: int | None, frame: pd.DataFrame
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``call`` (the model's predict_proba, or predict when ``width`` is None) on every row,
    in a few equal chunks: (output, seconds per chunk, chunk bounds). A failing chunk is
    retried row by row; a failing row is NaN. ``frame`` is ``X`` as a frame (to name the
    columns a failure may come from)."""
    bounds = np.linspace(0, len(X), min(BATCH_CHUNKS, len(X)) + 1).astype(int)
    raw = np.empty((len(X),) if width is None else (len(X), width))
    seconds = np.empty(len(bounds) - 1)
    for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        chunk = take_rows(X, slice(start, stop))
        started = time.perf_counter()
        try:
            out = _shaped(call, np.asarray(call(chunk), dtype=float), len(chunk), width)
            seconds[i] = time.perf_counter() - started
        except _ModelProblem:
            raise
        except Exception:  # find the rows that fail, one by one
            out, seconds[i] = _predict_row_by_row(call, chunk, width, frame.iloc[start:stop])
        raw[start:stop] = out
    return raw, seconds, bounds


def _shaped(call: Callable[[Any], Any], out: np.ndarray, rows: int, width: int | None
            ) -> np.ndarray:
    """``out`` as (rows,) values or (rows, width) probabilities; any other shape is the
    model's problem, named."""
    expected = (rows,) if width is None else (rows, width)
    if width is None and out.shape == (rows, 1):  # one output column: the values
        out = out[:, 0]
    if out.shape != expected:
        raise _ModelProblem(f"{call.__name__} returned shape {out.shape}, expected {expected}")
    return out


def _predict_values(model: Any, X: pd.DataFrame | np.ndarray, frame: pd.DataFrame) -> _Batch:
    """Every row's predicted value (regression). A row the model failed on (it raised, or
    gave NaN or an infinite value) counts in ``error_rate`` and is scored as the model's
    mean prediction: a guess with no skill, penalized, never dropped."""
    values, seconds, bounds = _call_in_chunks(model.predict, X, None, frame)
    errors = ~np.isfinite(values)
    if errors.all():
        raise _ModelProblem("predict returned no finite value on any holdout row (each row "
                            "raised, or gave NaN or infinite values)")
    values[errors] = values[~errors].mean()
    return _Batch(values, errors, seconds, np.diff(bounds))


def _predict_batch(model: Any, X: pd.DataFrame | np.ndarray, class_index: np.ndarray,
                   n_classes: int, frame: pd.DataFrame) -> _Batch:
    """Class probabilities of every row (see ``_call_in_chunks``)."""
    raw, seconds, bounds = _call_in_chunks(model.predict_proba, X, len(class_index), frame)
    proba = np.zeros((len(X), n_classes))
    proba[:, class_index] = raw
    with np.errstate(over="ignore", invalid="ignore"):
        sums = proba.sum(axis=1)
    # A row that is no distribution (NaN or infinite values, a negative one, nothing above 0)
    # is a failed row; a row of non-negative values with a positive sum is divided by its sum.
    errors = (~np.isfinite(proba).all(axis=1) | (proba < 0).any(axis=1)
              | ~(np.isfinite(sums) & (sums > 0)))
    if errors.all():
        raise _ModelProblem("predict_proba returned no probabilities on any holdout row (each "
                            "row raised, or held NaN, infinite or negative values, or only "
                            "zeros)")
    # A failed row counts as a uniform guess: it is penalized, never silently dropped.
    proba[errors] = 1.0 / n_classes
    proba /= proba.sum(axis=1, keepdims=True)
    return _Batch(proba, errors, seconds, np.diff(bounds))


def _predict_row_by_row(call: Callable[[Any], Any], X: pd.DataFrame | np.ndarray,
                        width: int | None, frame: pd.DataFrame) -> tuple[np.ndarray, float]:
    out = np.full((len(X),) if width is None else (len(X), width), np.nan)
    raised = np.zeros(len(X), dtype=bool)
    first_error: Exception | None = None
    started = time.perf_counter()
    for i in range(len(X)):
        try:
            out[i] = _shaped(call, np.asarray(call(take_rows(X, [i])), dtype=float), 1,
                             width)[0]
        except Exception as err:
            first_error = first_error or err
            raised[i] = True
    if first_error is None:
        return out, time.perf_counter() - started
    # A model that cannot take missing values fails exactly on the rows that have them: it
    # is a failed model naming the columns, not a model with a few failed rows.
    with_missing = frame.isna().any(axis=1).to_numpy()
    if np.isnan(out).all() or with_missing[raised].all():
        where = "" if raised.all() else f" on the {int(raised.sum())} rows with missing values"
        raise _ModelProblem(f"{call.__name__} fails{where}: {_one_line(first_error)}"
                            f"{_data_hint(frame)}")
    return out, time.perf_counter() - started


def _data_hint(frame: pd.DataFrame) -> str:
    """The columns a model unable to take real data may have failed on: text categories and
    missing values (a failure reason names them, so the team knows what to encode or fill)."""
    import pandas as pd

    said = [f"column '{c}' holds text" for c in frame.columns
            if not pd.api.types.is_numeric_dtype(frame[c])]
    missing = frame.isna().sum()
    said += [f"column '{c}' has {int(n)} missing value(s)" for c, n in missing.items() if n]
    if not said:
        return ""
    more = f" (and {len(said) - 3} more)" if len(said) > 3 else ""
    return (f". Hint: {'; '.join(said[:3])}{more}; a pipeline with an imputer and an encoder "
            "takes them")


def _time_single_rows(call: Callable[[Any], Any], X: pd.DataFrame | np.ndarray, count: int,
                      seed: int) -> np.ndarray:
    """``count`` single-row calls of ``call`` (the model's predict_proba or predict), in ms."""
    rows = np.random.default_rng(seed).permutation(len(X))[:count]
    singles = [take_rows(X, [i]) for i in rows]  # built before timing: only the model is timed
    _quietly(call, singles[0])  # warm-up
    timings = np.empty(len(singles))
    for i, single in enumerate(singles):
        started = time.perf_counter_ns()
        _quietly(call, single)
        timings[i] = (time.perf_counter_ns() - started) / 1e6
    return timings


def _quietly(func: Callable[[Any], Any], arg: Any) -> None:
    try:
        func(arg)
    except Exception:  # failing rows are counted in error_rate by the batch pass
        pass
