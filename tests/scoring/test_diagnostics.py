"""The tables behind the regression charts, each checked against a direct computation with
numpy, pandas, SciPy and the models' own ``predict`` on the diabetes holdout."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from promotion.evaluation import load_row_predictions
from promotion.evaluation._results import RowPredictions
from promotion.scopes import load_scope
from promotion.scoring import (
    feature_bins,
    group_summary,
    predicted_against_actual,
    residuals_by_feature,
)
from promotion.usecases import build_leaderboard


@pytest.fixture
def ranked(regression_scope, store):
    board, evaluation = build_leaderboard(regression_scope.parent, "diabetes", store, n_jobs=1)
    holdout = load_scope(regression_scope.parent, "diabetes").load_holdout()
    return board, evaluation, holdout


def _predicted(scope_dir, model: str, holdout) -> np.ndarray:
    return joblib.load(scope_dir / model / "model.joblib").predict(holdout.features)


def _rows(store, evaluation, model: str) -> RowPredictions:
    return load_row_predictions(store, next(m for m in evaluation.models
                                            if m.model_name == model))


def test_predicted_against_actual_is_the_models_predict_on_every_row(regression_scope, ranked,
                                                                     store):
    _, evaluation, holdout = ranked
    table = predicted_against_actual(_rows(store, evaluation, "ridge"), holdout)
    predicted = _predicted(regression_scope, "ridge", holdout)
    assert len(table) == len(holdout.y) == 177
    np.testing.assert_array_equal(table["actual"], holdout.y)
    np.testing.assert_allclose(table["predicted"], predicted, rtol=1e-12)  # batch vs chunks
    np.testing.assert_allclose(table["residual"], predicted - holdout.y, rtol=1e-9)
    assert not table["failed"].any()


def _direct_bins(x: pd.Series) -> pd.Series:
    """Quartile bins [a, b) of a numeric feature, the last one closed, by pandas."""
    edges = np.unique(np.quantile(x, [0, 0.25, 0.5, 0.75, 1]))
    binned = pd.cut(x, edges, right=False, labels=False)
    return binned.fillna(len(edges) - 2).astype(int)  # the maximum falls in the last bin


def test_residuals_by_feature_equal_a_direct_computation(regression_scope, ranked, store):
    _, evaluation, holdout = ranked
    table = residuals_by_feature(_rows(store, evaluation, "knn"), holdout)
    residual = _predicted(regression_scope, "knn", holdout) - holdout.y
    assert list(table["feature"].unique()) == list(holdout.features.columns)
    for feature, shown in table.groupby("feature", sort=False):
        x = holdout.features[feature]
        if x.nunique() <= 12:  # sex: two values, each its own bin
            groups = x.to_numpy()
        else:
            groups = _direct_bins(x).to_numpy()
        expected = [residual[groups == g] for g in np.unique(groups)]
        assert shown["rows"].tolist() == [len(r) for r in expected]
        assert shown["rows"].sum() == len(holdout.y)
        for (_, line), values in zip(shown.iterrows(), expected, strict=True):
            low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(),
                                         scale=stats.sem(values))
            assert line["mean_residual"] == pytest.approx(values.mean(), rel=1e-12)
            assert (line["low"], line["high"]) == pytest.approx((low, high), rel=1e-9)


def test_a_planted_over_prediction_shows_in_its_bins_only(regression_scope, ranked):
    """Ridge's predictions plus 20 where bmi is above its median: the upper two bmi bins'
    mean residual moves by exactly 20, the lower two not at all."""
    _, _, holdout = ranked
    predicted = _predicted(regression_scope, "ridge", holdout)
    bmi = holdout.features["bmi"].to_numpy()
    upper = bmi >= np.quantile(bmi, 0.5)
    fair = residuals_by_feature(RowPredictions(predicted, np.zeros(len(bmi), bool)), holdout)
    biased = residuals_by_feature(RowPredictions(predicted + 20.0 * upper,
                                                 np.zeros(len(bmi), bool)), holdout)
    shift = (biased["mean_residual"] - fair["mean_residual"])[fair["feature"] == "bmi"]
    np.testing.assert_allclose(shift, [0.0, 0.0, 20.0, 20.0], atol=1e-9)
    bmi_bins = fair["feature"] == "bmi"
    np.testing.assert_allclose(biased["low"][bmi_bins] - fair["low"][bmi_bins],
                               [0.0, 0.0, 20.0, 20.0], atol=1e-9)  # same spread, moved
    assert fair["bin"][bmi_bins].iloc[-1].endswith("]")  # the last bin holds the maximum


def test_rows_the_model_failed_on_are_left_out(regression_scope, ranked):
    _, _, holdout = ranked
    predicted = _predicted(regression_scope, "ridge", holdout)
    errors = np.zeros(len(predicted), bool)
    errors[::10] = True
    table = residuals_by_feature(RowPredictions(predicted, errors), holdout)
    sex = table[table["feature"] == "sex"]
    kept = ~errors
    values = holdout.features["sex"].to_numpy()
    for (_, line), value in zip(sex.iterrows(), np.unique(values), strict=True):
        chosen = (predicted - holdout.y)[kept & (values == value)]
        assert line["rows"] == len(chosen)
        assert line["mean_residual"] == pytest.approx(chosen.mean(), rel=1e-12)
    assert predicted_against_actual(RowPredictions(predicted, errors), holdout)[
        "failed"].sum() == errors.sum()


def test_a_category_keeps_its_most_frequent_values_and_missing_rows_apart():
    series = pd.Series(["a"] * 30 + ["b"] * 20 + [f"rare{i}" for i in range(15)] + [None] * 5)
    bins = feature_bins(series)
    labels = [label for label, _ in bins]
    assert labels[:2] == ["= a", "= b"]
    assert labels[-2:] == ["other (5 values)", "missing"]
    assert len(labels) == 12 + 2
    masks = np.array([mask for _, mask in bins])
    np.testing.assert_array_equal(masks.sum(axis=0), np.ones(len(series)))  # each row once


def test_a_numeric_feature_with_few_values_is_binned_by_value_and_missing_apart():
    series = pd.Series([1.0, 2.0, 2.0, np.nan, 3.0])
    bins = feature_bins(series)
    assert [label for label, _ in bins] == ["= 1", "= 2", "= 3", "missing"]
    assert [int(mask.sum()) for _, mask in bins] == [1, 2, 1, 1]


@pytest.mark.parametrize(("metric", "best"), [("rmse", "min"), ("r2", "max"),
                                              ("composite_score", "max")])
def test_groups_are_summed_up_in_the_metrics_direction(ranked, metric, best):
    board, _, _ = ranked
    summary = group_summary(board, metric)
    frame = board.to_frame()
    expected = frame.groupby("group")[metric].agg(["size", "mean", best, "median"])
    for _, line in summary.iterrows():
        assert (line["models"], line["average"], line["best"], line["median"]) == \
            pytest.approx(tuple(expected.loc[line["group"]]))
    lower_first = metric == "rmse"
    assert summary["average"].tolist() == sorted(summary["average"], reverse=not lower_first)
