"""Strength and known bias of regression models, from slices of the holdout.

A planted bias (a model that adds 20 to its predictions where feature x > 0) is found where
it was planted, with its sign and size; a model whose residuals depend on nothing finds
nothing (Holm); on scikit-learn's diabetes data the figures are the model's own residuals.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import write_model
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from promotion.evaluation._cache import load_row_predictions
from promotion.evaluation._results import RowPredictions
from promotion.export._slices import (
    INSUFFICIENT,
    SliceFinding,
    describe_findings,
    slice_findings,
    slice_tests,
)
from promotion.scopes._discovery import Holdout
from promotion.usecases import change_stage, export_scope, scope_state

FEATURES = ("x", "z1", "z2")
PLANTED = 20.0


def _rows(seed: int, n: int, *, signal: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """Three standard-normal features, x centred on its median (so x > 0 is exactly the
    upper two quartile bins); y = 50 + 3x + 2·z1 + N(0, 5²) (or 50 + noise)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({name: rng.normal(size=n) for name in FEATURES})
    X["x"] -= X["x"].median()
    truth = 50 + 3 * X["x"] + 2 * X["z1"] if signal else np.full(n, 50.0)
    return X, np.asarray(truth + rng.normal(scale=5.0, size=n), dtype=float)


def _planted(X: pd.DataFrame, y: np.ndarray):
    """A linear model fitted on (x, z1, z2, sign x), then biased by hand: +10·sign(x) + 10, so
    it predicts 20 too much where x > 0 and is fair where x < 0."""
    step = ColumnTransformer([("all", "passthrough", list(FEATURES)),
                              ("sign", FunctionTransformer(np.sign), ["x"])])
    model = make_pipeline(step, LinearRegression()).fit(X, y)
    model[-1].coef_[-1] += PLANTED / 2
    model[-1].intercept_ += PLANTED / 2
    return model


def _scope(root: Path, name: str, *, signal: bool, models: dict) -> Path:
    """A regression scope of 800 holdout rows; models fitted on 20,000 others."""
    X, y = _rows(1, 20_000, signal=signal)
    holdout, target = _rows(2, 800, signal=signal)
    folder = root / name
    folder.mkdir(parents=True)
    holdout.assign(y=target).to_csv(folder / "holdout.csv", index=False)
    (folder / "scope.json").write_text(json.dumps({
        "task": "regression", "target": "y", "holdout": "holdout.csv", "n_bootstrap": 100,
        "latency_rows": 10, "compile_members": False}))
    for model_name, make in models.items():
        write_model(folder, model_name, make(X, y), model_type=model_name, group="linear")
    return folder


@pytest.fixture
def planted_scope(models_root: Path) -> Path:
    return _scope(models_root, "planted", signal=True, models={
        "fair": lambda X, y: LinearRegression().fit(X, y), "planted": _planted})


def _tested(models_root: Path, store, scope: str, model: str
            ) -> tuple[list[SliceFinding], Holdout]:
    state = scope_state(models_root, scope, store, n_jobs=1)
    evaluated = next(m for m in state.evaluation.models if m.model_name == model)
    holdout = state.scope.load_holdout()
    return (slice_tests(load_row_predictions(store, evaluated), holdout, "regression",
                        target=state.scope.config.target), holdout)


def test_a_planted_bias_is_found_where_it_was_planted_with_its_sign_and_size(
        models_root, planted_scope, store):
    tested, holdout = _tested(models_root, store, "planted", "planted")
    biased = [f for f in tested if f.measure == "residual" and f.significant]
    x_slices = [f for f in biased if f.description.startswith("x in ")]
    assert len(x_slices) == 2  # the two quartile bins above the median, and only those
    for finding in x_slices:
        low = float(re.match(r"x in \[(-?[\d.e-]+),", finding.description).group(1))
        assert low > -1e-9  # x > 0: where the bias was planted (the edge is the median, 0)
        assert finding.slice_loss == pytest.approx(PLANTED, abs=1.5)
        assert finding.low < PLANTED < finding.high  # its interval covers the planted size
    # The other features carry no bias: nothing on z1 or z2 passes Holm.
    assert not [f for f in biased if f.description.startswith(("z1 ", "z2 "))]
    # Where x < 0 the model is fair, and better than elsewhere: a strength.
    strong = [f for f in tested if f.measure == "absolute_error" and f.significant
              and f.relative < 0]
    assert any(f.description.startswith("x in [-") for f in strong)


def test_the_card_tells_the_planted_bias_in_the_targets_units(models_root, planted_scope,
                                                              store):
    for name in ("fair", "planted"):
        change_stage(models_root, "planted", store, name, "production", actor="ana",
                     reason="slices", override=True)
    cards = {c.model_name: c for c in export_scope(models_root, "planted", store).cards}
    bias = cards["planted"].known_bias
    first = bias.split("; ")[0]
    size = float(re.match(r"over-predicts y by ([\d.]+) \[", first).group(1))
    assert size == pytest.approx(PLANTED, abs=1.5)
    assert "mean residual +" in first and "not significant" not in first
    assert "lower error" in cards["planted"].strength
    assert "under-predicts" not in bias


def test_a_fair_model_finds_no_bias_and_no_strength(models_root, planted_scope, store):
    tested, _ = _tested(models_root, store, "planted", "fair")
    assert tested  # every slice was tested ...
    assert not slice_findings_of(tested)  # ... and none passes Holm


def slice_findings_of(tested: list[SliceFinding]) -> list[SliceFinding]:
    return [f for f in tested if f.significant]


def test_models_on_pure_noise_find_nothing(models_root, store):
    _scope(models_root, "noise", signal=False, models={
        "mean": lambda X, y: DummyRegressor().fit(X, y),
        "linear": lambda X, y: LinearRegression().fit(X, y)})
    state = scope_state(models_root, "noise", store, n_jobs=1)
    holdout = state.scope.load_holdout()
    for evaluated in state.evaluation.models:
        rows = load_row_predictions(store, evaluated)
        assert slice_findings(rows, holdout, "regression", target="y") == [], \
            evaluated.model_name


def test_holm_keeps_false_alarms_near_alpha_over_many_holdouts():
    """The true function's residuals depend on nothing: over 100 holdouts, each family of
    slices (bias, error) flags at most about α of them (Holm: 5% family-wise)."""
    alarms = {"residual": 0, "absolute_error": 0}
    for seed in range(100):
        X, y = _rows(1000 + seed, 800)
        predicted = np.asarray(50 + 3 * X["x"] + 2 * X["z1"], dtype=float)
        holdout = Holdout(X, y, [], "synthetic")
        rows = RowPredictions(predicted, np.zeros(len(y), dtype=bool))
        for measure in {f.measure for f in slice_findings(rows, holdout, "regression")}:
            alarms[measure] += 1
    assert alarms["residual"] <= 10 and alarms["absolute_error"] <= 10, alarms


def test_diabetes_slices_are_the_models_own_residuals(models_root, regression_scope, store):
    tested, holdout = _tested(models_root, store, "diabetes", "ridge")
    model = joblib.load(regression_scope / "ridge" / "model.joblib")
    residual = model.predict(holdout.features) - holdout.y
    bias = [f for f in tested if f.measure == "residual"]
    error = [f for f in tested if f.measure == "absolute_error"]
    assert bias and error and len(bias) + len(error) == len(tested)
    for finding in bias:
        assert finding.overall_loss == pytest.approx(residual.mean(), rel=1e-9)
        assert 20 <= finding.rows <= len(residual) // 2
        assert finding.low <= finding.slice_loss <= finding.high
        assert 0 <= finding.p_value <= 1
    for finding in error:
        assert finding.overall_loss == pytest.approx(
            mean_absolute_error(holdout.y, model.predict(holdout.features)), rel=1e-9)
    assert any(f.description.startswith("predicted progression in ") for f in bias)
    assert not any(f.description.startswith(("true class", "actual")) for f in tested)


def test_the_diabetes_cards_word_bias_and_strength_in_progression(models_root,
                                                                  regression_scope, store):
    change_stage(models_root, "diabetes", store, "ridge", "production", actor="ana",
                 reason="slices", override=True)
    card = export_scope(models_root, "diabetes", store).cards[0]
    number = r"-?[\d.]+(?:e[+-]\d+)?"
    assert re.match(rf"(over|under)-predicts progression by {number} \[{number}, {number}\] "
                    "where ", card.known_bias), card.known_bias
    assert re.search(rf"\(\d+ rows\): MAE {number} \[{number}, {number}\] vs {number} "
                     r"overall \(\d+% lower error", card.strength), card.strength


def test_regression_sentences_read_in_the_targets_units():
    under = SliceFinding("bp in [0.03, 0.13]", 46, -29.6, -2.3, 0.016, -46.4, -12.8,
                         "residual", 58.9)
    over = SliceFinding("s5 in [-0.10, -0.03]", 44, 24.8, -2.3, 0.0039, 10.9, 38.7,
                        "residual", 58.9)
    within = SliceFinding("age in [0.01, 0.11]", 44, 3.0, -2.3, 0.01, -1.0, 7.0, "residual",
                          58.9)
    assert not within.significant  # its own interval covers 0: no bias in itself
    assert describe_findings([under, over, within], "regression", better=False,
                             target="progression") == (
        "under-predicts progression by 29.6 [12.8, 46.4] where bp in [0.03, 0.13] (46 rows, "
        "mean residual -2.3 overall, p=0.016); over-predicts progression by 24.8 [10.9, 38.7] "
        "where s5 in [-0.10, -0.03] (44 rows, mean residual -2.3 overall, p=0.0039)")
    better = SliceFinding("bmi in [-0.09, -0.03]", 44, 33.0, 47.0, 0.2, 27.0, 39.0,
                          "absolute_error")
    assert describe_findings([better], "regression", better=True) == (
        "bmi in [-0.09, -0.03] (44 rows): MAE 33 [27, 39] vs 47 overall (30% lower error, "
        "p=0.2, not significant)")
    assert describe_findings([better], "regression", better=False) == INSUFFICIENT
