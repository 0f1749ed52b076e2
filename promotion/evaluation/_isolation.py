"""Measuring models in worker processes: whatever a model does to its process (exit, crash,
hang), the caller keeps running and the model gets one failed row.

Workers are forked from multiprocessing's fork server, which imports the measuring code and
its libraries once per calling process: a new worker costs a fork, not an interpreter start.
A worker measures one model at a time, so a crash or a timeout is always the model it was
running; that worker is then replaced. Between evaluations, workers wait idle (up to
``_worker.IDLE_S``) for the next one, which then does not import the models' libraries again.

No worker outlives its caller: an evaluation stops the workers it was running models on when
it ends early (an error, Ctrl-C, the app stopping a run), idle ones are stopped at exit, and if
the caller dies (SIGTERM, SIGKILL) the fork server sees its pipe close and exits, and the
kernel kills the workers with it (``_worker``).
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from ..errors import WorkerStartError
from ._measure import MeasureInputs
from ._results import Measurement
from ._worker import READY, serve

#: Imported by the fork server once, so that every worker starts with them loaded.
_PRELOAD = ["promotion.evaluation._worker", "numpy", "pandas", "joblib", "sklearn.metrics"]
#: Signals a process raises on itself when its own code faults: the model's doing, cached like
#: any failure of the model. Any other signal came from outside (the kernel's out-of-memory
#: killer, an operator), which says nothing about the model: it is measured again next time.
_CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE,
                            signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS})
#: How long a worker told to stop may take before it is killed.
_STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class ModelTask:
    """One model file to measure: its name (for messages), path and expected sha256."""

    name: str
    path: Path
    sha256: str


def measure_isolated(tasks: Sequence[ModelTask], inputs: MeasureInputs, *, workers: int,
                     timeout_s: float) -> Iterator[tuple[int, Measurement]]:
    """Measure every task in at most ``workers`` worker processes; yields (index of the task,
    its measurement) as each finishes. A model still running after ``timeout_s`` is stopped."""
    pending = deque(range(len(tasks)))
    pool: list[_Worker] = []
    try:
        while pending or any(worker.task is not None for worker in pool):
            while pending and len(pool) < min(workers, len(tasks)):
                pool.append(_IDLE.take(inputs))
            for worker in pool:
                if worker.ready and worker.task is None and pending:
                    index = pending.popleft()
                    if not worker.give(index, tasks[index], timeout_s):
                        pending.appendleft(index)  # its worker is gone: the next one takes it
            deadlines = [w.deadline for w in pool if w.deadline is not None]
            wait_s = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            wait([handle for worker in pool for handle in worker.handles()], wait_s)
            for worker in list(pool):
                outcome = worker.check(tasks, timeout_s)
                if outcome is not None:
                    yield outcome
                if not worker.alive:
                    pool.remove(worker)
    finally:
        busy = [worker for worker in pool if worker.task is not None]
        _stop(busy)  # ended early: what they run is abandoned
        _IDLE.put([worker for worker in pool if worker not in busy])


class _Worker:
    """One worker process and the model it is measuring, if any."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.conn, child_end = context.Pipe()
        self.process: Any = context.Process(target=serve, args=(child_end, os.getpid()),
                                            name="promotion-evaluation")
        _start_without_main(self.process)
        child_end.close()
        self.fresh = True  # has never measured: dying before it is ready is a real problem
        self.alive = True
        self.broken = False  # its pipe closed: it is ending (or a model closed the pipe)
        self.ready = False
        self.task: int | None = None
        self.deadline: float | None = None

    def prepare(self, inputs: MeasureInputs) -> None:
        """Send the holdout; the worker answers READY when it can measure."""
        self.ready = False
        try:
            self.conn.send(("inputs", inputs))
        except OSError:  # it exited (idle too long) just now: check() replaces it
            self.broken = True

    def handles(self) -> list[Any]:
        return [self.process.sentinel] if self.broken else [self.conn, self.process.sentinel]

    def give(self, index: int, task: ModelTask, timeout_s: float) -> bool:
        """Start measuring ``task``; False if the worker was gone before it got it."""
        try:
            self.conn.send(("measure", index, task.path, task.sha256))
        except OSError:  # killed while idle: that says nothing about this model
            self.broken = True
            return False
        self.task, self.deadline = index, time.monotonic() + timeout_s
        return True

    def check(self, tasks: Sequence[ModelTask], timeout_s: float
              ) -> tuple[int, Measurement] | None:
        """What happened since the last look: a model measured, or its worker gone."""
        if not self.broken:
            try:
                if self.conn.poll():
                    message = self.conn.recv()
                    if message == READY:
                        self.ready = True
                        return None
                    self.task = self.deadline = None
                    self.fresh = False
                    return message
            except (EOFError, OSError):  # the worker is ending; its exit code says how
                self.broken = True
        if self.process.exitcode is None:
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return self._timed_out(tasks, timeout_s)
            return None
        self.alive = False
        self.process.join()
        if self.task is not None:
            return self.task, _died(tasks[self.task].name, self.process.exitcode)
        if self.fresh and not self.ready:
            raise WorkerStartError(
                f"an evaluation worker process could not start (exit code "
                f"{self.process.exitcode}); its error is printed above. Hint: check that "
                "promotion and the models' libraries import in a fresh Python")
        return None  # an idle worker that exited (idle too long, or stopped from outside)

    def _timed_out(self, tasks: Sequence[ModelTask], timeout_s: float
                   ) -> tuple[int, Measurement]:
        assert self.task is not None
        self.process.kill()
        self.process.join()
        self.alive = False
        name = tasks[self.task].name
        return self.task, Measurement.failed(
            f"model '{name}' did not finish within {timeout_s:g} s (scope.json field "
            "'model_timeout_s')", timeout_s=timeout_s)


def _died(name: str, exitcode: int) -> Measurement:
    """The failure of a model whose worker ended while measuring it."""
    if exitcode >= 0:
        return Measurement.failed(f"model '{name}' ended the process measuring it (exit code "
                                  f"{exitcode})")
    number = -exitcode
    shown = signal.Signals(number).name if number in signal.valid_signals() else str(number)
    if number in _CRASH_SIGNALS:
        return Measurement.failed(f"model '{name}' crashed the process measuring it ({shown})")
    return Measurement.failed(
        f"the process measuring model '{name}' was killed from outside ({shown}: out of "
        "memory, or stopped by someone); it is measured again next time", transient=True)


class _IdleWorkers:
    """This process's workers between evaluations (the app evaluates scope after scope)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the app's sessions evaluate in parallel threads
        self._workers: list[_Worker] = []
        self._context: multiprocessing.context.BaseContext | None = None

    def take(self, inputs: MeasureInputs) -> _Worker:
        """An idle worker, or a new one, given ``inputs``."""
        with self._lock:
            context = self._context or self._start()
            while self._workers:
                worker = self._workers.pop()
                if worker.process.exitcode is None:
                    break
                _stop([worker])  # exited while idle
            else:
                worker = None
        worker = worker or _Worker(context)
        worker.prepare(inputs)
        return worker

    def put(self, workers: list[_Worker]) -> None:
        """Keep ``workers`` (all idle) for the next evaluation; as many as there are CPUs."""
        keep = [w for w in workers if w.alive and not w.broken]
        with self._lock:
            room = max(0, (os.cpu_count() or 1) - len(self._workers))
            self._workers += keep[:room]
        _stop([w for w in workers if w not in keep[:room]])

    def stop_all(self) -> None:
        with self._lock:
            workers, self._workers = self._workers, []
        _stop(workers)

    def _start(self) -> multiprocessing.context.BaseContext:
        if "forkserver" in multiprocessing.get_all_start_methods():
            self._context = multiprocessing.get_context("forkserver")
            self._context.set_forkserver_preload(_PRELOAD)  # read when the server starts
        else:  # e.g. Windows
            self._context = multiprocessing.get_context("spawn")
        # Multiprocessing's own exit handler would wait for idle workers to time out.
        atexit.register(self.stop_all)
        # A forked copy of this process must not talk to this process's workers.
        os.register_at_fork(after_in_child=self._forget)
        return self._context

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._workers = []


_IDLE = _IdleWorkers()


def _stop(workers: list[_Worker]) -> None:
    """End ``workers``: busy ones are killed, idle ones told to go (their pipe closes)."""
    for worker in workers:
        if worker.task is not None:
            worker.process.kill()
        worker.conn.close()
    for worker in workers:
        worker.process.join(_STOP_GRACE_S)
        if worker.process.exitcode is None:
            worker.process.kill()
            worker.process.join()


def _start_without_main(process: Any) -> None:
    """Start ``process`` without running the caller's main script in it.

    A new process re-imports ``__main__`` by its path unless it is a module run with ``-m``;
    in the app that path is app.py (Streamlit makes each run's script ``__main__``), which
    must not run in a worker. The workers need nothing from it, so it is hidden while the
    process starts (under a lock: another thread may be starting workers too).
    """
    with _MAIN_SWAP:
        saved = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            process.start()
        finally:
            sys.modules["__main__"] = saved


_MAIN_SWAP = threading.Lock()
