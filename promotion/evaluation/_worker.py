"""What runs inside an evaluation worker process (see ``_isolation`` for the caller's side).

A worker receives a scope's holdout, then measures one model file at a time, until its caller
closes the pipe or it has been idle for ``IDLE_S``. It dies with its caller: on Linux the
kernel kills it when its parent (the fork server, which exits with the caller) ends; everywhere
a thread watches for the caller to go.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from ._measure import MeasureInputs, measure_model
from ._results import Measurement

#: An idle worker exits after this long without work (the next evaluation starts a new one).
IDLE_S = 300.0
#: The worker's answer once it holds a holdout and can measure.
READY = "ready"


def serve(conn: Connection, caller: int) -> None:
    """A worker's life: take a holdout (``("inputs", MeasureInputs)``), measure each model
    sent (``("measure", index, path, sha256)``), answer each with ``(index, Measurement)``."""
    _end_with_caller(caller)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the caller, which stops us
    os.dup2(2, 1)  # what a model prints goes to stderr, never into the caller's --json output
    inputs: MeasureInputs | None = None
    while True:
        try:
            if not conn.poll(IDLE_S):
                return
            message = conn.recv()
        except (EOFError, OSError):  # the caller closed the pipe: done
            return
        if message[0] == "inputs":
            inputs = message[1]
            conn.send(READY)
        else:
            _, index, path, sha256 = message
            assert inputs is not None, "a model was sent before the holdout"
            conn.send((index, measure_anything(path, inputs, sha256)))


def measure_anything(path: Path, inputs: MeasureInputs, sha256: str) -> Measurement:
    """``measure_model``, and whatever else escapes it (in a worker, the model's doing:
    ``SystemExit``, ``KeyboardInterrupt`` raised by the model) as a failed measurement."""
    try:
        return measure_model(path, inputs, sha256)
    except BaseException as err:  # noqa: BLE001 - nothing a model raises may end the worker
        text = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        return Measurement.failed(f"measuring it raised {text}")


def _end_with_caller(caller: int) -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1  # <linux/prctl.h>: a signal for us when our parent ends
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    threading.Thread(target=_watch_caller, args=(caller,), daemon=True,
                     name="watch-caller").start()


def _watch_caller(caller: int) -> None:
    while True:
        try:
            os.kill(caller, 0)
        except ProcessLookupError:
            os._exit(1)
        except OSError:
            pass  # exists (owned by another user: not our caller, but then not gone either)
        time.sleep(1.0)
