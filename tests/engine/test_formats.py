"""Native model files (LightGBM model.txt, XGBoost model.ubj/model.json, CatBoost model.cbm),
CatBoost pickles and decision-function-only classifiers, on real fitted models.

Each native file is loaded by its own library's parser, never unpickled, and is measured,
ranked, exported and served like a joblib file; its probabilities match the library's own
``predict_proba`` within 1e-6, in the scope's class order.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import catboost
import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import RidgeClassifier, SGDClassifier
from sklearn.svm import LinearSVC

from promotion import InvalidInputError
from promotion.engine import PredictionEngine, load_model_file
from promotion.scopes import load_scope
from promotion.scopes._fingerprint import folder_fingerprint
from promotion.usecases import build_leaderboard, change_stage, export_scope

#: model name -> (file name, meta.json extras)
NATIVE = {"lgbm": "model.txt", "xgb_ubj": "model.ubj", "xgb_json": "model.json",
          "catboost": "model.cbm", "catboost_pickle": "model.joblib"}


def _data(task: str) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Bundled data with feature names holding spaces and string labels."""
    bunch = (load_iris if task == "multiclass" else load_breast_cancer)(as_frame=True)
    X = bunch.data
    order = np.random.default_rng(0).permutation(len(X))
    return X.iloc[order].reset_index(drop=True), bunch.target.to_numpy()[order], \
        [str(n) for n in bunch.target_names]


def _catboost(**params) -> catboost.CatBoostClassifier:
    return catboost.CatBoostClassifier(iterations=8, verbose=0, thread_count=1,
                                       allow_writing_files=False, **params)


@pytest.fixture(scope="module", params=["multiclass", "binary"])
def fitted(request):
    return _fit(request.param)


@pytest.fixture(scope="module")
def fitted_multiclass():
    return _fit("multiclass")


def _fit(task: str):
    """Each library's fitted classifier on the first half of the rows (codes 0..K-1, or the
    string labels for CatBoost, which keeps them), and the holdout half."""
    X, codes, names = _data(task)
    half = len(X) // 2
    train, y = X.iloc[:half], codes[:half]
    labels = np.asarray(names, dtype=object)[y]
    small = {"n_estimators": 8, "max_depth": 3}
    models = {
        "lgbm": lightgbm.LGBMClassifier(**small, verbose=-1, random_state=0).fit(train, y),
        "xgb_ubj": xgboost.XGBClassifier(**small, random_state=0).fit(train, y),
        "xgb_json": xgboost.XGBClassifier(**small, random_state=1).fit(train, y),
        "catboost": _catboost(depth=3, random_seed=0).fit(train, labels),
        "catboost_pickle": _catboost(depth=4, random_seed=1).fit(train, labels),
    }
    holdout = X.iloc[half:].assign(label=np.asarray(names, dtype=object)[codes[half:]])
    return task, names, models, holdout


def _write_scope(root: Path, fitted, scope: str = "formats") -> Path:
    task, names, models, holdout = fitted
    folder = root / scope
    folder.mkdir(parents=True)
    holdout.to_csv(folder / "holdout.csv", index=False)
    config = {"task": task, "target": "label", "holdout": "holdout.csv", "classes": names,
              "n_bootstrap": 100, "latency_rows": 10}
    (folder / "scope.json").write_text(json.dumps(config))
    for name, file_name in NATIVE.items():
        model_dir = folder / name
        model_dir.mkdir()
        meta = {"model_type": name, "group": "tree", "model_file": file_name}
        model = models[name]
        if file_name == "model.txt":
            model.booster_.save_model(model_dir / file_name)
        elif file_name in ("model.ubj", "model.json"):
            model.get_booster().save_model(model_dir / file_name)
        elif file_name == "model.cbm":
            model.save_model(str(model_dir / file_name))
        else:
            joblib.dump(model, model_dir / file_name)
        if name.startswith(("lgbm", "xgb")):
            meta["classes"] = names  # the boosters predict codes 0..K-1
        (model_dir / "meta.json").write_text(json.dumps(meta))
    return folder


def _expected(model, holdout: pd.DataFrame, names: list[str],
              order: list[str] | None = None) -> np.ndarray:
    """The library's own predict_proba, its columns put in ``order`` (the scope's class order
    by default). A booster's integer classes index ``names``, as meta.json's ``classes``."""
    proba = model.predict_proba(holdout.drop(columns="label"))
    own = [names[c] if isinstance(c, int | np.integer) else str(c) for c in model.classes_]
    return proba[:, [own.index(n) for n in order or names]]


def test_each_format_loads_without_unpickling_and_matches_its_library(models_root, fitted):
    task, names, models, holdout = fitted
    scope_dir = _write_scope(models_root, fitted)
    for name, file_name in NATIVE.items():
        path = scope_dir / name / file_name
        classes = names if name.startswith(("lgbm", "xgb")) else None
        model = load_model_file(path, models_root, name, classes=classes).model
        got = model.predict_proba(holdout[_columns(model, holdout)])
        ours = [str(c) for c in model.classes_]
        got = got[:, [ours.index(n) for n in names]]
        np.testing.assert_allclose(got, _expected(models[name], holdout, names), atol=1e-6,
                                   err_msg=name)


def _columns(model, holdout: pd.DataFrame) -> list[str]:
    from promotion.engine._align import model_columns

    return model_columns(model, [c for c in holdout.columns if c != "label"])


def test_native_formats_are_measured_ranked_exported_and_served(models_root, fitted, store):
    task, names, models, holdout = fitted
    _write_scope(models_root, fitted)
    board, _ = build_leaderboard(models_root, "formats", store, n_jobs=1)
    for name in NATIVE:
        row = board.row(name)
        assert row.status == "ok", (name, row.reason)
        key = "roc_auc" if task == "binary" else "accuracy"
        assert row.metrics[key] > 0.8, (name, row.metrics)
        change_stage(models_root, "formats", store, name, "production", actor="ana",
                     reason="native format")
    paths = export_scope(models_root, "formats", store, "equal")
    cards = json.loads(paths.model_cards.read_text())
    assert {c["model_name"]: Path(c["model_path"]).name for c in cards} == NATIVE
    engine = PredictionEngine.load("formats", models_dir=models_root, log=False)
    assert engine.classes == sorted(names)  # the cards' order: scikit-learn's classes_
    breakdown = engine.predict_breakdown(holdout.drop(columns="label"))
    for name in NATIVE:
        np.testing.assert_allclose(breakdown[name],
                                   _expected(models[name], holdout, names, engine.classes),
                                   atol=1e-6, err_msg=name)
    served = engine.predict_proba(holdout.drop(columns="label").iloc[:5])
    np.testing.assert_allclose(served, np.mean([b[:5] for b in breakdown.values()], axis=0),
                               atol=1e-9)


def test_a_catboost_pickle_reports_its_columns(models_root, fitted):
    """Unpickled, CatBoost's n_features_in_ reads 0; its feature_names_ decide the columns."""
    _, names, models, holdout = fitted
    restored = joblib.load(_write_scope(models_root, fitted) / "catboost_pickle" /
                           "model.joblib")
    assert restored.n_features_in_ == 0  # the library's quirk this guards against
    assert _columns(restored, holdout) == list(holdout.columns.drop("label"))


@pytest.mark.parametrize(("estimator", "shown"), [
    (RidgeClassifier(), "RidgeClassifier"), (LinearSVC(), "LinearSVC"),
    (SGDClassifier(penalty="elasticnet", random_state=0), "SGDClassifier")])
def test_a_decision_function_only_classifier_is_a_failed_row_naming_the_fix(
        models_root, store, estimator, shown):
    from factories import make_data, make_scope, write_model

    scope_dir = make_scope(models_root, "tiny", models=("logreg",))
    X, y = make_data()
    write_model(scope_dir, "ridge", estimator.fit(X, y), model_type=shown, group="linear")
    board, _ = build_leaderboard(models_root, "tiny", store, n_jobs=1)
    row = board.row("ridge")
    assert row.status == "failed"
    assert f"holds a {shown}, which has no predict_proba (only decision_function" in row.reason
    assert "CalibratedClassifierCV" in row.reason
    assert board.row("logreg").status == "ok"


@pytest.mark.parametrize(("file_name", "content", "message"), [
    ("model.txt", b"tree\nversion=v4\nobjective=regression\n",
     "LightGBM objective 'regression', not a classifier's"),
    ("model.txt", b"\xff\xfe", "not a LightGBM text model"),
    ("model.ubj", b"not xgboost", "not an XGBoost model"),
    ("model.cbm", b"not catboost", "not a CatBoost model"),
])
def test_a_broken_native_file_is_a_failed_row(models_root, store, file_name, content, message):
    from factories import make_scope

    scope_dir = make_scope(models_root, "tiny", models=("logreg",))
    folder = scope_dir / "broken"
    folder.mkdir()
    (folder / file_name).write_bytes(content)
    (folder / "meta.json").write_text(json.dumps({"model_type": "x", "group": "tree"}))
    board, _ = build_leaderboard(models_root, "tiny", store, n_jobs=1)
    row = board.row("broken")
    assert row.status == "failed"
    assert f"models/tiny/broken/{file_name}: " in row.reason and message in row.reason
    assert board.row("logreg").status == "ok"


def test_meta_classes_must_match_the_booster(models_root, fitted, store):
    _, names, _, _ = fitted
    scope_dir = _write_scope(models_root, fitted)
    meta = json.loads((scope_dir / "lgbm" / "meta.json").read_text())
    (scope_dir / "lgbm" / "meta.json").write_text(json.dumps({**meta, "classes": names[:1]}))
    with pytest.raises(InvalidInputError, match=f"predicts {len(names)} classes, but "
                                                "meta.json field 'classes' lists 1"):
        load_model_file(scope_dir / "lgbm" / "model.txt", models_root, "lgbm",
                        classes=names[:1])
    row = build_leaderboard(models_root, "formats", store, n_jobs=1)[0].row("lgbm")
    assert row.status == "failed" and "meta.json field 'classes' lists 1" in row.reason


def test_relabelling_a_booster_measures_it_again(models_root, fitted_multiclass, store):
    """meta.json 'classes' decides what a booster's columns mean: it is part of the cache
    key, and a label on a file that keeps its own is refused."""
    _, names, _, _ = fitted_multiclass
    scope_dir = _write_scope(models_root, fitted_multiclass)
    board, first = build_leaderboard(models_root, "formats", store, n_jobs=1)
    path = scope_dir / "xgb_ubj" / "meta.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "classes": names[::-1]}))
    for own in ("catboost", "catboost_pickle"):
        meta = scope_dir / own / "meta.json"
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "classes": names}))
    relabelled, second = build_leaderboard(models_root, "formats", store, n_jobs=1)
    assert second.evaluated == 3 and first.evaluated == len(NATIVE)
    assert relabelled.row("xgb_ubj").metrics["accuracy"] < 0.5 < \
        board.row("xgb_ubj").metrics["accuracy"]
    for own in ("catboost", "catboost_pickle"):
        assert "keeps its own class labels (classes_): meta.json field 'classes' is for " \
               "LightGBM and XGBoost boosters only" in relabelled.row(own).reason


def test_native_files_are_found_and_fingerprinted(models_root, fitted):
    scope_dir = _write_scope(models_root, fitted)
    scope = load_scope(models_root, "formats")
    assert {m.name: m.model_file for m in scope.models} == NATIVE
    before = folder_fingerprint(scope_dir)
    (scope_dir / "lgbm" / "model.txt").write_text(
        (scope_dir / "lgbm" / "model.txt").read_text() + "\n")
    assert folder_fingerprint(scope_dir) != before
    # Two model files and no name: which one is meant is not guessed.
    (scope_dir / "lgbm" / "model.cbm").write_bytes(b"x")
    meta = json.loads((scope_dir / "lgbm" / "meta.json").read_text())
    del meta["model_file"]
    (scope_dir / "lgbm" / "meta.json").write_text(json.dumps(meta))
    entry = {m.name: m for m in load_scope(models_root, "formats").models}["lgbm"]
    assert "holds both model.txt and model.cbm" in entry.error


def test_a_missing_optional_library_is_a_failed_row_naming_it(models_root, fitted_multiclass,
                                                              tmp_path):
    """On a machine without LightGBM and CatBoost (here: packages that cannot be imported, in
    the command's process and in its evaluation workers), their models fail and name the
    package; the others rank."""
    _write_scope(models_root, fitted_multiclass)
    for package in ("lightgbm", "catboost"):
        hidden = tmp_path / "hidden" / package
        hidden.mkdir(parents=True)
        (hidden / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{package}'\", name={package!r})\n")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'hidden'}{os.pathsep}{root}"}
    env.pop("PROMOTION_DB_URL", None)
    done = subprocess.run([sys.executable, "-m", "promotion", "leaderboard", "--scope",
                           "formats", "--models-dir", str(models_root)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    failing = {"lgbm": "lightgbm", "catboost": "catboost", "catboost_pickle": "catboost"}
    for name, file_name in NATIVE.items():
        line = next(row for row in done.stdout.splitlines() if f" {name} " in f" {row} ")
        assert ("FAILED" in line) is (name in failing), line
        if name in failing:
            package = failing[name]
            assert f"models/formats/{name}/{file_name}: " in line
            assert line.endswith(f", and {package} is not installed. Hint: pip install -r "
                                 f"requirements-formats.txt (or pip install {package})"), line
    assert "is a LightGBM model file, and lightgbm is not installed" in done.stdout
    assert "is a CatBoost model file, and catboost is not installed" in done.stdout
    assert "holds a model of catboost, and catboost is not installed" in done.stdout
