"""Small helpers for the benchmarks: timing, CPU use per core, result files."""

from __future__ import annotations

import json
import platform
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


def _cpu_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies per core from /proc/stat."""
    cores = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3].isdigit():
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]
            cores.append((sum(values) - idle, sum(values)))
    return cores


@contextmanager
def core_usage() -> Iterator[dict[str, Any]]:
    """Measure how busy each core was during the block (fractions 0..1)."""
    report: dict[str, Any] = {}
    before = _cpu_times()
    started = time.perf_counter()
    yield report
    after = _cpu_times()
    report["seconds"] = time.perf_counter() - started
    report["core_busy"] = [
        round((b1 - b0) / max(t1 - t0, 1), 3)
        for (b0, t0), (b1, t1) in zip(before, after, strict=True)
    ]


def timed(func: Callable[[], Any], repeat: int) -> list[float]:
    """Wall seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"median_s": statistics.median(ordered), "min_s": ordered[0],
            "p95_s": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "runs": len(ordered)}


def record(name: str, result: dict[str, Any]) -> None:
    """Merge one benchmark's result into bench/results.json."""
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[name] = {**result, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "machine": f"{platform.machine()}, {len(_cpu_times())} cores"}
    RESULTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def promoted_digits(prefix: str, members: tuple[str, ...], reason: str
                    ) -> tuple[Path, Any]:
    """A fresh demo ``digits`` scope with ``members`` promoted (gates overridden, recorded);
    returns its models root and open store."""
    import tempfile

    from demo import build_demo_zoo
    from promotion.store import open_store
    from promotion.usecases import change_stage

    root = Path(tempfile.mkdtemp(prefix=prefix)) / "models"
    build_demo_zoo(root, scopes=("digits",), progress=lambda _: None)
    store = open_store(root)
    for name in members:
        change_stage(root, "digits", store, name, "production", actor="bench",
                               reason=reason, override=True)
    return root, store


class Sampler(threading.Thread):
    """Samples per-core busy fractions every ``interval`` seconds until stopped."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[list[float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        previous = _cpu_times()
        while not self._stop_event.wait(self.interval):
            current = _cpu_times()
            self.samples.append([
                (b1 - b0) / max(t1 - t0, 1)
                for (b0, t0), (b1, t1) in zip(previous, current, strict=True)
            ])
            previous = current

    def stop(self) -> list[list[float]]:
        self._stop_event.set()
        self.join()
        return self.samples


def run_promotion(args: list[str], code: Path) -> tuple[int, str, str, float, float]:
    """``python -m promotion *args`` from the source tree ``code`` (the store's URL unset):
    exit status, stdout, stderr, wall seconds, and the peak RSS in MB of that process alone
    (``wait4``: not the largest of every child so far, as ``getrusage`` would give)."""
    import os
    import subprocess
    import sys
    import tempfile

    env = {k: v for k, v in os.environ.items() if k != "PROMOTION_DB_URL"}
    env["PYTHONPATH"] = str(code)
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", "promotion", *args], cwd=code,
                                   env=env, stdout=out_file, stderr=err_file)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read().decode(), err_file.read().decode()
    return (os.waitstatus_to_exitcode(status), out, err, seconds,
            round(usage.ru_maxrss / 1024, 1))


def app_process(root: Path, port: int) -> Any:
    """``streamlit run app.py`` on ``root`` (its SQLite store) at 127.0.0.1:``port``, as the
    README's command starts it; the caller waits for its health and stops it."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMOTION_MODELS_DIR": str(root), "PROMOTION_USER": "bench"}
    env.pop("PROMOTION_DB_URL", None)
    project = Path(__file__).resolve().parent.parent
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(project / "app.py"), "--server.port",
         str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
         "--browser.gatherUsageStats", "false"],
        cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
