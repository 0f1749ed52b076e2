"""Monitoring reads the prediction log as a stream: bounded memory, the same results.

``load_live`` keeps per request only what the metrics and rules use (probabilities as float32,
the batch facts as categories) and ``drift`` counts the inputs batch by batch. The reference
below is the whole-log reading monitoring did before: on a log with every tricky case (modes
switched, a replay logged out of time order, an id logged twice, late and unknown labels) both
give the same requests, probabilities, labels, recommendation and drift.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import write_model
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier

from promotion.contract import feature_stats_path
from promotion.engine import PredictionEngine, log_path, read_cards
from promotion.engine._predlog import read_batches, read_outcomes
from promotion.monitoring import (
    drift,
    drift_table,
    load_live,
    read_feature_stats,
    recommend,
    record_outcomes,
)
from promotion.usecases import change_stage, deploy

ROOT = Path(__file__).resolve().parents[2]
SCOPE = "wide"


def wide_scope(root: Path, n_features: int = 64, n_classes: int = 10) -> Path:
    """A scope shaped like the demo digits (many features, ten classes), three models,
    logreg champion and the others challengers in champion mode (all scored, all logged)."""
    X, y = make_classification(n_samples=1200, n_features=n_features, n_informative=20,
                               n_classes=n_classes, random_state=0)
    X = pd.DataFrame(X, columns=[f"px{i}" for i in range(n_features)])
    folder = root / SCOPE
    folder.mkdir(parents=True)
    X.iloc[600:].assign(digit=y[600:]).to_csv(folder / "holdout.csv", index=False)
    (folder / "scope.json").write_text(json.dumps({
        "task": "multiclass", "target": "digit", "holdout": "holdout.csv", "n_bootstrap": 100,
        "latency_rows": 10}))
    for name, estimator, group in (
            ("logreg", LogisticRegression(max_iter=300), "linear"),
            ("tree", DecisionTreeClassifier(max_depth=6, random_state=0), "tree"),
            ("bayes", GaussianNB(), "neural")):
        write_model(folder, name, estimator.fit(X.iloc[:600], y[:600]), model_type=name,
                    group=group)
    from promotion.store import open_store

    store = open_store(root)
    for name in ("logreg", "tree", "bayes"):
        change_stage(root, SCOPE, store, name, "production", actor="t", reason="t",
                     override=True)
    change_stage(root, SCOPE, store, "logreg", "champion", actor="t", reason="t",
                 override=True)
    deploy(root, SCOPE, store, "champion", actor="t", reason="shadow")
    store.close()
    return folder


def serve(root: Path, requests: int, *, first: int = 0, end: datetime | None = None,
          batch: int = 5000, drift_on: str | None = None, label: bool = True) -> list[str]:
    """Serve ``requests`` holdout rows in batches, their times spread over the two days
    before ``end``; join their labels. Returns the request ids."""
    holdout = pd.read_csv(root / SCOPE / "holdout.csv")
    features, target = holdout.drop(columns="digit"), holdout["digit"].astype(str)
    rng = np.random.default_rng(first)
    finish = (end or datetime.now(UTC)).timestamp()
    engine = PredictionEngine.load(SCOPE, root)
    ids, labels = [], []
    try:
        for start in range(first, first + requests, batch):
            rows = min(batch, first + requests - start)
            picked = rng.integers(0, len(holdout), size=rows)
            frame = features.iloc[picked].reset_index(drop=True)
            if drift_on:
                frame[drift_on] += 2 * features[drift_on].std()
            batch_ids = [f"{i:032x}" for i in range(start, start + rows)]
            times = finish - 2 * 86400 + (np.arange(start, start + rows) - first) * (
                2 * 86400 / requests)
            engine.serve(frame, batch_ids, times=times)
            ids += batch_ids
            labels += target.iloc[picked].tolist()
    finally:
        engine.close()
    if label:
        record_outcomes(root, SCOPE, pd.DataFrame({"request_id": ids, "label": labels}))
    return ids


# --- the reference: the whole log in memory, as monitoring read it before ------------------

def whole_log(root: Path) -> dict:
    path = log_path(root, SCOPE)
    batches = [b for b in read_batches(path) if b.rows]
    classes, features = batches[-1].classes, batches[-1].features
    sizes = [b.rows for b in batches]
    n, offsets = sum(sizes), np.cumsum([0, *sizes])
    probas, failed, latency = {}, {}, {}
    inputs = np.full((n, len(features)), np.nan, dtype=np.float32)
    for batch, start, stop in zip(batches, offsets[:-1], offsets[1:], strict=True):
        for k, model in enumerate(batch.models):
            if model not in probas:
                probas[model] = np.full((n, len(classes)), np.nan)
                failed[model] = np.zeros(n, dtype=bool)
                latency[model] = np.full(n, np.nan)
            if batch.classes == classes:
                probas[model][start:stop] = batch.probas[:, k]
            failed[model][start:stop] = batch.failed[:, k]
            latency[model][start:stop] = batch.latency_ms.get(model, np.nan)
        if batch.features == features:
            inputs[start:stop] = batch.inputs
    frame = pd.DataFrame({
        "request_id": [i for b in batches for i in b.request_ids],
        "at": pd.to_datetime(np.concatenate([b.at for b in batches]), unit="s", utc=True),
        "served": [s for b in batches for s in b.served_by()],
        "batch_id": np.repeat([b.id for b in batches], sizes),
        **{fact: np.repeat(np.array([getattr(b, fact) for b in batches], dtype=object), sizes)
           for fact in ("export", "mode", "canary", "canary_share")}})
    index = {c: i for i, c in enumerate(classes)}
    labels = read_outcomes(path)
    y = np.array([index.get(labels.get(i, ""), -1) for i in frame["request_id"]])
    order = np.argsort(frame["at"].to_numpy(), kind="stable")
    return {"requests": frame.iloc[order].reset_index(drop=True),
            "probas": {m: p[order] for m, p in probas.items()},
            "failed": {m: f[order] for m, f in failed.items()},
            "latency": {m: t[order] for m, t in latency.items()}, "y": y[order],
            "inputs": inputs[order], "classes": classes, "features": features}


def test_the_streamed_log_gives_what_the_whole_log_gave(models_root):
    from promotion.store import open_store

    root = models_root
    wide_scope(root)
    serve(root, 1800, batch=700)  # champion mode, now
    store = open_store(root)
    deploy(root, SCOPE, store, "canary", canary="tree", canary_share=0.1, actor="t",
           reason="canary")
    store.close()
    # A canary replay logged last with older times, drifted, half its labels late.
    ids = serve(root, 1500, first=10_000, batch=400, drift_on="px3",
                end=datetime.now(UTC) - timedelta(days=9), label=False)
    holdout_labels = [str(v) for v in pd.read_csv(root / SCOPE / "holdout.csv")["digit"]]
    record_outcomes(root, SCOPE, pd.DataFrame({"request_id": ids[:700],
                                               "label": (holdout_labels * 2)[:700]}))
    engine = PredictionEngine.load(SCOPE, root)
    frame = pd.read_csv(root / SCOPE / "holdout.csv").drop(columns="digit").head(3)
    engine.serve(frame, [ids[0], "lone", "other"])  # an id logged twice, two new ones
    engine.close()
    record_outcomes(root, SCOPE, pd.DataFrame({"request_id": ["lone", "other"],
                                               "label": ["3", "not a class"]}))

    live, before = load_live(root, SCOPE), whole_log(root)
    assert live.order is not None  # the replay put the log out of time order
    for column in ("request_id", "at", "served", "batch_id", "export", "mode"):
        assert list(live.requests[column]) == list(before["requests"][column]), column
    for column in ("canary", "canary_share"):  # None or NaN then, a missing category now
        now, then = ([None if pd.isna(v) else v for v in frame[column]]
                     for frame in (live.requests, before["requests"]))
        assert now == then, column
    assert list(live.probas) == list(before["probas"])
    for model, proba in before["probas"].items():
        assert live.probas[model].dtype == np.float32
        np.testing.assert_array_equal(live.probas[model], proba)
        np.testing.assert_array_equal(live.failed[model], before["failed"][model])
        np.testing.assert_array_equal(live.latency[model], before["latency"][model])
    np.testing.assert_array_equal(live.y, before["y"])
    assert (live.y >= 0).sum() == 1800 + 700 + 2  # ids[0] twice, and lone
    np.testing.assert_array_equal(live.inputs, before["inputs"])
    assert (live.classes, live.features) == (before["classes"], before["features"])

    cards = read_cards(sorted((root / "advanced" / "model_cards").glob("*.json"))[-1])
    advice = recommend(live, cards, "multiclass")
    assert (advice.mode, advice.subject) == ("canary", "tree")
    table = drift(root, SCOPE, live)
    newest = sorted((root / "advanced" / "model_cards").glob("*.json"))[-1]
    rows = (before["requests"]["export"] == newest.name).to_numpy()
    expected = drift_table(read_feature_stats(feature_stats_path(newest)),
                           before["inputs"][rows], before["features"])
    pd.testing.assert_frame_equal(table, expected)
    assert table["feature"].iloc[0] == "px3" and table["flagged"].iloc[0]


MEASURE = """
import json, sys
from pathlib import Path
from promotion.engine import newest_cards_file, read_cards
from promotion.monitoring import drift, load_live, recommend

def monitor(root):
    live = load_live(root, "wide")
    cards = read_cards(newest_cards_file("wide", root))
    return recommend(live, cards, "multiclass"), drift(root, "wide", live)

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

monitor(Path(sys.argv[1]))  # a small log first: every lazy import is done
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")  # the peak RSS starts again from the current RSS (Linux >= 4.0)
base = status("VmRSS")
advice, table = monitor(Path(sys.argv[2]))
print(json.dumps({"added_mb": status("VmHWM") - base, "action": advice.action,
                  "drifted": table["feature"].iloc[0]}))
"""


@pytest.mark.slow
def test_monitor_memory_stays_below_the_size_of_the_log(tmp_path):
    """Reading the whole log held about 3.5 times its size (1.6 GB for a 396 MB log, see
    bench/bench_monitor_memory.py); streamed, what monitoring adds stays well below it."""
    small, large = tmp_path / "small" / "models", tmp_path / "large" / "models"
    for root, requests in ((small, 2000), (large, 100_000)):
        wide_scope(root)
        serve(root, requests, drift_on="px5")
    size = sum(p.stat().st_size for p in log_path(large, SCOPE).parent.iterdir()) / 2**20
    assert size > 40  # MB: large enough for the whole log to stand out from the noise
    env = {k: v for k, v in os.environ.items() if k != "PROMOTION_DB_URL"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", MEASURE, str(small), str(large)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["drifted"] == "px5"
    assert result["added_mb"] < size, (result, size)
