"""The engine's frame input: columns in any order, extra columns ignored, a missing one named,
the same answer as from the features in the cards' order (compiled members take one float32
array of the whole frame's, native ones the frame of the features)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import make_scope
from misbehaving import Centroid, write_misbehaving

from promotion import InvalidInputError
from promotion.engine import PredictionEngine
from promotion.usecases import change_stage, export_scope

MEMBERS = ("logreg", "bayes", "centroid")


@pytest.fixture
def mixed(models_root: Path, store) -> Path:
    """Two members compiled to ONNX and one native (no converter knows it) that reads its
    frame by position: a frame in the wrong order would change its answer."""
    scope = make_scope(models_root, "mix", models=("logreg", "bayes"),
                       scope_extra={"compile_members": True})
    write_misbehaving(scope, "centroid", Centroid())
    for name in MEMBERS:
        change_stage(models_root, "mix", store, name, "production", actor="ana",
                     reason="frame test", override=True)
    export_scope(models_root, "mix", store)
    return models_root


def _features(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "mix" / "holdout.csv").drop(columns="label")


def test_the_members_are_compiled_and_native(mixed):
    engine = PredictionEngine.load("mix", mixed, log=False)
    assert {m.card.model_name: m.takes_array for m in engine.members} == {
        "logreg": True, "bayes": True, "centroid": False}


@pytest.mark.parametrize("arrange", [
    pytest.param(lambda X: X[X.columns[::-1]], id="reversed"),
    pytest.param(lambda X: X.assign(unused=7.0, label=1)[["label", *X.columns, "unused"]],
                 id="extra numbers"),
    pytest.param(lambda X: X.assign(note="a text")[["note", *X.columns[::-1]]],
                 id="extra text"),
    pytest.param(lambda X: X.assign(big=1e300)[[*X.columns[::-1], "big"]],
                 id="extra column overflowing float32"),
    pytest.param(lambda X: pd.concat([X[X.columns[::-1]], X[["f0"]].rename(
        columns={"f0": "dup"}), X[["f1"]].rename(columns={"f1": "dup"})], axis=1),
                 id="an extra name twice"),
    pytest.param(lambda X: pd.DataFrame(X.to_numpy(), columns=X.columns)[X.columns[::-1]],
                 id="one block, reversed"),
])
def test_a_frame_in_any_order_with_extra_columns_answers_as_the_features_do(mixed, arrange):
    X = _features(mixed)
    engine = PredictionEngine.load("mix", mixed, log=False)
    expected = engine.predict_proba(X)
    arranged = arrange(X)
    assert list(arranged.columns) != list(X.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing said of a column the cards do not need
        np.testing.assert_array_equal(engine.predict_proba(arranged), expected)
        breakdown = engine.predict_breakdown(arranged)
        for name, proba in engine.predict_breakdown(X).items():
            np.testing.assert_array_equal(breakdown[name], proba)
        # one row at a time, each a slice of the arranged frame (its columns checked once);
        # onnxruntime's sums over one row and over many differ in the last bits
        for i in (0, 5, 17):
            np.testing.assert_array_equal(engine.predict_proba(arranged.iloc[[i]]),
                                          engine.predict_proba(X.iloc[[i]]))


def test_a_missing_column_is_named_after_frames_of_other_columns(mixed):
    X = _features(mixed)
    engine = PredictionEngine.load("mix", mixed, log=False)
    engine.predict_proba(X.iloc[:3])
    reversed_ = X[X.columns[::-1]]
    engine.predict_proba(reversed_.iloc[:3])
    with pytest.raises(InvalidInputError, match="missing feature column 'f2';"):
        engine.predict_proba(X.drop(columns="f2"))
    with pytest.raises(InvalidInputError, match=r"missing feature column 'f2' \(and 1 more\)"):
        engine.predict_proba(reversed_.drop(columns=["f5", "f2"]).assign(extra=1.0))
    # a feature named twice: pandas picks both, the members refuse what they get
    twice = pd.concat([X, X[["f3"]]], axis=1)
    with pytest.raises(InvalidInputError, match="no healthy model left"):
        engine.predict_proba(twice)


def test_the_log_keeps_the_features_in_the_cards_order(mixed):
    X = _features(mixed)
    engine = PredictionEngine.load("mix", mixed)
    engine.serve(X.assign(extra=3.0)[["extra", *X.columns[::-1]]].iloc[:20])
    engine.close()
    from promotion.monitoring import load_live

    live = load_live(mixed, "mix")
    assert live.features == list(X.columns)
    [inputs] = list(live.input_batches(None))
    np.testing.assert_array_equal(inputs, X.iloc[:20].to_numpy(dtype=np.float32))
