"""The ranking commands on a regression scope: the text table's key column is RMSE, the JSON
document names exactly the regression metrics, and ``gates`` answers as for classification."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from test_cli import run_cli

REGRESSION_METRICS = {"rmse", "mae", "r2", "error_rate", "latency_p50_ms", "latency_p95_ms",
                      "throughput_rows_s", "artifact_size_mb", "load_memory_mb"}


def predictions(scope_dir, model):
    frame = pd.read_csv(scope_dir / "holdout.csv")
    X, y = frame.drop(columns="progression"), frame["progression"].to_numpy()
    return y, joblib.load(scope_dir / model / "model.joblib").predict(X)


def test_the_text_table_shows_rmse_as_the_key_column(models_root, regression_scope):
    done = run_cli("leaderboard", "--scope", "diabetes", models_dir=models_root)
    assert done.returncode == 0, done.stderr
    title, header, *rows = done.stdout.splitlines()
    assert title == "scope diabetes (regression, 177 holdout rows)"
    assert header.split()[7] == "rmse"  # after "95% interval" and "health"
    by_model = {line.split()[1]: line.split() for line in rows}
    assert by_model["mean"][0] == "5"  # the mean predictor ranks last
    for model in ("knn", "ridge", "mean"):
        y, predicted = predictions(regression_scope, model)
        assert float(by_model[model][7]) == pytest.approx(
            np.sqrt(mean_squared_error(y, predicted)), abs=5e-5)


def test_the_json_document_names_exactly_the_regression_metrics(models_root, regression_scope):
    done = run_cli("leaderboard", "--scope", "diabetes", "--json", models_dir=models_root)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["task"] == "regression"
    assert document["composite_weights"] == {"rmse": 0.5, "mae": 0.3, "r2": 0.2}
    for entry in document["models"]:
        assert set(entry["metrics"]) == REGRESSION_METRICS
        y, predicted = predictions(regression_scope, entry["model_name"])
        metrics = {name: value["value"] for name, value in entry["metrics"].items()}
        assert metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, predicted)),
                                                rel=1e-12)
        assert metrics["mae"] == pytest.approx(mean_absolute_error(y, predicted), rel=1e-12)
        assert metrics["r2"] == pytest.approx(r2_score(y, predicted), rel=1e-12, abs=1e-12)
        low, high = entry["metrics"]["rmse"]["low"], entry["metrics"]["rmse"]["high"]
        assert low < metrics["rmse"] < high


def test_gates_pass_for_a_skilled_regressor_and_block_a_mean_predictor(models_root,
                                                                      regression_scope):
    done = run_cli("gates", "--scope", "diabetes", "--model", "ridge", "--stage", "champion",
                   models_dir=models_root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ridge -> champion, against chance level:" in done.stdout
    assert "all gates pass" in done.stdout
    done = run_cli("gates", "--scope", "diabetes", "--model", "mean", "--stage", "champion",
                   models_dir=models_root)
    assert done.returncode == 1
    failed = [line.split()[1] for line in done.stdout.splitlines()
              if line.strip().startswith("FAIL")]
    assert failed == ["min_composite", "improvement", "significance"]
