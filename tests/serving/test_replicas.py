"""Several servers on one models root: each logs to its own file, monitoring reads them all."""

from __future__ import annotations

import pandas as pd

from promotion.engine import PredictionEngine
from promotion.engine._predlog import PredictionLog, log_path, log_paths
from promotion.monitoring import load_live, record_outcomes
from promotion.usecases import change_stage, export_scope


def test_monitoring_reads_every_replicas_log(models_root, tiny_scope, store):
    for name in ("logreg", "tree_d3"):
        change_stage(models_root, "tiny", store, name, "production", actor="ana",
                     reason="chosen")
    export_scope(models_root, "tiny", store)
    holdout = pd.read_csv(tiny_scope / "holdout.csv")
    frame = holdout.drop(columns="label")
    loaded = PredictionEngine.load("tiny", models_root, log=False)
    for replica, rows in ((None, slice(0, 10)), ("a", slice(10, 30)), ("b", slice(30, 60))):
        engine = PredictionEngine(loaded.members, loaded.source,
                                  PredictionLog(log_path(models_root, "tiny", replica)))
        engine.serve(frame.iloc[rows], [f"{replica}-{i}" for i in range(rows.start, rows.stop)])
        engine.close()
    assert [p.name for p in log_paths(models_root, "tiny")] == [
        "tiny.sqlite", "tiny@a.sqlite", "tiny@b.sqlite"]
    ids = [f"{r}-{i}" for r, rows in ((None, range(0, 10)), ("a", range(10, 30)),
                                     ("b", range(30, 60))) for i in rows]
    labels = pd.DataFrame({"request_id": ids, "label": holdout["label"].iloc[:60].astype(str)})
    report = record_outcomes(models_root, "tiny", labels)
    assert report.written == 60 and not report.unmatched
    live = load_live(models_root, "tiny")
    assert sorted(live.requests["request_id"]) == sorted(ids)
    assert (live.y >= 0).sum() == 60
    assert live.inputs.shape == (60, frame.shape[1])
