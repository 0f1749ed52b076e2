"""Exporting a regression scope (scikit-learn's diabetes data): cards, ensemble weights by
every method, the seed's consumer loop on ``predict``, and the leaderboard file.

Every figure is checked against an independent computation: the members loaded by hand from
their ``model_path``, scikit-learn's metrics on the holdout rows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import install_old_cards, make_scope
from jsonschema import Draft202012Validator
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from promotion.contract import SCHEMA_VERSION, ModelCards
from promotion.engine import PredictionEngine, read_cards
from promotion.export import compare_ensembles, ensemble_table, promoted_set
from promotion.export._ensemble import greedy_selection, holdout_halves
from promotion.metrics import get_metric_names
from promotion.scopes import file_sha256
from promotion.usecases import change_stage, export_scope, scope_state
from promotion.vocabulary import WEIGHTS_METHODS

ROOT = Path(__file__).resolve().parents[2]
PROMOTED = ("ridge", "tree_d4", "knn", "mean")
REGRESSION_METRICS = {"rmse", "mae", "r2", "error_rate", "latency_p50_ms", "latency_p95_ms",
                      "throughput_rows_s", "artifact_size_mb", "load_memory_mb"}


@pytest.fixture
def promoted(models_root, regression_scope, store):
    for name in PROMOTED:
        change_stage(models_root, "diabetes", store, name, "production", actor="ana",
                     reason="regression ensemble", override=True)
    return models_root


def _holdout(models_root: Path) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(models_root / "diabetes" / "holdout.csv")
    return frame.drop(columns="progression"), frame["progression"].to_numpy()


def _own_predictions(models_root: Path, cards: list[dict], X: pd.DataFrame) -> np.ndarray:
    """Each member's own predict, loaded by hand from its card's model_path: (members, rows)."""
    return np.array([joblib.load(models_root.parent / c["model_path"]).predict(X)
                     for c in cards])


@pytest.mark.parametrize("method", WEIGHTS_METHODS)
def test_regression_cards_follow_the_contract(promoted, store, method):
    paths = export_scope(promoted, "diabetes", store, method)
    cards = json.loads(paths.model_cards.read_text())
    ModelCards.model_validate(cards)
    assert [c.model_dump(mode="json") for c in read_cards(paths.model_cards)] == cards
    assert {c["model_name"] for c in cards} == set(PROMOTED)
    X, y = _holdout(promoted)
    own = _own_predictions(promoted, cards, X)
    for card, predicted in zip(cards, own, strict=True):
        assert card["schema_version"] == SCHEMA_VERSION and card["task"] == "regression"
        assert card["classes"] == []
        for field in ("top_5_accuracy", "roc_auc", "positive_class", "decision_threshold"):
            assert card[field] is None, field
        assert set(card["metrics"]) == REGRESSION_METRICS
        rmse = np.sqrt(mean_squared_error(y, predicted))
        assert card["rmse"] == card["metrics"]["rmse"]["value"] == pytest.approx(rmse,
                                                                                 rel=1e-12)
        assert card["metrics"]["mae"]["value"] == pytest.approx(
            mean_absolute_error(y, predicted), rel=1e-12)
        assert card["metrics"]["r2"]["value"] == pytest.approx(r2_score(y, predicted),
                                                               rel=1e-12)
        for name in ("rmse", "mae", "r2"):
            value = card["metrics"][name]
            assert value["low"] <= value["value"] <= value["high"], (name, value)
        assert card["model_path"] == f"models/diabetes/{card['model_name']}/model.joblib"
        assert card["sha256"] == file_sha256(promoted.parent / card["model_path"])
        assert card["feature_names"] == list(X.columns)
        assert card["weights_method"] == method
    assert sum(c["ensemble_weight"] for c in cards) == pytest.approx(1, abs=1e-12)
    assert all(c["ensemble_weight"] >= 0 for c in cards)


@pytest.mark.parametrize("method", WEIGHTS_METHODS)
def test_the_seeds_loop_on_predict_is_the_weighted_mean_of_the_members(promoted, store,
                                                                       monkeypatch, method):
    """The consumer loop of docs/export-and-engine.md, run verbatim, equals the weighted
    mean of the members' own predictions, and the export's own evaluation of them."""
    paths = export_scope(promoted, "diabetes", store, method)
    cards = json.loads(paths.model_cards.read_text())
    X, _ = _holdout(promoted)
    by_hand = np.zeros(len(X))
    for card, predicted in zip(cards, _own_predictions(promoted, cards, X), strict=True):
        by_hand += card["ensemble_weight"] * predicted
    monkeypatch.chdir(promoted.parent)  # model_path is relative to the models root's parent
    namespace = {"json": json, "joblib": joblib, "cards_path": paths.model_cards, "X": X,
                 "ensemble": 0}
    exec(_docs_loop("consumer-loop-regression"), namespace)  # noqa: S102 - the docs' code
    np.testing.assert_array_equal(namespace["ensemble"], by_hand)
    state = scope_state(promoted, "diabetes", store)
    chosen = promoted_set(state.scope, store, state.evaluation, state.board)
    weights = {c["model_name"]: c["ensemble_weight"] for c in cards}
    evaluated = sum(weights[r.model_name] * output
                    for r, output in zip(chosen.rows, chosen.outputs, strict=True))
    np.testing.assert_allclose(evaluated, by_hand, rtol=1e-12)


def _docs_loop(marker: str) -> str:
    text = (ROOT / "docs" / "export-and-engine.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", text, re.S)
    assert found, f"docs/export-and-engine.md has no block marked {marker}"
    return found.group(1)


def test_greedy_weights_are_fitted_on_one_half_and_reported_on_the_other(promoted, store):
    state = scope_state(promoted, "diabetes", store)
    chosen = promoted_set(state.scope, store, state.evaluation, state.board)
    y = chosen.targets
    fit, report = holdout_halves(len(y), state.scope.config.bootstrap_seed)
    assert not set(fit) & set(report) and len(fit) + len(report) == len(y)
    cards = export_scope(promoted, "diabetes", store, "greedy").cards
    weights = np.array([next(c.ensemble_weight for c in cards if c.model_name == r.model_name)
                        for r in chosen.rows])
    # Caruana selection on squared error, by hand on the fitting half only: the same picks.
    picks = np.zeros(len(chosen.rows))
    total = np.zeros(len(fit))
    for step in range(1, 26):
        errors = [np.mean(((total + p[fit]) / step - y[fit]) ** 2) for p in chosen.outputs]
        best = int(np.argmin(errors))
        picks[best] += 1
        total += chosen.outputs[best][fit]
    np.testing.assert_allclose(weights, picks / 25, atol=1e-12)
    # The reporting half plays no part: other targets there, the same weights.
    shuffled = y.copy()
    shuffled[report] = shuffled[report][::-1]
    refit = greedy_selection([p[fit] for p in chosen.outputs], shuffled[fit], 25)
    np.testing.assert_allclose(refit, picks / 25)
    # The greedy ensemble beats the no-skill member on the fitting half it was chosen on.
    mean_index = [r.model_name for r in chosen.rows].index("mean")
    assert weights[mean_index] < max(weights)


def test_the_ensemble_comparison_reports_rmse_mae_and_r2_on_the_reporting_half(promoted,
                                                                               store):
    state = scope_state(promoted, "diabetes", store)
    chosen = promoted_set(state.scope, store, state.evaluation, state.board)
    reports, singles = compare_ensembles(chosen)
    assert [r.method for r in reports] == list(WEIGHTS_METHODS)
    _, report = holdout_halves(len(chosen.targets), state.scope.config.bootstrap_seed)
    X, y = _holdout(promoted)
    members = {r.model_name: joblib.load(promoted / "diabetes" / r.model_name / "model.joblib"
                                         ).predict(X.iloc[report]) for r in chosen.rows}
    for entry in reports:
        blend = sum(entry.weights[name] * members[name] for name in members)
        assert entry.metrics["rmse"] == pytest.approx(
            np.sqrt(mean_squared_error(y[report], blend)), rel=1e-12)
        assert entry.metrics["mae"] == pytest.approx(mean_absolute_error(y[report], blend),
                                                     rel=1e-12)
        assert entry.metrics["r2"] == pytest.approx(r2_score(y[report], blend), rel=1e-12)
    for name, metrics in singles.items():
        assert metrics["rmse"] == pytest.approx(
            np.sqrt(mean_squared_error(y[report], members[name])), rel=1e-12)
    table = ensemble_table(reports, singles, "regression")
    assert list(table.columns) == ["ensemble", "rmse", "mae", "r2"]
    best = min(singles, key=lambda n: singles[n]["rmse"])  # lower RMSE is better
    assert table["ensemble"].iloc[-1] == f"best single model ({best})"
    assert best != "mean"


def test_the_leaderboard_file_names_exactly_the_regression_metrics(promoted, store):
    paths = export_scope(promoted, "diabetes", store, "score")
    board = json.loads(paths.leaderboard.read_text())
    assert board["task"] == "regression" and board["schema_version"] == SCHEMA_VERSION
    assert set(get_metric_names("regression")) == REGRESSION_METRICS
    X, y = _holdout(promoted)
    for entry in board["models"]:
        assert set(entry["metrics"]) == REGRESSION_METRICS, entry["model_name"]
        predicted = joblib.load(promoted / "diabetes" / entry["model_name"] / "model.joblib"
                                ).predict(X)
        assert entry["metrics"]["rmse"]["value"] == pytest.approx(
            np.sqrt(mean_squared_error(y, predicted)), rel=1e-12)
    assert {"rmse", "mae", "r2"} <= set(board["chance_levels"])
    assert not {"accuracy", "log_loss", "top_5_accuracy", "roc_auc"} & set(
        board["chance_levels"])


def test_regression_exports_validate_against_the_committed_schemas(promoted, store):
    """A consumer in another language validates with schemas/: regression files pass."""
    paths = export_scope(promoted, "diabetes", store, "greedy")
    for name, path in (("model_cards", paths.model_cards), ("leaderboard", paths.leaderboard)):
        schema = json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
        errors = list(Draft202012Validator(schema).iter_errors(json.loads(path.read_text())))
        assert not errors, (name, [e.message for e in errors[:3]])


def test_a_version_4_cards_file_still_reads_and_serves(models_root, store):
    """A committed file written by the version-4 exporter (before regression scopes)."""
    make_scope(models_root, "tiny")
    fixture = ROOT / "tests" / "fixtures" / "model_cards_v4.json"
    written = install_old_cards(models_root, fixture, "20250101T000000000000Z")
    path = models_root / "advanced" / "model_cards" / \
        "model_cards_tiny_20250101T000000000000Z.json"
    cards = read_cards(path)
    assert {c.schema_version for c in cards} == {4}
    assert all(c.rmse is None and c.task == "multiclass" and len(c.classes) == 6
               for c in cards)
    engine = PredictionEngine.load("tiny", models_dir=models_root, log=False)
    try:
        X = pd.read_csv(models_root / "tiny" / "holdout.csv").drop(columns="label")
        served = engine.predict_proba(X)
    finally:
        engine.close()
    expected = sum(c["ensemble_weight"] * joblib.load(models_root.parent / c["model_path"])
                   .predict_proba(X) for c in written)
    np.testing.assert_allclose(served, expected, rtol=1e-12)
