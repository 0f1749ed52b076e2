"""The issue's acceptance path on a regression scope: promote, export, load the engine, and
its ``predict`` equals the cards' weighted mean computed by hand from each member's own file,
in every weighting method, with native and with compiled members."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from promotion.engine import PredictionEngine
from promotion.errors import InvalidInputError
from promotion.usecases import change_stage, export_scope
from promotion.vocabulary import WEIGHTS_METHODS

MEMBERS = ("ridge", "tree_d4", "knn")


def _promote(models_root: Path, store) -> None:
    for name in MEMBERS:
        change_stage(models_root, "diabetes", store, name, "production", actor="ana",
                     reason="end to end", override=True)


def _by_hand(models_root: Path, cards_path: Path, X: pd.DataFrame) -> np.ndarray:
    """Σ weight × member.predict, each member loaded from its card's model_path, in float64."""
    cards = json.loads(cards_path.read_text())
    total = np.zeros(len(X))
    for card in cards:
        model = joblib.load(models_root.parent / card["model_path"])
        total += card["ensemble_weight"] * np.asarray(model.predict(X[card["feature_names"]]),
                                                      dtype=float)
    return total


@pytest.mark.parametrize("method", WEIGHTS_METHODS)
def test_export_engine_predict_equals_the_cards_weighted_mean(models_root, regression_scope,
                                                              store, method):
    _promote(models_root, store)
    paths = export_scope(models_root, "diabetes", store, method)
    X = pd.read_csv(regression_scope / "holdout.csv").drop(columns="progression")
    engine = PredictionEngine.load("diabetes", models_dir=models_root, log=False)
    assert engine.classes == []
    served = engine.predict(X)
    assert served.shape == (len(X),)
    np.testing.assert_allclose(served, _by_hand(models_root, paths.model_cards, X),
                               rtol=1e-12, atol=1e-9)
    with pytest.raises(InvalidInputError, match="regression export: use predict"):
        engine.predict_proba(X)


def test_compiled_members_serve_the_same_weighted_mean(models_root, store):
    from factories import make_regression_scope

    make_regression_scope(models_root, scope_extra={"compile_members": True})
    _promote(models_root, store)
    paths = export_scope(models_root, "diabetes", store, "score")
    cards = json.loads(paths.model_cards.read_text())
    assert any(card["compiled_path"] for card in cards)  # served by onnxruntime
    X = pd.read_csv(models_root / "diabetes" / "holdout.csv").drop(columns="progression")
    engine = PredictionEngine.load("diabetes", models_dir=models_root, log=False)
    expected = _by_hand(models_root, paths.model_cards, X)
    # float32 graphs: within the tolerance each compiled member was verified to
    np.testing.assert_allclose(engine.predict(X), expected, rtol=0,
                               atol=1e-5 * np.abs(expected).max())
