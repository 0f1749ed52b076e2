"""One promote transition, durable and with its history row.

Target (lifecycle and scale issues): median at most 5 ms on SQLite (WAL, synchronous=FULL).
Also measured on a throwaway local PostgreSQL cluster (default durability settings), for
comparison; it has no target.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _util import record, summary  # noqa: E402

from promotion.lifecycle._transitions import apply_move  # noqa: E402
from promotion.store import open_store  # noqa: E402

RUNS = 400


def main() -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-tx-")) / "models"
    result = {"store": "sqlite (WAL, synchronous=FULL)", **transitions(root, None),
              "target_median_s": 0.005}
    from postgres import Cluster

    cluster = Cluster(durable=True)
    try:
        result["postgresql"] = transitions(root, cluster.database())
    finally:
        cluster.stop()
    record("promote_transition", result)
    return result


def transitions(root: Path, url: str | None) -> dict:
    store = open_store(root, url)
    times = []
    for i in range(RUNS):
        stage = "production" if i % 2 == 0 else "archived"
        started = time.perf_counter()
        with store.decision("bench") as decision:  # the lifecycle's rules, one transaction
            apply_move(decision, "model_a", stage, actor="bench", reason=f"run {i}",
                       model_sha256="a" * 64)
        times.append(time.perf_counter() - started)
    assert len(store.history("bench")) == RUNS
    store.close()
    return summary(times)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
