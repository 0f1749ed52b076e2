"""Compiled regression members: converted to ONNX at export and verified against the native
``predict`` over every holdout row, within 1e-5 of the largest |native prediction| (float32
arithmetic on the target's scale); a member no converter handles, or whose graph disagrees,
stays native and its card says why."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import joblib
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from factories import make_regression_scope, write_model
from misbehaving import FailsOnSomeRows
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.neural_network import MLPRegressor
from xgboost import XGBRegressor

from promotion import InvalidInputError
from promotion.engine import load_model_file
from promotion.engine._onnx import OnnxModel, OnnxRegressor
from promotion.export._compile import MAX_DELTA
from promotion.usecases import change_stage, export_scope

CONVERTED = ("ridge", "tree_d4", "knn", "forest", "mlp", "xgb")


def _train() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    split = int(len(X) * 0.6)  # make_regression_scope's split
    return X.iloc[:split], y.iloc[:split]


@pytest.fixture
def compiled_scope(models_root: Path) -> Path:
    scope = make_regression_scope(models_root, "dcmp", models=("ridge", "tree_d4", "knn"),
                                  scope_extra={"compile_members": True})
    X, y = _train()
    extra = {
        "forest": RandomForestRegressor(n_estimators=40, max_depth=6, random_state=0),
        "mlp": MLPRegressor(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=3000,
                            alpha=1e-3, random_state=0),
        "xgb": XGBRegressor(n_estimators=40, max_depth=3, n_jobs=1, random_state=0),
    }
    for name, model in extra.items():
        write_model(scope, name, model.fit(X, y), model_type=name, group="tree")
    write_model(scope, "flaky", FailsOnSomeRows(Ridge().fit(X, y), "bmi", 0.12),
                model_type="ridge", group="linear")
    return scope


def _export(models_root: Path, store, names: tuple[str, ...]) -> list[dict]:
    for name in names:
        change_stage(models_root, "dcmp", store, name, "production", actor="ana",
                     reason="compiled", override=True)
    return json.loads(export_scope(models_root, "dcmp", store, "equal").model_cards.read_text())


def _features(scope: Path) -> pd.DataFrame:
    return pd.read_csv(scope / "holdout.csv").drop(columns="progression")


def test_regressors_are_compiled_and_verified_on_every_holdout_row(models_root,
                                                                  compiled_scope, store):
    cards = {c["model_name"]: c for c in _export(models_root, store, (*CONVERTED, "flaky"))}
    X = _features(compiled_scope)
    for name in CONVERTED:
        card = cards[name]
        assert card["compiled_path"] is not None, card["compiled_note"]
        onnx = models_root.parent / card["compiled_path"]
        assert hashlib.sha256(onnx.read_bytes()).hexdigest() == card["compiled_sha256"]
        native = joblib.load(models_root.parent / card["model_path"]).predict(X)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # as served: a forest's sum in one order
        session = ort.InferenceSession(onnx.read_bytes(), options,
                                       providers=["CPUExecutionProvider"])
        compiled = session.run(None, {"input": X.to_numpy(np.float32)})[0][:, 0]
        delta = np.abs(compiled - native).max()
        limit = MAX_DELTA * np.abs(native).max()
        assert card["compiled_max_delta"] == pytest.approx(delta, rel=1e-9), name
        assert 0 < delta <= limit, (name, delta, limit)  # float32: not bit-exact, but close
        assert card["compiled_note"].startswith("compiled to ONNX"), card["compiled_note"]
        assert f"over {len(X)} holdout rows (limit {limit:.2g}: 1e-05 × the largest " \
               f"|prediction|, {np.abs(native).max():.4g})" in card["compiled_note"]
    assert cards["flaky"]["compiled_path"] is None
    assert cards["flaky"]["compiled_note"].startswith(
        "stays native: no ONNX converter for FailsOnSomeRows")


def test_a_graph_that_disagrees_with_its_model_stays_native(models_root, compiled_scope,
                                                           store):
    """LightGBM's thresholds sit on feature values the diabetes data hold; in float32 some
    rows fall on the other side of a split, so the converted graph is refused."""
    lightgbm = pytest.importorskip("lightgbm")
    X, y = _train()
    write_model(compiled_scope, "lgbm", lightgbm.LGBMRegressor(
        n_estimators=50, verbose=-1, random_state=0).fit(X, y), model_type="lightgbm",
        group="tree")
    card = next(c for c in _export(models_root, store, ("ridge", "lgbm"))
                if c["model_name"] == "lgbm")
    native = joblib.load(models_root.parent / card["model_path"]).predict(
        _features(compiled_scope))
    assert card["compiled_path"] is None and card["compiled_sha256"] is None
    assert card["compiled_max_delta"] > MAX_DELTA * np.abs(native).max()
    assert card["compiled_note"].startswith(
        "stays native: the compiled predicted values differ from the native ones by up to ")
    assert "1e-05 × the largest |prediction|" in card["compiled_note"]


def test_a_compiled_regressor_loads_for_predict_only(models_root, compiled_scope, store):
    card = next(c for c in _export(models_root, store, ("xgb",)) if c["model_name"] == "xgb")
    path = models_root.parent / card["compiled_path"]
    model = load_model_file(path, models_root, "xgb", expected_sha256=card["compiled_sha256"],
                            needs="predict").model
    assert isinstance(model, OnnxRegressor) and isinstance(model, OnnxModel)
    assert model.takes_array  # one float32 array: the engine builds it once per batch
    X = _features(compiled_scope)
    native = joblib.load(models_root.parent / card["model_path"]).predict(X)
    assert np.abs(model.predict(X) - native).max() == pytest.approx(card["compiled_max_delta"])
    with pytest.raises(InvalidInputError, match="is a regressor \\(one value per row, no "
                                                "class labels\\), not a classifier"):
        load_model_file(path, models_root, "xgb", needs="predict_proba")


def test_the_seeds_loop_still_reads_the_native_files(models_root, compiled_scope, store):
    cards = _export(models_root, store, ("ridge", "forest"))
    X = _features(compiled_scope)
    ensemble = sum(joblib.load(models_root.parent / c["model_path"]).predict(X)
                   * c["ensemble_weight"] for c in cards)
    native = [joblib.load(compiled_scope / n / "model.joblib").predict(X)
              for n in ("ridge", "forest")]
    np.testing.assert_allclose(ensemble, 0.5 * native[0] + 0.5 * native[1], rtol=1e-12)
    assert all(c["model_path"].endswith("/model.joblib") for c in cards)
