"""Regression models in every file format that loads without unpickling: ONNX graphs converted
by skl2onnx (Ridge, a random forest, an MLP), LightGBM ``model.txt``, XGBoost
``model.ubj``/``model.json`` and CatBoost ``model.cbm``, each with a regression objective.

Each is loaded for ``predict`` (one value per row) by its own library's parser, matches that
library's own prediction within 1e-6 (relative) on the diabetes holdout, and is measured and
ranked in a regression scope with the metrics scikit-learn computes from the same
predictions. A file of the other kind (a regressor where a classifier is needed, or the
reverse) is refused, saying which it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import xgboost
from factories import make_regression_scope, make_scope
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.neural_network import MLPRegressor

from promotion import InvalidInputError
from promotion.engine import load_model_file
from promotion.usecases import build_leaderboard

#: model name -> its file in the scope
FILES = {"onnx_ridge": "model.onnx", "onnx_forest": "model.onnx", "onnx_mlp": "model.onnx",
         "lgbm": "model.txt", "xgb_ubj": "model.ubj", "xgb_json": "model.json",
         "catboost": "model.cbm"}
#: the optional libraries each model needs (skipped cleanly when one is absent)
NEEDS = {"lgbm": "lightgbm", "catboost": "catboost"}


def _diabetes() -> tuple[pd.DataFrame, pd.Series, int]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return X, y, int(len(X) * 0.6)  # the split make_regression_scope uses


def _library_models() -> dict[str, object]:
    """Each library's fitted regressor, on the rows make_regression_scope trains on."""
    X, y, split = _diabetes()
    train, target = X.iloc[:split], y.iloc[:split]
    small = {"n_estimators": 30, "max_depth": 3}
    models: dict[str, object] = {
        "onnx_ridge": Ridge(alpha=0.1).fit(train, target),
        "onnx_forest": RandomForestRegressor(n_estimators=30, max_depth=5,
                                             random_state=0).fit(train, target),
        "onnx_mlp": MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=3000,
                                 alpha=1e-3, random_state=0).fit(train.to_numpy(), target),
        "xgb_ubj": xgboost.XGBRegressor(**small, random_state=0).fit(train, target),
        "xgb_json": xgboost.XGBRegressor(**small, random_state=1,
                                         objective="reg:absoluteerror").fit(train, target),
    }
    try:
        import lightgbm

        models["lgbm"] = lightgbm.LGBMRegressor(**small, verbose=-1,
                                                random_state=0).fit(train, target)
    except ImportError:
        pass
    try:
        import catboost

        models["catboost"] = catboost.CatBoostRegressor(
            iterations=30, depth=3, verbose=0, thread_count=1, random_seed=0,
            allow_writing_files=False).fit(train, target)
    except ImportError:
        pass
    return models


def _onnx_bytes(model) -> bytes:
    onx = convert_sklearn(model, initial_types=[("X", FloatTensorType([None, 10]))],
                          target_opset={"": 17, "ai.onnx.ml": 3})
    return onx.SerializeToString()


def _save(model, name: str, folder: Path) -> None:
    folder.mkdir(parents=True)
    path = folder / FILES[name]
    if name.startswith("onnx"):
        path.write_bytes(_onnx_bytes(model))
    elif name == "lgbm":
        model.booster_.save_model(path)
    elif name.startswith("xgb"):
        model.get_booster().save_model(path)
    else:
        model.save_model(str(path))
    (folder / "meta.json").write_text(json.dumps({"model_type": name, "group": "tree",
                                                  "model_file": FILES[name]}))


@pytest.fixture(scope="module")
def fitted():
    return _library_models()


def _skip_without(name: str, fitted) -> None:
    if name not in fitted:
        pytest.skip(f"{NEEDS[name]} is not installed")


@pytest.fixture
def formats_scope(models_root, fitted) -> Path:
    scope_dir = make_regression_scope(models_root, "formats", models=())
    for name, model in fitted.items():
        _save(model, name, scope_dir / name)
    return scope_dir


def _holdout() -> pd.DataFrame:
    X, _, split = _diabetes()
    return X.iloc[split:]


def _own_prediction(name: str, model, holdout: pd.DataFrame) -> np.ndarray:
    """What the file's own library answers: onnxruntime on the graph for ONNX files, the
    fitted regressor's predict for the boosters."""
    if name.startswith("onnx"):
        session = ort.InferenceSession(_onnx_bytes(model), providers=["CPUExecutionProvider"])
        return session.run(None, {"X": holdout.to_numpy(np.float32)})[0][:, 0]
    return model.predict(holdout)


@pytest.mark.parametrize("name", list(FILES))
def test_each_format_predicts_what_its_library_predicts(models_root, formats_scope, fitted,
                                                        name):
    _skip_without(name, fitted)
    holdout = _holdout()
    model = load_model_file(formats_scope / name / FILES[name], models_root, name,
                            needs="predict").model
    got = model.predict(holdout)
    assert got.shape == (len(holdout),)
    np.testing.assert_allclose(got, _own_prediction(name, fitted[name], holdout), rtol=1e-6,
                               err_msg=name)
    assert not hasattr(model, "classes_")  # a regressor, never mistaken for a classifier
    assert not hasattr(model, "predict_proba")
    with pytest.raises(AttributeError, match="predicts values, not class probabilities: "
                                             "call predict"):
        model.predict_proba(holdout)


def test_the_onnx_graphs_agree_with_scikit_learn_within_float32(models_root, formats_scope,
                                                               fitted):
    """The graphs compute in float32: within 1e-5 of the target's scale of scikit-learn's own
    predict (the compiled members' bar)."""
    holdout = _holdout()
    for name in ("onnx_ridge", "onnx_forest", "onnx_mlp"):
        model = load_model_file(formats_scope / name / "model.onnx", models_root, name,
                                needs="predict").model
        native = fitted[name].predict(holdout.to_numpy() if name == "onnx_mlp" else holdout)
        delta = np.abs(model.predict(holdout) - native).max()
        assert delta <= 1e-5 * np.abs(native).max(), (name, delta)


def test_every_format_is_measured_and_ranked_with_scikit_learns_metrics(models_root,
                                                                       formats_scope, fitted,
                                                                       store):
    board, _ = build_leaderboard(models_root, "formats", store, n_jobs=1)
    holdout = _holdout()
    y = pd.read_csv(formats_scope / "holdout.csv")["progression"].to_numpy()
    for name, model in fitted.items():
        row = board.row(name)
        assert row.status == "ok", (name, row.reason)
        predicted = _own_prediction(name, model, holdout)
        assert row.metrics["rmse"] == pytest.approx(
            np.sqrt(mean_squared_error(y, predicted)), rel=1e-6), name
        assert row.metrics["mae"] == pytest.approx(mean_absolute_error(y, predicted),
                                                   rel=1e-6), name
        assert row.metrics["r2"] == pytest.approx(r2_score(y, predicted), rel=1e-6), name
        assert row.metrics["r2"] > 0.2, (name, row.metrics["r2"])  # real skill, not a guess
    ranks = sorted(board.row(name).rank for name in fitted)
    assert ranks == list(range(1, len(fitted) + 1))


@pytest.mark.parametrize(("name", "message"), [
    ("lgbm", "has LightGBM objective 'regression', not a classifier's (binary, "
             "cross_entropy, multiclass, multiclassova): it is a regressor (predict, no "
             "predict_proba)"),
    ("xgb_ubj", "has XGBoost objective 'reg:squarederror', not a classifier's"),
    ("catboost", "has CatBoost objective 'RMSE', not a classifier's"),
    ("onnx_ridge", "is a regressor (one value per row, no class labels), not a classifier: "
                   "it has no predict_proba"),
])
def test_a_regressor_in_a_classification_scope_is_a_failed_row_saying_so(
        models_root, store, fitted, name, message):
    _skip_without(name, fitted)
    scope_dir = make_scope(models_root, "tiny", models=("logreg",))
    _save(fitted[name], name, scope_dir / name)
    board, _ = build_leaderboard(models_root, "tiny", store, n_jobs=1)
    row = board.row(name)
    assert row.status == "failed" and message in row.reason, row.reason
    assert board.row("logreg").status == "ok"


def _classifiers() -> dict[str, tuple[object, str]]:
    """Each library's classifier (on the diabetes rows, label: above the median) and the
    words its refusal in a regression scope holds."""
    from sklearn.linear_model import LogisticRegression

    X, y, split = _diabetes()
    train, label = X.iloc[:split], (y.iloc[:split] > y.median()).astype(int)
    found = {
        "xgb_ubj": (xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(train, label),
                    "has XGBoost objective 'binary:logistic', not a regressor's "
                    "(reg:squarederror"),
        "onnx_ridge": (LogisticRegression().fit(train, label),
                       "is a classifier (it names class labels [0, 1]), not a regressor: it "
                       "has no predict for values"),
    }
    try:
        import lightgbm

        found["lgbm"] = (lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(train, label),
                         "has LightGBM objective 'binary', not a regressor's (regression, "
                         "regression_l1")
    except ImportError:
        pass
    try:
        import catboost

        found["catboost"] = (catboost.CatBoostClassifier(
            iterations=5, verbose=0, allow_writing_files=False).fit(train, label),
            "has CatBoost objective 'Logloss', not a regressor's (RMSE")
    except ImportError:
        pass
    return found


def test_a_classifier_in_a_regression_scope_is_a_failed_row_saying_so(models_root, store):
    scope_dir = make_regression_scope(models_root, models=("ridge",))
    classifiers = _classifiers()
    for name, (model, _) in classifiers.items():
        _save(model, name, scope_dir / name)
    board, _ = build_leaderboard(models_root, "diabetes", store, n_jobs=1)
    for name, (_, message) in classifiers.items():
        row = board.row(name)
        assert row.status == "failed" and message in row.reason, (name, row.reason)
        assert f"models/diabetes/{name}/{FILES[name]}: " in row.reason
    assert board.row("ridge").status == "ok"


def test_meta_classes_on_a_regression_booster_are_refused(models_root, formats_scope):
    path = formats_scope / "xgb_ubj" / "model.ubj"
    with pytest.raises(InvalidInputError, match="is a regressor \\(XGBoost objective "
                                                "'reg:squarederror'\\), so meta.json field "
                                                "'classes' does not apply. Hint: remove it"):
        load_model_file(path, models_root, "xgb_ubj", classes=["low", "high"], needs="predict")
