"""Regression scopes measured with the same honesty as classification ones: every metric
recomputed independently with scikit-learn on the holdout, a mean predictor scoring about 0,
paired bootstrap intervals, and clear messages for what does not fit the task."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import REGRESSION_MODELS, make_regression_scope, write_model
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from promotion.errors import InvalidInputError
from promotion.evaluation._bootstrap import bootstrap_counts
from promotion.evaluation._cache import load_row_predictions
from promotion.metrics import get_metric_names, regression_chance_levels
from promotion.scopes import Scope, discover_scopes, load_scope
from promotion.scopes._discovery import read_holdout
from promotion.usecases import build_leaderboard

REGRESSION_METRICS = {"rmse", "mae", "r2", "error_rate", "latency_p50_ms", "latency_p95_ms",
                      "throughput_rows_s", "artifact_size_mb", "load_memory_mb"}


@pytest.fixture
def ranked(regression_scope, store):
    board, evaluation = build_leaderboard(regression_scope.parent, "diabetes", store, n_jobs=1)
    return board, evaluation


def _holdout(scope_dir):
    frame = pd.read_csv(scope_dir / "holdout.csv")
    return frame.drop(columns="progression"), frame["progression"].to_numpy()


def test_the_metrics_are_exactly_these_names():
    assert set(get_metric_names("regression")) == REGRESSION_METRICS


def test_every_metric_equals_an_independent_scikit_learn_recomputation(regression_scope,
                                                                         ranked):
    board, _ = ranked
    X, y = _holdout(regression_scope)
    assert {row.model_name for row in board.ranked} == set(REGRESSION_MODELS)
    for row in board.ranked:
        model = joblib.load(regression_scope / row.model_name / "model.joblib")
        predicted = model.predict(X)
        assert row.metrics["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, predicted)),
                                                    rel=1e-12)
        assert row.metrics["mae"] == pytest.approx(mean_absolute_error(y, predicted), rel=1e-12)
        assert row.metrics["r2"] == pytest.approx(r2_score(y, predicted), rel=1e-12, abs=1e-12)
        assert row.metrics["error_rate"] == 0.0
        assert set(row.metrics) == REGRESSION_METRICS


def test_the_bootstrap_replicates_are_the_metrics_on_resampled_rows(regression_scope, ranked):
    """Replicate b of a metric is scikit-learn's value on the rows resample b draws."""
    board, evaluation = ranked
    X, y = _holdout(regression_scope)
    model_eval = next(m for m in evaluation.ok_models if m.model_name == "ridge")
    predicted = joblib.load(regression_scope / "ridge" / "model.joblib").predict(X)
    counts = bootstrap_counts(len(y), 200, 0)
    for b in (0, 17, 199):
        rows = np.repeat(np.arange(len(y)), counts[b].astype(int))
        expected = {"rmse": np.sqrt(mean_squared_error(y[rows], predicted[rows])),
                    "mae": mean_absolute_error(y[rows], predicted[rows]),
                    "r2": r2_score(y[rows], predicted[rows])}
        for name, value in expected.items():
            got = model_eval.replicates[b, model_eval.replicate_names.index(name)]
            assert got == pytest.approx(value, rel=1e-5)  # replicates are kept as float32
    row = board.row("ridge")
    for name in ("rmse", "mae", "r2"):
        low, high = row.intervals[name]
        assert low < row.metrics[name] < high


def test_a_mean_predictor_scores_about_zero_and_real_models_more(ranked):
    board, _ = ranked
    mean = board.row("mean")
    assert mean.composite_score == pytest.approx(0.0, abs=0.03)
    assert board.row("ridge").composite_score > 0.15
    assert board.leader.model_name != "mean"
    assert board.rows[-1].model_name == "mean"


def test_the_anchor_is_the_mean_of_one_half_scored_on_the_other():
    y = np.random.default_rng(3).normal(10.0, 2.0, size=400)
    chance = regression_chance_levels(y)
    # Predicting a mean estimated from n/2 other rows misses by √(1 + 2/n) of the spread.
    assert chance["rmse"] == pytest.approx(y.std() * np.sqrt(1 + 2 / 400), rel=0.02)
    assert -0.02 < chance["r2"] < 0.0
    assert chance["mae"] == pytest.approx(np.abs(y - y.mean()).mean(), rel=0.03)


def test_adding_a_model_moves_no_other_score(regression_scope, models_root, store):
    before, _ = build_leaderboard(models_root, "diabetes", store, n_jobs=1)
    X, y = _holdout(regression_scope)
    write_model(regression_scope, "ridge_strong", Ridge(alpha=50).fit(X, y),
                model_type="ridge", group="variant")
    after, _ = build_leaderboard(models_root, "diabetes", store, n_jobs=1)
    assert "ridge_strong" in after
    for row in before.ranked:
        assert after.row(row.model_name).composite_score == row.composite_score


def test_the_row_predictions_are_the_models_values_at_full_precision(regression_scope, ranked,
                                                                      store):
    _, evaluation = ranked
    X, _ = _holdout(regression_scope)
    model_eval = next(m for m in evaluation.ok_models if m.model_name == "knn")
    rows = load_row_predictions(store, model_eval)
    expected = joblib.load(regression_scope / "knn" / "model.joblib").predict(X)
    np.testing.assert_array_equal(rows.predicted, expected)
    with pytest.raises(TypeError):
        rows.proba  # noqa: B018 - the property is what is tested


def test_a_cached_scope_ranks_the_same_without_its_holdout(regression_scope, models_root,
                                                          store):
    first, _ = build_leaderboard(models_root, "diabetes", store, n_jobs=1)
    again, evaluation = build_leaderboard(models_root, "diabetes", store, n_jobs=1)
    assert evaluation.evaluated == 0
    assert [(r.model_name, r.composite_score) for r in again.rows] == \
        [(r.model_name, r.composite_score) for r in first.rows]
    assert again.chance == first.chance


def test_a_classifier_in_a_regression_scope_is_a_failed_row_saying_so(regression_scope,
                                                                     models_root, store):
    X, y = _holdout(regression_scope)
    write_model(regression_scope, "classifier", LogisticRegression(max_iter=200).fit(
        X, y > np.median(y)), model_type="lr", group="linear")
    board, _ = build_leaderboard(models_root, "diabetes", store, n_jobs=1)
    row = board.row("classifier")
    assert row.status == "failed"
    assert "classifier" in row.reason and "regression" in row.reason


def test_a_model_failing_on_some_rows_is_penalized_not_dropped(regression_scope, models_root,
                                                              store):
    from misbehaving import FailsOnSomeRows

    X, _ = _holdout(regression_scope)
    inner = joblib.load(regression_scope / "ridge" / "model.joblib")
    write_model(regression_scope, "flaky", FailsOnSomeRows(inner, "bmi", 0.05),
                model_type="ridge", group="variant")
    board, _ = build_leaderboard(models_root, "diabetes", store, n_jobs=1)
    row = board.row("flaky")
    assert row.ok
    failing = (X["bmi"] > 0.05).mean()
    assert row.metrics["error_rate"] == pytest.approx(failing)
    assert 0 < failing < 0.5
    # The same ridge, its failed rows scored as its mean prediction: worse than the ridge.
    assert row.metrics["rmse"] > board.row("ridge").metrics["rmse"]


@pytest.mark.parametrize(("target", "message"), [
    (["high", "low"] * 20, "holds 'high', not a number"),
    ([3.0] * 40, "has one value only"),
])
def test_a_target_that_is_no_quantity_is_one_clear_message(models_root, target, message):
    folder = models_root / "odd"
    folder.mkdir()
    pd.DataFrame({"x": np.arange(40.0), "y": target}).to_csv(folder / "holdout.csv",
                                                              index=False)
    (folder / "scope.json").write_text(json.dumps(
        {"task": "regression", "target": "y", "holdout": "holdout.csv"}))
    with pytest.raises(InvalidInputError, match=message):
        read_holdout(folder / "holdout.csv", load_scope(models_root, "odd").config,
                     "models/odd/holdout.csv")


@pytest.mark.parametrize("field", ["positive_class", "decision_threshold", "classes"])
def test_classification_settings_are_refused_in_a_regression_scope(models_root, field):
    value = {"positive_class": 1, "decision_threshold": 0.3, "classes": [0, 1]}[field]
    make_regression_scope(models_root, models=("mean",), scope_extra={field: value})
    with pytest.raises(InvalidInputError, match=f"field '{field}': applies to classification"):
        load_scope(models_root, "diabetes")


def test_a_regression_scope_is_listed_not_broken(models_root, store):
    make_regression_scope(models_root, models=("mean", "ridge"))
    (found,) = discover_scopes(models_root)
    assert isinstance(found, Scope) and found.task == "regression"
    board, _ = build_leaderboard(models_root, "diabetes", store, n_jobs=1)
    assert board.task == "regression"
    assert [row.model_name for row in board.ranked] == ["ridge", "mean"]


def test_a_regressor_with_classes_is_taken_at_its_word(regression_scope, models_root, store):
    """CatBoost's regressor has a ``classes_`` attribute, and declares itself a regressor."""
    catboost = pytest.importorskip("catboost")
    X, y = _holdout(regression_scope)
    model = catboost.CatBoostRegressor(iterations=30, depth=3, verbose=0, random_seed=0,
                                       thread_count=1, allow_writing_files=False).fit(X, y)
    assert hasattr(model, "classes_")
    write_model(regression_scope, "catboost", model, model_type="catboost", group="tree")
    board, _ = build_leaderboard(models_root, "diabetes", store, n_jobs=1)
    row = board.row("catboost")
    assert row.ok, row.reason
    assert row.metrics["rmse"] == pytest.approx(
        np.sqrt(mean_squared_error(y, model.predict(X))), rel=1e-12)
