"""Demo zoo: build time, cold evaluation (with per-core CPU use), cached rerun, lottery scores.

Targets (foundation issue): build ≤ 120 s on 2 cores; cached rerun evaluates nothing;
both cores busy during a cold evaluation; lottery composites all tied near 0.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _util import core_usage, record  # noqa: E402

import promotion  # noqa: E402


def main() -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-zoo-")) / "models"
    started = time.perf_counter()
    promotion.build_demo_zoo(root, progress=lambda _: None)
    build_s = time.perf_counter() - started

    store = promotion.open_store(root)
    scopes = [s for s in promotion.discover_scopes(root) if isinstance(s, promotion.Scope)]
    with core_usage() as cold:
        cold_runs = {s.name: promotion.evaluate_scope(s, store) for s in scopes}
    with core_usage() as warm:
        warm_runs = {s.name: promotion.evaluate_scope(s, store) for s in scopes}
    prediction_s = sum(
        m_time for run in cold_runs.values() for m_time in _batch_seconds(store, run))
    lotto = promotion.rank_models(cold_runs["lotto_6_49"])
    result = {
        "build_s": round(build_s, 2), "build_target_s": 120,
        "models": sum(len(r.models) for r in cold_runs.values()),
        "cold_evaluation_s": round(cold["seconds"], 2), "cold_core_busy": cold["core_busy"],
        "cold_evaluated": sum(r.evaluated for r in cold_runs.values()),
        "sum_batch_prediction_s": round(prediction_s, 3),
        "cached_rerun_s": round(warm["seconds"], 3),
        "cached_rerun_evaluated": sum(r.evaluated for r in warm_runs.values()),
        "lotto_composites": {r.model_name: round(r.composite_score, 4) for r in lotto.ranked},
        "lotto_all_tied": all(r.tied_with_leader or r.rank == 1 for r in lotto.ranked),
        "lotto_leader_health": lotto.leader.health_score,
    }
    store.close()
    record("zoo", result)
    return result


def _batch_seconds(store: promotion.Store, run: promotion.ScopeEvaluation) -> list[float]:
    """Each model's own batch predict_proba time on the holdout, as measured at evaluation."""
    cached = store.get_evaluations([m.cache_key for m in run.models if m.cache_key])
    return [c.payload["timing"]["batch_s"] for c in cached.values()
            if c.payload.get("status") == "ok"]


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
