"""One promote transition (durable: SQLite WAL with synchronous=FULL, history row included).

Target (lifecycle and scale issues): median at most 5 ms on SQLite.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _util import record, summary  # noqa: E402

import promotion  # noqa: E402

RUNS = 400


def main() -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-tx-")) / "models"
    store = promotion.open_store(root)
    times = []
    for i in range(RUNS):
        stage = "production" if i % 2 == 0 else "archived"
        started = time.perf_counter()
        store.transition("bench", "model_a", stage, actor="bench", reason=f"run {i}",
                         model_sha256="a" * 64)
        times.append(time.perf_counter() - started)
    assert len(store.history("bench")) == RUNS
    store.close()
    result = {"store": "sqlite (WAL, synchronous=FULL)", **summary(times),
              "target_median_s": 0.005}
    record("promote_transition", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
