"""Compiled members (ONNX at export, verified on the holdout) and ONNX model files as members."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import (
    make_data,
    make_scope,
    write_marker_pickle,
    write_model,
    write_onnx_member,
)
from misbehaving import Centroid, write_misbehaving
from xgboost import XGBClassifier

from promotion import InvalidInputError
from promotion.contract import READABLE_VERSIONS, SCHEMA_VERSION
from promotion.engine import PredictionEngine
from promotion.usecases import build_leaderboard, change_stage, export_scope

MEMBERS = ("logreg", "tree_d3", "bayes", "xgb", "centroid")


@pytest.fixture
def compiled_scope(models_root: Path) -> Path:
    """A scope served compiled: real scikit-learn models, an XGBoost model fitted on the
    frame (named columns), and one model no converter knows."""
    scope = make_scope(models_root, "cmp", models=("logreg", "tree_d3", "bayes"),
                       scope_extra={"compile_members": True})
    X, y = make_data("multiclass", 600)
    write_model(scope, "xgb", XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1
                                            ).fit(X.iloc[:300], y[:300]),
                model_type="xgboost", group="tree")
    write_misbehaving(scope, "centroid", Centroid())
    return scope


@pytest.fixture
def compiled_export(models_root, compiled_scope, store):
    for name in MEMBERS:
        change_stage(models_root, "cmp", store, name, "production", actor="ana",
                     reason="chosen", override=True)
    return export_scope(models_root, "cmp", store)


def _frame(scope: Path) -> pd.DataFrame:
    return pd.read_csv(scope / "holdout.csv").drop(columns="label")


def _consumer_loop(root: Path, cards: list[dict], frame: pd.DataFrame) -> np.ndarray:
    """The seed's loop on model_path: the native files."""
    return sum(joblib.load(root.parent / c["model_path"]).predict_proba(frame)
               * c["ensemble_weight"] for c in cards)


def test_members_a_converter_handles_are_compiled_verified_and_served(
        models_root, compiled_scope, compiled_export):
    cards = {c["model_name"]: c for c in json.loads(compiled_export.model_cards.read_text())}
    for name in ("logreg", "tree_d3", "bayes", "xgb"):
        card = cards[name]
        onnx = models_root.parent / card["compiled_path"]
        assert onnx.suffix == ".onnx" and onnx.is_relative_to(models_root / "advanced")
        assert hashlib.sha256(onnx.read_bytes()).hexdigest() == card["compiled_sha256"]
        assert 0 <= card["compiled_max_delta"] <= 1e-5
        assert card["compiled_note"].startswith("compiled to ONNX")
        assert card["model_path"] == f"models/cmp/{name}/model.joblib"  # the seed's loop
    assert cards["centroid"]["compiled_path"] is None
    assert cards["centroid"]["compiled_note"].startswith("stays native: no ONNX converter")
    engine = PredictionEngine.load("cmp", models_root, log=False)
    frame = _frame(compiled_scope)
    served = engine.predict_proba(frame)
    expected = _consumer_loop(models_root, list(cards.values()), frame)
    assert np.abs(served - expected).max() <= 1e-5
    assert (served.argmax(axis=1) == expected.argmax(axis=1)).mean() > 0.99


def test_compiled_members_are_served_without_unpickling(models_root, compiled_scope,
                                                        compiled_export, tmp_path):
    marker = tmp_path / "MARKER_code_ran"
    for name in ("logreg", "xgb"):  # their native files now hold a hostile pickle
        write_marker_pickle(compiled_scope / name / "model.joblib", marker)
    engine = PredictionEngine.load("cmp", models_root, log=False)
    engine.predict_proba(_frame(compiled_scope))
    assert not marker.exists()


def test_a_tampered_compiled_file_is_refused_before_loading(models_root, compiled_export):
    card = next(c for c in compiled_export.cards if c.model_name == "xgb")
    onnx = models_root.parent / str(card.compiled_path)
    onnx.write_bytes(onnx.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InvalidInputError, match="card 'xgb' field 'compiled_path'.*does not "
                                                "match the card's sha256"):
        PredictionEngine.load("cmp", models_root)


def test_an_unchanged_member_is_compiled_once(models_root, compiled_export, store):
    first = {c.model_name: c for c in compiled_export.cards}
    written = {n: (models_root.parent / str(c.compiled_path)).stat().st_mtime_ns
               for n, c in first.items() if c.compiled_path}
    again = export_scope(models_root, "cmp", store, "equal")
    for card in again.cards:
        assert card.compiled_path == first[card.model_name].compiled_path
        if card.compiled_path:
            assert (models_root.parent / card.compiled_path).stat().st_mtime_ns == \
                written[card.model_name]


def test_cards_of_version_3_are_read_beside_the_current_one(models_root, compiled_scope,
                                                          compiled_export):
    assert {c.schema_version for c in compiled_export.cards} == {SCHEMA_VERSION}
    cards = json.loads(compiled_export.model_cards.read_text())
    for card in cards:  # a version 3 file: no compiled fields, every member native
        card["schema_version"] = 3
        for key in ("compiled_path", "compiled_sha256", "compiled_max_delta",
                    "compiled_note"):
            del card[key]
    compiled_export.model_cards.write_text(json.dumps(cards))
    engine = PredictionEngine.load("cmp", models_root, log=False)
    assert {m.card.schema_version for m in engine.members} == {3}
    assert not any(m.takes_array for m in engine.members)  # every member from model_path
    frame = _frame(compiled_scope)
    np.testing.assert_allclose(engine.predict_proba(frame),
                               _consumer_loop(models_root, cards, frame))
    assert {3, 4} <= set(READABLE_VERSIONS)


# --- an ONNX file as a member -------------------------------------------------------------

@pytest.mark.parametrize("per_column", [False, True], ids=["one-tensor", "per-column"])
def test_an_onnx_file_is_measured_ranked_exported_and_served(models_root, tiny_scope, store,
                                                             per_column):
    native = write_onnx_member(tiny_scope, "onnx_lr", per_column=per_column)
    board, _ = build_leaderboard(models_root, "tiny", store, n_jobs=1)
    row = board.row("onnx_lr")
    assert row.ok, row.reason
    assert row.rank is not None and 0 < row.composite_score <= 1
    change_stage(models_root, "tiny", store, "onnx_lr", "production", actor="ana",
                 reason="onnx", override=True)
    paths = export_scope(models_root, "tiny", store)
    card = paths.cards[0]
    assert card.model_path == "models/tiny/onnx_lr/model.onnx"
    engine = PredictionEngine.load("tiny", models_root, log=False)
    frame = _frame(tiny_scope)
    served = engine.predict_proba(frame)
    assert np.abs(served - native.predict_proba(frame)).max() <= 1e-5


def test_xgboost_fitted_on_named_columns_compiles_with_its_names_mapped():
    """onnxmltools reads splits as f0, f1, ...: a booster fitted on a frame with other column
    names is converted under those names, and gives the same probabilities."""
    from promotion.engine._onnx import compile_model, load_onnx

    X, y = make_data("multiclass", 400)
    X.columns = [f"pixel_{c}" for c in X.columns]
    native = XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1).fit(X, y)
    onnx = load_onnx(compile_model(native, list(X.columns), native.classes_.tolist()), "x")
    assert list(onnx.feature_names_in_) == list(X.columns)
    assert native.get_booster().feature_names == list(X.columns)  # the fitted model untouched
    assert np.abs(onnx.predict_proba(X) - native.predict_proba(X)).max() <= 1e-5



def test_members_of_a_preprocessed_scope_compile_on_the_preprocessors_output(models_root,
                                                                             store):
    """Text categories and gaps go through the scope's preprocessor; the members, fitted on
    its output, compile and serve within 1e-5 of the seed's loop that applies it first."""
    from factories import cancer_frame, make_real_scope
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def preprocessor(numbers):
        return ColumnTransformer([
            ("num", numbers, [c for c in frame.columns if c not in ("size", "diagnosis")]),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                  OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
             ["size"])])

    frame = cancer_frame()
    make_real_scope(models_root, "pre", frame, "diagnosis", preprocessor=preprocessor(
        "passthrough"), scope_extra={"compile_members": True}, models={
            "logreg": make_pipeline(SimpleImputer(), StandardScaler(),
                                    LogisticRegression(max_iter=2000)),
            "forest": make_pipeline(SimpleImputer(), RandomForestClassifier(
                n_estimators=20, max_depth=4, random_state=0))})
    for name in ("logreg", "forest"):
        change_stage(models_root, "pre", store, name, "production", actor="ana",
                     reason="chosen", override=True)

    def export_and_serve():
        cards = json.loads(export_scope(models_root, "pre", store).model_cards.read_text())
        assert all(c["compiled_path"] for c in cards), [c["compiled_note"] for c in cards]
        X = pd.read_csv(models_root / "pre" / "holdout.csv").drop(columns="diagnosis")
        fitted = joblib.load(models_root.parent / cards[0]["preprocessor_path"])
        expected = _consumer_loop(models_root, cards, fitted.transform(X))
        served = PredictionEngine.load("pre", models_root, log=False).predict_proba(X)
        assert np.abs(served - expected).max() <= 1e-5
        return {c["compiled_path"] for c in cards}

    first = export_and_serve()
    # Another preprocessor (same output columns, other values) is another input: the members
    # are compiled and verified again, not taken from the first export's files.
    train = frame.iloc[:len(frame) // 2].drop(columns="diagnosis")
    joblib.dump(preprocessor(StandardScaler()).fit(train),
                models_root / "pre" / "preprocessor.joblib")
    assert export_and_serve().isdisjoint(first)
