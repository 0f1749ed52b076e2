"""Hostile and broken model files: refused before anything is loaded, each with a clear message.

Every refusal is proven with a pickle whose loading would create a marker folder: the marker
must never appear. A positive control shows the same file does create it when loaded directly.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from factories import edit_cards, make_data, write_marker_pickle, write_model
from sklearn.ensemble import HistGradientBoostingClassifier
from xgboost import XGBClassifier

import promotion
from promotion import InvalidInputError
from promotion.engine import PredictionEngine
from promotion.export import promoted_set
from promotion.scopes import file_sha256, load_scope
from promotion.usecases import build_leaderboard, change_stage, export_scope, scope_state

MODELS = ("logreg", "tree_d3", "bayes")


@pytest.fixture
def exported(models_root, tiny_scope, store):
    for name in MODELS:
        change_stage(models_root, "tiny", store, name, "production", actor="ana",
                               reason="chosen")
    return export_scope(models_root, "tiny", store, "score")


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "MARKER_code_ran"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rank(root, store, scope="tiny"):
    board, _ = build_leaderboard(root, scope, store, n_jobs=1)
    return board


def test_the_marker_pickle_is_live(tmp_path, marker):
    """Positive control: loading the hostile file really does run its code."""
    path = write_marker_pickle(tmp_path / "probe.joblib", marker)
    joblib.load(path)
    assert marker.is_dir()


# --- the engine -------------------------------------------------------------------------------

def test_engine_refuses_a_tampered_file_before_unpickling(models_root, exported, marker):
    write_marker_pickle(models_root / "tiny" / "bayes" / "model.joblib", marker)
    with pytest.raises(InvalidInputError,
                       match="card 'bayes' field 'model_path'.*does not match the card's sha256"):
        PredictionEngine.load("tiny", models_dir=models_root)
    assert not marker.exists()


def test_engine_refuses_a_path_leaving_the_root_before_unpickling(models_root, exported,
                                                                  tmp_path, marker):
    evil = write_marker_pickle(tmp_path / "evil.joblib", marker)
    edit_cards(exported.model_cards, "logreg", model_path="models/../evil.joblib",
               sha256=_sha(evil))  # even with a matching checksum
    with pytest.raises(InvalidInputError, match="leaves the models root"):
        PredictionEngine.load("tiny", models_dir=models_root)
    assert not marker.exists()


@pytest.mark.parametrize("what", ["file", "folder"])
def test_engine_refuses_a_symlink_out_of_the_root(models_root, exported, tmp_path, marker,
                                                  what):
    evil = write_marker_pickle(tmp_path / "outside" / "model.joblib", marker)
    target = models_root / "tiny" / "logreg"
    if what == "file":
        (target / "model.joblib").unlink()
        (target / "model.joblib").symlink_to(evil)
    else:
        os.rename(target, tmp_path / "moved")
        target.symlink_to(evil.parent, target_is_directory=True)
    edit_cards(exported.model_cards, "logreg", sha256=_sha(evil))
    with pytest.raises(InvalidInputError,
                       match="logreg/model.joblib: leaves the models root .*through a symlink"):
        PredictionEngine.load("tiny", models_dir=models_root)
    assert not marker.exists()


@pytest.mark.parametrize(("content", "message"), [
    (lambda path: b"this is not a pickle", "cannot be loaded: "),
    (lambda path: path.read_bytes()[:200], "cannot be loaded"),
    (lambda path: _pickled({"weights": [1, 2]}), "holds a dict, which has no predict_proba"),
])
def test_engine_names_a_broken_file(models_root, exported, content, message):
    """Even with a matching checksum (the card was made for this very file)."""
    path = models_root / "tiny" / "tree_d3" / "model.joblib"
    path.write_bytes(content(path))
    edit_cards(exported.model_cards, "tree_d3", sha256=_sha(path))
    with pytest.raises(InvalidInputError,
                       match=f"card 'tree_d3' field 'model_path': models/tiny/tree_d3/"
                             f"model.joblib: {message}"):
        PredictionEngine.load("tiny", models_dir=models_root)


def _pickled(value) -> bytes:
    import io

    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    return buffer.getvalue()


# --- discovery, evaluation and export --------------------------------------------------------

@pytest.mark.parametrize("what", ["file", "folder"])
def test_evaluation_refuses_a_symlink_out_of_the_root(models_root, tiny_scope, store, tmp_path,
                                                      marker, what):
    evil = write_marker_pickle(tmp_path / "outside" / "model.joblib", marker)
    (tmp_path / "outside" / "meta.json").write_text('{"model_type": "x", "group": "tree"}')
    if what == "file":
        (tiny_scope / "bayes" / "model.joblib").unlink()
        (tiny_scope / "bayes" / "model.joblib").symlink_to(evil)
    else:
        (tiny_scope / "evil").symlink_to(evil.parent, target_is_directory=True)
    board = _rank(models_root, store)
    name = "bayes" if what == "file" else "evil"
    row = board.row(name)
    assert row.status == "failed"
    assert f"models/tiny/{name}/model.joblib: leaves the models root" in row.reason
    assert len(board.ranked) == (3 if what == "file" else 4)
    assert not marker.exists()


def test_a_symlink_inside_the_root_is_fine(models_root, tiny_scope, store):
    shared = models_root / "tiny" / "bayes" / "model.joblib"
    (tiny_scope / "alias").mkdir()
    (tiny_scope / "alias" / "meta.json").write_text('{"model_type": "nb", "group": "neural"}')
    (tiny_scope / "alias" / "model.joblib").symlink_to(shared)
    board = _rank(models_root, store)
    assert board.row("alias").ok


def test_export_refuses_a_file_tampered_after_evaluation_without_loading_it(
        models_root, tiny_scope, store, marker):
    change_stage(models_root, "tiny", store, "logreg", "production", actor="a",
                           reason="r")
    state = scope_state(models_root, "tiny", store, n_jobs=1)
    write_marker_pickle(tiny_scope / "logreg" / "model.joblib", marker)
    with pytest.raises(InvalidInputError,
                       match="tiny/logreg/model.joblib: changed since it was evaluated"):
        promoted_set(state.scope, store, state.evaluation, state.board)
    assert not marker.exists()


def test_a_file_swapped_between_hashing_and_loading_is_refused(models_root, tiny_scope, marker):
    """measure_model loads only bytes that hash to the version it was asked to measure."""
    from promotion.evaluation._measure import MeasureInputs, measure_model

    scope = load_scope(models_root, "tiny")
    holdout = scope.load_holdout()
    path = scope.model("logreg").model_path
    hashed = file_sha256(path)
    write_marker_pickle(path, marker)
    measured = measure_model(path, MeasureInputs.of(scope, holdout), expected_sha256=hashed)
    assert not measured.ok and "does not match the hashed sha256" in measured.reason
    assert not marker.exists()


def test_a_folder_with_both_files_is_refused_unless_meta_names_one(models_root, tiny_scope,
                                                                   store):
    model = joblib.load(tiny_scope / "logreg" / "model.joblib")
    sio.dump(model, tiny_scope / "logreg" / "model.skops")
    board = _rank(models_root, store)
    assert "models/tiny/logreg: holds both model.joblib and model.skops" in \
        board.row("logreg").reason
    meta = json.loads((tiny_scope / "logreg" / "meta.json").read_text())
    (tiny_scope / "logreg" / "meta.json").write_text(json.dumps({**meta,
                                                                 "model_file": "model.skops"}))
    assert _rank(models_root, store).row("logreg").ok


# --- skops ------------------------------------------------------------------------------------

def _as_skops(folder: Path) -> Path:
    model = joblib.load(folder / "model.joblib")
    (folder / "model.joblib").unlink()
    sio.dump(model, folder / "model.skops")
    return folder / "model.skops"


def test_skops_models_rank_export_and_serve_like_joblib(models_root, tiny_scope, store):
    before = _rank(models_root, store)
    for name in ("logreg", "tree_d3"):  # tree_d3 needs a shipped trusted type
        _as_skops(tiny_scope / name)
    after = _rank(models_root, store)
    for name in ("logreg", "tree_d3"):
        assert after.row(name).ok, after.row(name).reason
        for metric in ("accuracy", "log_loss", "top_5_accuracy"):
            assert after.row(name).metrics[metric] == before.row(name).metrics[metric]
    for name in ("logreg", "tree_d3"):
        change_stage(models_root, "tiny", store, name, "production", actor="a",
                               reason="r")
    paths = export_scope(models_root, "tiny", store)
    cards = {c["model_name"]: c for c in json.loads(paths.model_cards.read_text())}
    assert cards["logreg"]["model_path"] == "models/tiny/logreg/model.skops"
    assert cards["logreg"]["sha256"] == _sha(tiny_scope / "logreg" / "model.skops")
    engine = PredictionEngine.load("tiny", models_dir=models_root)
    frame = pd.read_csv(tiny_scope / "holdout.csv").drop(columns="label")
    expected = sum(sio.load(models_root.parent / c["model_path"],
                            trusted=sio.get_untrusted_types(
                                file=models_root.parent / c["model_path"])
                            ).predict_proba(frame) * c["ensemble_weight"]
                   for c in cards.values())
    np.testing.assert_allclose(engine.predict_proba(frame), expected)


def test_untrusted_skops_types_are_refused_by_name_until_the_scope_trusts_them(
        models_root, tiny_scope, store):
    X, y = make_data("multiclass", 300)
    folder = write_model(tiny_scope, "hgb", HistGradientBoostingClassifier(max_iter=5).fit(X, y),
                         model_type="hist_gradient_boosting", group="tree")
    _as_skops(folder)
    reason = _rank(models_root, store).row("hgb").reason
    assert ("models/tiny/hgb/model.skops: holds types that are not trusted: "
            "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor; refused") in reason
    assert "scope.json field 'trusted_types'" in reason
    config = json.loads((tiny_scope / "scope.json").read_text())
    config["trusted_types"] = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
    (tiny_scope / "scope.json").write_text(json.dumps(config))
    assert _rank(models_root, store).row("hgb").ok


def test_xgboost_through_skops_needs_trust_and_says_so(models_root, tiny_scope, store):
    X, y = make_data("multiclass", 300)
    folder = write_model(tiny_scope, "xgb", XGBClassifier(n_estimators=5, max_depth=2).fit(X, y),
                         model_type="xgboost", group="tree")
    _as_skops(folder)
    reason = _rank(models_root, store).row("xgb").reason
    assert "xgboost.core.Booster, xgboost.sklearn.XGBClassifier; refused" in reason
    assert "xgboost models load through skops only when scope.json trusts" in reason
    config = json.loads((tiny_scope / "scope.json").read_text())
    config["trusted_types"] = list(promotion.engine._loading.XGBOOST_TYPES)
    (tiny_scope / "scope.json").write_text(json.dumps(config))
    assert _rank(models_root, store).row("xgb").ok


def test_a_skops_file_naming_a_function_is_refused_without_running_it(models_root, tiny_scope,
                                                                     store, marker):
    (tiny_scope / "bayes" / "model.joblib").unlink()
    sio.dump({"call": os.mkdir, "marker": str(marker)}, tiny_scope / "bayes" / "model.skops")
    reason = _rank(models_root, store).row("bayes").reason
    assert "model.skops: holds types that are not trusted: posix.mkdir; refused" in reason
    assert not marker.exists()


@pytest.mark.parametrize(("content", "message"), [
    (b"not a zip at all", "cannot be loaded: not a skops file"),
    (None, "cannot be loaded"),  # truncated
])
def test_a_broken_skops_file_is_named(models_root, tiny_scope, store, content, message):
    path = _as_skops(tiny_scope / "logreg")
    path.write_bytes(content if content is not None else path.read_bytes()[:300])
    board = _rank(models_root, store)
    assert f"models/tiny/logreg/model.skops: {message}" in board.row("logreg").reason
    assert len(board.ranked) == 3


def test_the_engine_applies_the_scopes_trusted_types(models_root, tiny_scope, store):
    X, y = make_data("multiclass", 300)
    folder = write_model(tiny_scope, "hgb", HistGradientBoostingClassifier(max_iter=5).fit(X, y),
                         model_type="hist_gradient_boosting", group="tree")
    _as_skops(folder)
    config_path = tiny_scope / "scope.json"
    config = json.loads(config_path.read_text())
    trusted = {**config, "trusted_types": [
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]}
    config_path.write_text(json.dumps(trusted))
    change_stage(models_root, "tiny", store, "hgb", "production", actor="a",
                           reason="r", override=True)
    export_scope(models_root, "tiny", store)
    assert PredictionEngine.load("tiny", models_dir=models_root).cards[0].model_name == "hgb"
    config_path.write_text(json.dumps(config))  # trust withdrawn: the engine refuses it
    with pytest.raises(InvalidInputError, match="TreePredictor; refused"):
        PredictionEngine.load("tiny", models_dir=models_root)
