"""Leaderboard at scale: a scope of 1,000 real (tiny) models with cached metrics.

Targets (dashboard and scale issues): the Leaderboard page's server-side run (AppTest)
≤ 1.0 s; re-ranking 1,000 models after a weight change ≤ 50 ms; ranking 10,000 models with
cached metrics ≤ 100 ms. The 10,000 are the 1,000 measured evaluations, each also under nine
more names: ranking sees 10,000 real measurements, it does not care that they repeat.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from _util import record, summary, timed  # noqa: E402
from factories import make_data, write_model  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

from promotion.evaluation import evaluate_scope  # noqa: E402
from promotion.scopes import load_scope  # noqa: E402
from promotion.scoring import rank_models  # noqa: E402
from promotion.store import open_store  # noqa: E402

N_MODELS = 1000


def build_scope(root: Path) -> None:
    """1,000 distinct fitted trees (depth and seed vary) on one small multiclass problem."""
    X, y = make_data("multiclass", 600)
    scope_dir = root / "big"
    scope_dir.mkdir(parents=True)
    X.iloc[300:].assign(label=y[300:]).to_csv(scope_dir / "holdout.csv", index=False)
    (scope_dir / "scope.json").write_text(json.dumps(
        {"task": "multiclass", "target": "label", "holdout": "holdout.csv", "latency_rows": 20}))
    groups = ["tree", "neural", "variant", "linear"]
    for i in range(N_MODELS):
        tree = DecisionTreeClassifier(max_depth=2 + i % 8, max_features=0.5 + 0.5 * (i % 2),
                                      random_state=i).fit(X.iloc[:300], y[:300])
        write_model(scope_dir, f"tree_{i:04d}", tree, model_type="decision_tree",
                    group=groups[i % 4])


def main() -> dict:
    root = Path(tempfile.mkdtemp(prefix="bench-lb-")) / "models"
    build_scope(root)
    store = open_store(root)
    started = time.perf_counter()
    evaluation = evaluate_scope(load_scope(root, "big"), store)
    cold_s = time.perf_counter() - started

    weights = [{"accuracy": 1.0}, {"log_loss": 0.5, "top_5_accuracy": 0.5},
               {"balanced_accuracy": 0.3, "accuracy": 0.7}]
    rerank = timed(lambda: [rank_models(evaluation, w) for w in weights], 10)
    rerank_single = [t / len(weights) for t in rerank]
    ten_thousand = replace(evaluation, models=[
        replace(m, model_name=f"{m.model_name}_copy{copy}")
        for copy in range(10) for m in evaluation.models])
    # The first ranking of a freshly loaded evaluation also gathers each weighted metric's
    # scored replicates (once per metric, kept with the evaluation); later rankings, whatever
    # the weights, only re-weight them. Both are reported; the runs rotate the weights.
    rank_10k_first = timed(lambda: rank_models(ten_thousand, weights[1]), 1)
    for w in weights:
        rank_models(ten_thousand, w)
    turn = iter(range(10**6))
    rank_10k = timed(lambda: rank_models(ten_thousand, weights[next(turn) % 3]), 15)

    from streamlit.testing.v1 import AppTest

    os.environ["PROMOTION_MODELS_DIR"] = str(root)
    app = str(HERE.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=600)
    at.query_params["scope"] = "big"
    first = timed(at.run, 1)  # loads the evaluation from the store into memory
    assert not at.exception, at.exception
    warm = timed(at.run, 10)
    at.slider(key="weight:big:log_loss").set_value(0.9)
    after_weight = timed(at.run, 1)
    assert not at.exception, at.exception
    result = {
        "models": N_MODELS, "cold_evaluation_s": round(cold_s, 2),
        "rerank_after_weight_change": summary(rerank_single), "rerank_target_s": 0.05,
        "rank_10000": summary(rank_10k), "rank_10000_target_s": 0.1,
        "rank_10000_first_of_an_evaluation_s": round(rank_10k_first[0], 3),
        "page_run_first_s": round(first[0], 3), "page_run_warm": summary(warm),
        "page_run_after_weight_change_s": round(after_weight[0], 3), "page_target_s": 1.0,
    }
    store.close()
    record("leaderboard_1000", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
