"""Compiling the promoted members to ONNX at export, verified on the whole holdout.

Each member a converter handles (skl2onnx; onnxmltools for XGBoost and LightGBM) is converted,
run with onnxruntime on every holdout row and compared with its own ``predict_proba`` (a
regressor's ``predict``): when the largest difference is at most ``MAX_DELTA`` of the output's
scale (1 for probabilities; for predicted values the largest |native prediction| on the
holdout) the file is kept and its card names it, so the engine serves it without unpickling
anything; otherwise the member stays native and its card says why. Native models are loaded in
a worker process, never in the exporting one (as in evaluation), and each result is kept under
the native file's and the holdout's sha256: an unchanged member is compiled once, however many
exports follow.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._jsonio import dumps, write_atomic
from ..contract import EXPORT_AREA, ModelCard
from ..evaluation._isolation import _start_without_main
from ..vocabulary import is_regression

if TYPE_CHECKING:
    import pandas as pd

#: Largest |difference| from the native output a compiled member may show, as a share of the
#: output's scale: probabilities' (1), or the largest |native prediction| of a regressor on the
#: holdout. Compiled graphs compute in float32, which keeps about 7 significant digits (a
#: relative rounding of 6e-8 per operation): sums over trees, layers or features stay within
#: about 1e-6 of the scale, and a converter that gets a split or a coefficient wrong is far
#: beyond 1e-5.
MAX_DELTA = 1e-5
COMPILED = "compiled"


@dataclass(frozen=True)
class _Job:
    model_name: str
    path: Path  # the native file
    sha256: str
    models_dir: Path
    trusted_types: tuple[str, ...]
    regression: bool = False  # compared on predict (values), not predict_proba


@dataclass(frozen=True)
class _Result:
    onnx: bytes | None
    max_delta: float | None
    note: str


def compile_members(cards: list[ModelCard], models_dir: Path, features: pd.DataFrame,
                    holdout_sha256: str, *, trusted_types: tuple[str, ...] = (),
                    timeout_s: float = 600.0) -> list[ModelCard]:
    """``cards`` with their compiled files (written, verified) or the reason they stay
    native."""
    folder = Path(models_dir) / EXPORT_AREA / COMPILED / cards[0].scope
    stems = {c.model_name: f"{c.model_name}_{c.sha256[:16]}_{holdout_sha256[:12]}"
             for c in cards}
    known = {c.model_name: _cached(folder, stems[c.model_name]) for c in cards}
    jobs = [_Job(c.model_name, models_dir.parent / c.model_path, c.sha256, models_dir,
                 trusted_types, is_regression(c.task))
            for c in cards if known[c.model_name] is None]
    if jobs:
        for job, result in zip(jobs, _COMPILER.run(jobs, features, timeout_s), strict=True):
            known[job.model_name] = _keep(folder, stems[job.model_name], result)
    return [card.model_copy(update=known[card.model_name]) for card in cards]


def _fields(path: Path | None, models_dir: Path, sha256: str | None, delta: float | None,
            note: str) -> dict[str, Any]:
    shown = None if path is None else path.relative_to(models_dir.parent).as_posix()
    return {"compiled_path": shown, "compiled_sha256": sha256, "compiled_max_delta": delta,
            "compiled_note": note}


def _cached(folder: Path, stem: str) -> dict[str, Any] | None:
    """A result kept by an earlier export, if its files are whole."""
    try:
        kept = json.loads((folder / f"{stem}.json").read_text(encoding="utf-8"))
        sha256 = kept["compiled_sha256"]
        if sha256 is not None:
            onnx = folder / f"{stem}.onnx"
            if hashlib.sha256(onnx.read_bytes()).hexdigest() != sha256:
                return None
        return {key: kept[key] for key in ("compiled_path", "compiled_sha256",
                                           "compiled_max_delta", "compiled_note")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _keep(folder: Path, stem: str, result: _Result) -> dict[str, Any]:
    """Write the compiled file (when verified) and the result beside it; the card's fields."""
    models_dir = folder.parent.parent.parent
    if result.onnx is None:
        fields = _fields(None, models_dir, None, result.max_delta, result.note)
    else:
        onnx = folder / f"{stem}.onnx"
        write_atomic(onnx, result.onnx)
        fields = _fields(onnx, models_dir, hashlib.sha256(result.onnx).hexdigest(),
                         result.max_delta, result.note)
    write_atomic(folder / f"{stem}.json", dumps(fields))
    return fields


class _Compiler:
    """The worker process compiling members, kept between exports: the converters are
    imported once per process, not once per export. One export uses it at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Any = None
        os.register_at_fork(after_in_child=self._forget)  # a forked copy has no worker

    def run(self, jobs: list[_Job], features: pd.DataFrame, timeout_s: float
            ) -> list[_Result]:
        """Every job's result; a job that crashes the worker or runs past ``timeout_s``
        stays native, and so do the ones after it (the worker is then replaced)."""
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self._start()
            results: list[_Result] = []
            try:
                self._conn.send((jobs, features))
                for job in jobs:
                    if not self._conn.poll(timeout_s):
                        why = (f"compiling '{job.model_name}' took longer than {timeout_s:g} s"
                               if self._process.is_alive() else "the compiling process ended")
                        raise _Stopped(why)
                    results.append(self._conn.recv())
            except (_Stopped, EOFError, OSError) as err:
                self._stop()
                why = str(err) if isinstance(err, _Stopped) else (
                    "the compiling process ended while compiling "
                    f"'{jobs[len(results)].model_name}'")
                results += [_Result(None, None, f"stays native: {why}")] * (
                    len(jobs) - len(results))
            return results

    def _start(self) -> None:
        context = multiprocessing.get_context("forkserver")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_compile_loop, args=(child,), daemon=True)
        _start_without_main(self._process)  # the app's script must not run in it
        child.close()

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.join()
            self._conn.close()
        self._process = self._conn = None

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._process = self._conn = None


class _Stopped(Exception):
    """The worker stopped answering; the message says why."""


_COMPILER = _Compiler()


def _compile_loop(conn: Any) -> None:
    """In the worker: for each batch of jobs received, compile, verify and send each result
    in turn; end when the exporting process closes its end."""
    while True:
        try:
            jobs, features = conn.recv()
        except EOFError:
            return
        for job in jobs:
            conn.send(_compile_one(job, features))


def _compile_one(job: _Job, features: pd.DataFrame) -> _Result:
    from ..engine._align import model_columns
    from ..engine._loading import load_model_file
    from ..engine._onnx import OnnxModel, compile_model, load_onnx
    from ..engine._preprocess import fitted_input

    method = "predict" if job.regression else "predict_proba"
    try:
        native = load_model_file(job.path, job.models_dir, job.path.name,
                                 expected_sha256=job.sha256, trusted_types=job.trusted_types,
                                 needs=method).model
        if isinstance(native, OnnxModel):
            return _Result(None, None, "served from its own ONNX file")
        columns = model_columns(native, list(features.columns))
        X = features[columns]
        expected = np.asarray(getattr(native, method)(fitted_input(native, X)), dtype=float)
        classes = None if job.regression else list(np.asarray(native.classes_).tolist())
        started = time.perf_counter()
        payload = compile_model(native, columns, classes)
        seconds = time.perf_counter() - started
        compiled = load_onnx(payload, job.model_name, needs=method)
        got = np.asarray(getattr(compiled, method)(X.to_numpy(dtype=np.float32)), dtype=float)
    except Exception as err:  # the member's or the converter's failure: it stays native
        text = " ".join(str(err).split())[:300]
        return _Result(None, None, f"stays native: {text}")
    if job.regression and expected.shape == (len(X), 1):
        expected = expected[:, 0]
    if got.shape != expected.shape:
        return _Result(None, None, f"stays native: the compiled model returned shape "
                                   f"{got.shape}, the native {expected.shape}")
    return _verdict(payload, got, expected, seconds, job.regression)


def _verdict(payload: bytes, got: np.ndarray, expected: np.ndarray, seconds: float,
             regression: bool) -> _Result:
    """Keep the compiled file when it matches the native output within ``MAX_DELTA`` of the
    output's scale; the result's note says by how much, and against what limit."""
    delta = float(np.max(np.abs(got - expected)))
    scale = float(np.max(np.abs(expected))) if regression else 1.0
    limit = MAX_DELTA * scale
    what = "predicted values" if regression else "probabilities"
    bound = (f"{limit:.2g}: {MAX_DELTA:g} × the largest |prediction|, {scale:.4g}"
             if regression else f"{MAX_DELTA:g}")
    if not np.isfinite(delta) or delta > limit:
        return _Result(None, delta, f"stays native: the compiled {what} differ from the native "
                                    f"ones by up to {delta:.2g} on the holdout (more than "
                                    f"{bound})")
    return _Result(payload, delta, f"compiled to ONNX in {seconds:.1f} s; max |Δ| {delta:.1e} "
                                f"over {len(expected)} holdout rows" + (
                                    f" (limit {bound})" if regression else ""))
