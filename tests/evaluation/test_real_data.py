"""Holdouts as real data: text categories and missing values read as pandas gives them, the
same frame for every model; a model that cannot take them is a failed row naming the column;
a scope's shared preprocessor runs before every model, verified, and keys the cache."""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import CANCER_COLUMNS, cancer_frame, make_real_scope, real_data_pipeline
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from promotion.errors import InvalidInputError
from promotion.evaluation._measure import MeasureInputs, measure_model
from promotion.export._slices import _slices
from promotion.scopes import file_sha256, load_scope
from promotion.usecases import build_leaderboard

NUMBERS = list(CANCER_COLUMNS)


def _numbers_only(train: pd.DataFrame) -> LogisticRegression:
    """Fitted on the measurements alone, by name, gaps filled in training only: it cannot
    take the holdout's missing values."""
    X = train[NUMBERS].fillna(train[NUMBERS].mean())
    return LogisticRegression(max_iter=2000).fit(X, train["diagnosis"])


def _codes_only(train: pd.DataFrame) -> LogisticRegression:
    """Fitted on a bare array with the size as integer codes: it cannot take text."""
    X = train.drop(columns="diagnosis").assign(
        size=train["size"].map({"small": 0, "medium": 1, "large": 2}).fillna(1))
    return LogisticRegression(max_iter=2000).fit(X.fillna(0).to_numpy(), train["diagnosis"])


@pytest.fixture
def cancer(models_root):
    frame = cancer_frame()
    folder = make_real_scope(models_root, "cancer", frame, "diagnosis", scope_extra={
        "positive_class": "malignant"}, models={
        "pipeline": real_data_pipeline(frame.drop(columns="diagnosis"),
                                       LogisticRegression(max_iter=2000))})
    train = frame.iloc[:len(frame) // 2]
    for name, model in (("numbers_only", _numbers_only(train)),
                        ("codes_only", _codes_only(train))):
        (folder / name).mkdir()
        joblib.dump(model, folder / name / "model.joblib")
        (folder / name / "meta.json").write_text('{"model_type": "lr", "group": "linear"}')
    return folder


def test_a_holdout_with_text_and_gaps_is_read_as_pandas_gives_it(models_root, cancer):
    holdout = load_scope(models_root, "cancer").load_holdout()
    expected = pd.read_csv(cancer / "holdout.csv").drop(columns="diagnosis")
    pd.testing.assert_frame_equal(holdout.features, expected)
    assert not pd.api.types.is_numeric_dtype(holdout.features["size"])
    assert holdout.features["mean texture"].isna().sum() > 0
    assert holdout.classes == ["benign", "malignant"]  # the positive class last


def test_a_model_that_cannot_take_the_data_is_a_failed_row_naming_the_column(
        models_root, cancer, store):
    board, _ = build_leaderboard(models_root, "cancer", store, n_jobs=1)
    assert board.row("pipeline").ok, board.row("pipeline").reason
    numbers = board.row("numbers_only")
    assert not numbers.ok
    assert "rows with missing values" in numbers.reason
    assert "column 'mean texture' has" in numbers.reason
    codes = board.row("codes_only")
    assert not codes.ok and "column 'size' holds text" in codes.reason
    assert "models/cancer/codes_only/model.joblib" in codes.reason


def test_metrics_on_real_data_match_scikit_learn(models_root, cancer, store):
    board, _ = build_leaderboard(models_root, "cancer", store, n_jobs=1)
    holdout = pd.read_csv(cancer / "holdout.csv")
    model = joblib.load(cancer / "pipeline" / "model.joblib")
    proba = model.predict_proba(holdout.drop(columns="diagnosis"))
    positive = list(model.classes_).index("malignant")
    expected = roc_auc_score(holdout["diagnosis"] == "malignant", proba[:, positive])
    assert board.row("pipeline").metrics["roc_auc"] == pytest.approx(expected, abs=1e-9)


def test_categories_and_missing_values_are_slices_of_their_own(models_root, cancer):
    names = [name for name, _ in _slices(load_scope(models_root, "cancer").load_holdout())]
    assert {"size = small", "size = medium", "size = large", "size is missing",
            "mean texture is missing"} <= set(names)
    assert not any(name.startswith("size = nan") for name in names)


# --- a shared preprocessor --------------------------------------------------------------------

def _shared_preprocessor() -> ColumnTransformer:
    return ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMBERS),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
         ["size"]),
    ])


@pytest.fixture
def preprocessed(models_root):
    return make_real_scope(models_root, "shared", cancer_frame(), "diagnosis",
                           preprocessor=_shared_preprocessor(), models={
                               "logreg": LogisticRegression(max_iter=2000),
                               "boosting": HistGradientBoostingClassifier(max_iter=30)})


def test_the_preprocessor_runs_before_every_model(models_root, preprocessed, store):
    board, _ = build_leaderboard(models_root, "shared", store, n_jobs=1)
    holdout = pd.read_csv(preprocessed / "holdout.csv")
    pre = joblib.load(preprocessed / "preprocessor.joblib")
    Xt = pre.transform(holdout.drop(columns="diagnosis"))
    for name in ("logreg", "boosting"):
        model = joblib.load(preprocessed / name / "model.joblib")
        expected = roc_auc_score(holdout["diagnosis"] == "malignant",
                                 model.predict_proba(Xt)[:, 1])
        assert board.row(name).metrics["roc_auc"] == pytest.approx(expected, abs=1e-9)


def test_no_feature_name_warnings_from_measuring(models_root, preprocessed, cancer):
    for name, model in (("shared", "logreg"), ("cancer", "pipeline")):
        scope = load_scope(models_root, name)
        path = scope.model(model).model_path
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            measured = measure_model(path, MeasureInputs.of(scope, scope.load_holdout()),
                                     file_sha256(path))
        assert measured.ok, measured.reason
        assert not [w for w in caught if "feature names" in str(w.message)], \
            [str(w.message) for w in caught]


def test_a_changed_preprocessor_measures_every_model_again(models_root, preprocessed, store):
    _, first = build_leaderboard(models_root, "shared", store, n_jobs=1)
    _, again = build_leaderboard(models_root, "shared", store, n_jobs=1)
    assert first.evaluated == 2 and again.evaluated == 0
    pre = joblib.load(preprocessed / "preprocessor.joblib")
    pre.transformers_[0][1].steps[0][1].statistics_ = pre.transformers_[0][1].steps[0][
        1].statistics_ * 1.01
    joblib.dump(pre, preprocessed / "preprocessor.joblib")
    _, changed = build_leaderboard(models_root, "shared", store, n_jobs=1)
    assert changed.evaluated == 2


def test_a_preprocessor_outside_the_models_root_is_refused(models_root, preprocessed, store,
                                                          tmp_path):
    outside = tmp_path / "elsewhere.joblib"
    (preprocessed / "preprocessor.joblib").rename(outside)
    (preprocessed / "preprocessor.joblib").symlink_to(outside)
    with pytest.raises(InvalidInputError, match="preprocessor.joblib.*leaves the models root"):
        build_leaderboard(models_root, "shared", store, n_jobs=1)


def test_a_preprocessor_without_transform_is_named(models_root, preprocessed, store):
    joblib.dump(np.arange(3), preprocessed / "preprocessor.joblib")
    with pytest.raises(InvalidInputError,
                       match="shared/preprocessor.joblib .scope.json field 'preprocessor'.: "
                             "holds a ndarray, which has no transform"):
        build_leaderboard(models_root, "shared", store, n_jobs=1)
