"""Bad input: each gets one message naming the file and field; the rest still ranks."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from factories import make_scope

from promotion import InvalidInputError, ScopeNotFoundError
from promotion.scopes import ScopeProblem, discover_scopes, load_scope
from promotion.usecases import build_leaderboard


def _rank(root, store, scope="tiny"):
    board, _ = build_leaderboard(root, scope, store, n_jobs=1)
    return board


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("{not json", r"tiny/bayes/meta.json: not valid JSON \(line 1"),
        ('{"group": "tree"}', "tiny/bayes/meta.json: field 'model_type' is missing"),
        ('{"model_type": "nb", "group": "forest"}',
         "tiny/bayes/meta.json: field 'group': Input should be 'tree', 'neural', 'variant' or "
         "'linear'"),
        ('{"model_type": "nb", "group": "tree", "accuracy": 0.99}',
         "tiny/bayes/meta.json: unknown key 'accuracy'. Hint: valid keys are model_type"),
        ('[1, 2]', "tiny/bayes/meta.json: must hold a JSON object"),
        ('{"model_type": 3, "group": "tree"}', "tiny/bayes/meta.json: field 'model_type'"),
    ],
)
def test_bad_meta_fails_that_model_only(models_root, tiny_scope, store, meta, message):
    (tiny_scope / "bayes" / "meta.json").write_text(meta)
    board = _rank(models_root, store)
    failed = board.row("bayes")
    assert failed.status == "failed"
    assert failed.reason is not None
    assert re.search(message, failed.reason), failed.reason
    assert [r.rank for r in board.ranked] == [1, 2, 3]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a pickle", "tiny/tree_d1/model.joblib: cannot be loaded"),
        (None, "tiny/tree_d1/model.joblib: file is missing"),
    ],
)
def test_unreadable_model_file_fails_that_model_only(models_root, tiny_scope, store, content,
                                                     message):
    path = tiny_scope / "tree_d1" / "model.joblib"
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content)
    board = _rank(models_root, store)
    assert message in board.row("tree_d1").reason
    assert len(board.ranked) == 3


def test_truncated_model_file_fails_that_model_only(models_root, tiny_scope, store):
    path = tiny_scope / "logreg" / "model.joblib"
    path.write_bytes(path.read_bytes()[:200])
    board = _rank(models_root, store)
    assert "tiny/logreg/model.joblib: cannot be loaded" in board.row("logreg").reason


def test_wrong_features_fail_that_model_only(models_root, tiny_scope, store):
    other = make_scope(models_root / "elsewhere", "x", models=("logreg",))
    frame = pd.read_csv(tiny_scope / "holdout.csv").rename(columns={"f3": "g3"})
    frame.to_csv(tiny_scope / "holdout.csv", index=False)
    board = _rank(models_root, store)
    assert "wrong features" in board.row("logreg").reason
    assert "f3" in board.row("logreg").reason
    assert other.exists()


def test_an_object_without_predict_proba_fails_that_model_only(models_root, tiny_scope, store):
    import joblib

    joblib.dump({"weights": [1, 2, 3]}, tiny_scope / "bayes" / "model.joblib")
    board = _rank(models_root, store)
    assert "holds a dict, which has no predict_proba" in board.row("bayes").reason


@pytest.mark.parametrize(
    ("scope_json", "message"),
    [
        ({"task": "ranking", "target": "label", "holdout": "holdout.csv"},
         "tiny/scope.json: field 'task'"),
        ({"task": "multiclass", "holdout": "holdout.csv"}, "field 'target' is missing"),
        ({"task": "multiclass", "target": "label", "holdout": "holdout.csv", "colour": "red"},
         "unknown key 'colour'. Hint: valid keys are task, target, holdout"),
        ({"task": "multiclass", "target": "label", "holdout": "../secrets.csv"},
         "field 'holdout': must be a path inside the scope folder"),
        ({"task": "multiclass", "target": "label", "holdout": "holdout.csv",
          "weights": {"speed": 1}}, "unknown metric 'speed'. Hint: valid metrics are"),
        ({"task": "multiclass", "target": "label", "holdout": "holdout.csv",
          "n_bootstrap": "many"}, "field 'n_bootstrap'"),
        ({"task": "multiclass", "target": "label", "holdout": "holdout.csv",
          "weights": {"roc_auc": 1}}, "'roc_auc' does not apply to multiclass scopes"),
    ],
)
def test_bad_scope_json_is_one_clear_message(models_root, tiny_scope, scope_json, message):
    (tiny_scope / "scope.json").write_text(json.dumps(scope_json))
    with pytest.raises(InvalidInputError, match=message):
        load_scope(models_root, "tiny")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="label"), "target column 'label' .* is missing"),
        (lambda f: f.iloc[:0], "has no rows"),
        (lambda f: f.assign(label=0), "has one class only"),
        (lambda f: f.assign(f1=float("inf")), "column 'f1' has 300 infinite"),
        (lambda f: f.assign(label=f["label"].astype(float).where(f.index > 3)),
         "column 'label' has 4 empty value"),
    ],
)
def test_bad_holdout_is_one_clear_message(models_root, tiny_scope, store, change, message):
    path = tiny_scope / "holdout.csv"
    change(pd.read_csv(path)).to_csv(path, index=False)
    with pytest.raises(InvalidInputError, match=f"tiny/holdout.csv: .*{message}"):
        _rank(models_root, store)


def test_a_broken_scope_does_not_hide_the_others(models_root, tiny_scope, store):
    make_scope(models_root, "good")
    (tiny_scope / "scope.json").write_text("{")
    (models_root / "advanced" / "leaderboards").mkdir(parents=True)
    found = {item.name: item for item in discover_scopes(models_root)}
    assert set(found) == {"tiny", "good"}  # the export area is not a scope
    assert isinstance(found["tiny"], ScopeProblem)
    assert "tiny/scope.json: not valid JSON" in found["tiny"].error
    assert len(_rank(models_root, store, "good").ranked) == 4


def test_unknown_scope_lists_the_known_ones(models_root, tiny_scope):
    with pytest.raises(ScopeNotFoundError, match="no scope 'nope' .* scopes are tiny"):
        load_scope(models_root, "nope")
    with pytest.raises(ScopeNotFoundError):
        load_scope(models_root, "../tiny")


def test_a_model_predicting_unknown_classes_fails_that_model_only(models_root, tiny_scope, store):
    path = tiny_scope / "holdout.csv"
    frame = pd.read_csv(path)
    frame[frame["label"] != 5].to_csv(path, index=False)  # class 5 never appears any more
    board = _rank(models_root, store)
    assert "predicts class 5, which the scope does not have" in board.row("logreg").reason


def test_a_preprocessor_in_a_subfolder_is_part_of_the_fingerprint(models_root, tiny_scope):
    import joblib
    from sklearn.preprocessing import StandardScaler

    from promotion.scopes import folder_fingerprint

    (tiny_scope / "prep").mkdir()
    joblib.dump(StandardScaler().fit([[0.0], [1.0]]), tiny_scope / "prep" / "scaler.joblib")
    config = json.loads((tiny_scope / "scope.json").read_text())
    (tiny_scope / "scope.json").write_text(json.dumps({**config,
                                                       "preprocessor": "prep/scaler.joblib"}))
    before = folder_fingerprint(tiny_scope)
    joblib.dump(StandardScaler().fit([[0.0], [3.0], [5.0]]), tiny_scope / "prep" / "scaler.joblib")
    assert folder_fingerprint(tiny_scope) != before
