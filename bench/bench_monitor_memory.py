"""Peak memory of ``python -m promotion monitor`` on a ~400 MB prediction log (issue 18).

Builds the demo ``digits`` scope with three members exported in champion mode (every model
scores every row and is logged), serves holdout rows through the engine in batches of 10,000
until the log (with every outcome joined) holds about ``--size-mb``, then runs ``monitor`` in
a fresh process and reads that process's peak resident memory from ``wait4``.

    .venv/bin/python bench/bench_monitor_memory.py                  # build, then measure
    .venv/bin/python bench/bench_monitor_memory.py --root DIR       # measure a built log again
    .venv/bin/python bench/bench_monitor_memory.py --root DIR --code OTHER_TREE

``--code`` runs ``monitor`` from another source tree (e.g. ``git archive HEAD | tar -x -C
OTHER_TREE``) on the same log, to compare before and after a change. Not run by run_all.py:
building the log takes a few minutes.

Measured on 2 shared cores, a 396 MB log of 788,177 requests (three members, 64 features, ten
classes), the same output both times: reading the whole log, peak RSS 1,633 MB in 44 s;
streamed (issue 18), 493 MB in 10 s. About 210 MB of either is the interpreter with pandas,
scikit-learn and pyarrow loaded.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _util import run_promotion  # noqa: E402

MEMBERS = ("xgboost", "mlp_large", "logistic_regression")
SCOPE = "digits"
BATCH_ROWS = 10_000
CALIBRATION_REQUESTS = 50_000
DAYS = 8.0


def log_bytes(root: Path) -> int:
    """The log's size on disk: the database file and its write-ahead file."""
    from promotion.engine import log_path

    path = log_path(root, SCOPE)
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal"))
               if p.exists())


def serve(root: Path, start: int, count: int, finish: float, total: int) -> None:
    """Serve requests ``start`` .. ``start + count`` (holdout rows drawn with replacement),
    their times spread over the ``DAYS`` before ``finish``, then join their outcomes."""
    import numpy as np
    import pandas as pd

    from promotion.engine import PredictionEngine
    from promotion.monitoring import record_outcomes

    holdout = pd.read_csv(root / SCOPE / "holdout.csv")
    features, target = holdout.drop(columns="digit"), holdout["digit"].astype(str)
    rng = np.random.default_rng(start)
    engine = PredictionEngine.load(SCOPE, root)
    ids: list[str] = []
    labels: list[str] = []
    try:
        for first in range(start, start + count, BATCH_ROWS):
            rows = min(BATCH_ROWS, start + count - first)
            picked = rng.integers(0, len(holdout), size=rows)
            batch_ids = [f"{i:032x}" for i in range(first, first + rows)]
            times = finish - DAYS * 86400 * (1 - np.arange(first, first + rows) / total)
            engine.serve(features.iloc[picked].reset_index(drop=True), batch_ids, times=times)
            ids += batch_ids
            labels += target.iloc[picked].tolist()
    finally:
        engine.close()
    record_outcomes(root, SCOPE, pd.DataFrame({"request_id": ids, "label": labels}),
                    source="bench")


def build(size_mb: float) -> Path:
    """A models root whose digits log holds about ``size_mb`` with every outcome joined."""
    from _util import promoted_digits

    from promotion.engine import log_path
    from promotion.usecases import change_stage, deploy

    root, store = promoted_digits("bench-monitor-memory-", MEMBERS, "memory benchmark")
    change_stage(root, SCOPE, store, MEMBERS[0], "champion", actor="bench",
                 reason="memory benchmark", override=True)
    deploy(root, SCOPE, store, "champion", actor="bench", reason="shadow")
    store.close()
    finish = time.time()
    # A first slice measures the bytes one request costs (batch and outcome), then the rest.
    estimate = 1_000_000
    serve(root, 0, CALIBRATION_REQUESTS, finish, estimate)
    per_request = log_bytes(root) / CALIBRATION_REQUESTS
    total = max(CALIBRATION_REQUESTS, int(size_mb * 2**20 / per_request))
    serve(root, CALIBRATION_REQUESTS, total - CALIBRATION_REQUESTS, finish, estimate)
    with sqlite3.connect(log_path(root, SCOPE)) as conn:  # everything into the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"built {root}: {total:,} requests, log {log_bytes(root) / 2**20:.0f} MB",
          flush=True)
    return root


def peak_rss(root: Path, code: Path) -> dict:
    """Run ``monitor`` from the tree ``code`` on ``root``; its peak RSS and wall time."""
    status, out, err, seconds, peak = run_promotion(
        ["monitor", "--scope", SCOPE, "--models-dir", str(root)], code)
    if status != 0:
        raise SystemExit(f"monitor failed ({status}): {err.strip()}")
    return {"peak_rss_mb": peak, "seconds": round(seconds, 1), "code": str(code),
            "first_lines": out.splitlines()[:2]}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="a models root built by an earlier run")
    parser.add_argument("--code", type=Path, default=HERE.parent,
                        help="the source tree monitor runs from (default: this one)")
    parser.add_argument("--size-mb", type=float, default=400.0)
    args = parser.parse_args()
    root = args.root or build(args.size_mb)
    result = {"log_mb": round(log_bytes(root) / 2**20, 1), "root": str(root),
              "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
              **peak_rss(root, args.code.resolve())}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
