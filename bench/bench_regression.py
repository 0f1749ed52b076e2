"""Regression scopes: what evaluating them costs, and whether what they show is right.

On the demo's ``1H`` scope (simulated hourly returns) and on scikit-learn's diabetes data
with five regressors of the usual kinds:

- cold evaluation time, against the sum of the models' own prediction time (batch predict
  plus the timed single-row calls), and a cached rerun;
- every leaderboard metric (RMSE, MAE, R²) against an independent scikit-learn
  recomputation on the holdout: the largest relative difference (target: ≤ 1e-9);
- the composite of a mean predictor (``DummyRegressor``): about 0 (target: |score| ≤ 0.03);
- the leader, its composite with its interval, and how many models are tied with it.

``BENCH_ZOO_DIR`` names a folder holding (or receiving) the demo zoo, shared with the other
benchmarks.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _util import core_usage, record  # noqa: E402

from demo import build_demo_zoo  # noqa: E402
from promotion.evaluation import evaluate_scope  # noqa: E402
from promotion.scopes import load_scope  # noqa: E402
from promotion.scoring import rank_models  # noqa: E402
from promotion.store import open_store  # noqa: E402

HOURLY = "1H"
DIABETES = "diabetes"


def build_diabetes(root: Path) -> None:
    """scikit-learn's diabetes data: 60% of the patients train, the rest is the holdout."""
    from sklearn.datasets import load_diabetes
    from sklearn.dummy import DummyRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.linear_model import Ridge
    from sklearn.neighbors import KNeighborsRegressor

    folder = root / DIABETES
    if (folder / "scope.json").exists():
        return
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    split = int(len(X) * 0.6)
    folder.mkdir(parents=True)
    X.iloc[split:].assign(progression=y.iloc[split:]).to_csv(folder / "holdout.csv",
                                                             index=False)
    (folder / "scope.json").write_text(json.dumps(
        {"task": "regression", "target": "progression", "holdout": "holdout.csv"}))
    models = {
        "ridge": (Ridge(alpha=1.0), "linear"),
        "random_forest": (RandomForestRegressor(n_estimators=200, random_state=0), "tree"),
        "hist_gbm": (HistGradientBoostingRegressor(random_state=0), "tree"),
        "knn": (KNeighborsRegressor(n_neighbors=15), "neural"),
        "mean_baseline": (DummyRegressor(strategy="mean"), "linear"),
    }
    for name, (model, group) in models.items():
        (folder / name).mkdir()
        joblib.dump(model.fit(X.iloc[:split], y.iloc[:split]), folder / name / "model.joblib")
        (folder / name / "meta.json").write_text(json.dumps(
            {"model_type": type(model).__name__, "group": group}))


def recomputation_gap(scope, board) -> float:
    """The largest relative difference between a leaderboard metric and scikit-learn's own
    value from the model's predict on the holdout read afresh."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    frame = pd.read_csv(scope.holdout_path)
    y = frame[scope.config.target].to_numpy(dtype=float)
    X = frame.drop(columns=scope.config.target)
    if scope.config.features:
        X = X[scope.config.features]
    worst = 0.0
    for row in board.ranked:
        model = joblib.load(scope.model(row.model_name).model_path)
        names = getattr(model, "feature_names_in_", None)
        predicted = model.predict(X[list(names)] if names is not None else X.to_numpy())
        expected = {"rmse": float(np.sqrt(mean_squared_error(y, predicted))),
                    "mae": float(mean_absolute_error(y, predicted)),
                    "r2": float(r2_score(y, predicted))}
        for name, value in expected.items():
            gap = abs(row.metrics[name] - value) / max(abs(value), 1e-12)
            worst = max(worst, gap)
    return worst


def measure(root: Path, name: str) -> dict:
    store = open_store(root)
    scope = load_scope(root, name)
    with core_usage() as cold:
        evaluation = evaluate_scope(scope, store)
    started = time.perf_counter()
    again = evaluate_scope(scope, store)
    cached_s = time.perf_counter() - started
    stored = store.get_evaluations([m.cache_key for m in evaluation.models if m.cache_key])
    timings = [c.payload["timing"] for c in stored.values() if c.payload.get("status") == "ok"]
    prediction_s = sum(t["batch_s"] + t["latency_s"] for t in timings)
    started = time.perf_counter()
    board = rank_models(evaluation)
    rank_s = time.perf_counter() - started
    leader = board.leader
    means = [r for r in board.ranked
             if "dummy" in r.model_type.lower() or r.model_name in ("mean", "mean_baseline")]
    store.close()
    return {
        "models": len(evaluation.models), "ranked": len(board.ranked),
        "holdout_rows": evaluation.n_rows,
        "cold_evaluation_s": round(cold["seconds"], 2), "cold_core_busy": cold["core_busy"],
        "sum_prediction_s": round(prediction_s, 3),
        "cold_to_prediction_ratio": round(cold["seconds"] / max(prediction_s, 1e-9), 2),
        "cached_rerun_s": round(cached_s, 3), "cached_rerun_evaluated": again.evaluated,
        "rank_ms": round(rank_s * 1000, 2),
        "max_relative_gap_to_sklearn": recomputation_gap(scope, board),
        "mean_predictor_composite": round(means[0].composite_score, 4) if means else None,
        "leader": leader.model_name,
        "leader_composite": round(leader.composite_score, 4),
        "leader_interval": [round(v, 4) for v in leader.composite_interval],
        "leader_rmse": round(leader.metrics["rmse"], 4),
        "leader_r2": round(leader.metrics["r2"], 4),
        "tied_with_leader": sum(r.tied_with_leader for r in board.ranked),
        "composites": {r.model_name: round(r.composite_score, 4) for r in board.ranked},
    }


def main() -> dict:
    base = Path(os.environ.get("BENCH_ZOO_DIR") or tempfile.mkdtemp(prefix="bench-reg-"))
    root = base / "regression"  # its own store: a cold evaluation starts from an empty cache
    if root.exists():
        import shutil

        shutil.rmtree(root)
    started = time.perf_counter()
    build_demo_zoo(root, scopes=(HOURLY,), progress=lambda _: None)
    build_s = time.perf_counter() - started
    build_diabetes(root)
    result = {"hourly_build_s": round(build_s, 2),
              HOURLY: measure(root, HOURLY), DIABETES: measure(root, DIABETES)}
    record("regression", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
