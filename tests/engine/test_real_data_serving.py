"""Serving real data: request CSVs with text categories and gaps, a shared preprocessor run
once per batch and verified like a model, and the binary decision threshold."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import CANCER_COLUMNS, cancer_frame, make_real_scope
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from promotion import InvalidInputError
from promotion.engine import PredictionEngine, RequestsCsv
from promotion.usecases import change_stage, export_scope

ROOT = Path(__file__).resolve().parents[2]


class CountingTransformer(ColumnTransformer):
    """A ColumnTransformer that counts its transform calls (a real fitted transformer)."""

    calls = 0

    def transform(self, X, **params):
        CountingTransformer.calls += 1
        return super().transform(X, **params)


@pytest.fixture
def shared(models_root, store) -> Path:
    """The breast-cancer scope (text category, gaps) with a shared preprocessor and three
    models fitted on its output, exported with a 0.3 threshold."""
    preprocessor = CountingTransformer([
        ("num", make_pipeline(SimpleImputer()), list(CANCER_COLUMNS)),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["size"])])
    make_real_scope(models_root, "shared", cancer_frame(), "diagnosis",
                    preprocessor=preprocessor,
                    scope_extra={"positive_class": "malignant", "decision_threshold": 0.3},
                    models={"logreg": LogisticRegression(max_iter=3000),
                            "boosting": HistGradientBoostingClassifier(max_iter=20),
                            "boosting_b": HistGradientBoostingClassifier(max_iter=10)})
    for name in ("logreg", "boosting", "boosting_b"):
        change_stage(models_root, "shared", store, name, "production", actor="ana",
                     reason="serving test", override=True)
    export_scope(models_root, "shared", store)
    return models_root


def test_the_preprocessor_runs_once_per_batch_for_every_member(shared):
    X = pd.read_csv(shared / "shared" / "holdout.csv").drop(columns="diagnosis")
    engine = PredictionEngine.load("shared", shared, log=False)
    CountingTransformer.calls = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        engine.predict_proba(X)
    assert CountingTransformer.calls == 1
    # the members were fitted on the transform's bare array: they get one, and do not warn
    assert not [w for w in caught if "feature names" in str(w.message)]
    assert set(engine.predict_breakdown(X)) == {"logreg", "boosting", "boosting_b"}


def test_the_engine_verifies_the_preprocessor_like_a_model(shared):
    path = shared / "shared" / "preprocessor.joblib"
    preprocessor = joblib.load(path)
    preprocessor.transformers_[0][1].steps[0][1].statistics_ += 1.0
    joblib.dump(preprocessor, path)
    with pytest.raises(InvalidInputError, match="field 'preprocessor_path': "
                       "models/shared/preprocessor.joblib: does not match the card's sha256"):
        PredictionEngine.load("shared", shared, log=False)


def test_the_log_keeps_the_raw_features(shared):
    X = pd.read_csv(shared / "shared" / "holdout.csv").drop(columns="diagnosis")
    engine = PredictionEngine.load("shared", shared)
    engine.serve(X.iloc[:50])
    engine.close()
    from promotion.monitoring import load_live

    live = load_live(shared, "shared")
    assert live.features == [*CANCER_COLUMNS, "size"]
    [inputs] = list(live.input_batches(None))
    sizes = inputs[:, live.features.index("size")]
    assert np.isnan(sizes).sum() == X["size"].iloc[:50].isna().sum()
    assert len(np.unique(sizes[~np.isnan(sizes)])) == X["size"].iloc[:50].nunique()


def test_text_and_gaps_in_another_order_with_extra_columns_answer_the_same(shared):
    X = pd.read_csv(shared / "shared" / "holdout.csv").drop(columns="diagnosis")
    assert X["size"].dtype.kind not in "biuf" and X.isna().any().any()
    engine = PredictionEngine.load("shared", shared, log=False)
    arranged = X.assign(note="x", row=np.arange(len(X)))[["note", *X.columns[::-1], "row"]]
    np.testing.assert_array_equal(engine.predict_proba(arranged), engine.predict_proba(X))
    for i in range(5):
        np.testing.assert_array_equal(engine.predict_proba(arranged.iloc[[i]]),
                                      engine.predict_proba(X.iloc[[i]]))
    with pytest.raises(InvalidInputError, match="missing feature column 'size'"):
        engine.predict_proba(arranged.drop(columns="size"))


def _predict(root: Path, rows: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMOTION_DB_URL"}
    # the tests too: the preprocessor's class (CountingTransformer) is defined here
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"),
                                         str(Path(__file__).parent)])
    return subprocess.run([sys.executable, "-m", "promotion", "predict", "--scope", "shared",
                           "--input", str(rows), "--models-dir", str(root), "--no-log"],
                          capture_output=True, text=True, env=env, timeout=300)


def test_predict_reads_text_and_gaps_and_decides_at_the_threshold(shared):
    rows = shared / "shared" / "holdout.csv"
    done = _predict(shared, rows)
    assert done.returncode == 0, done.stderr
    out = pd.read_csv(io.StringIO(done.stdout))
    expected = np.where(out["proba_malignant"] >= 0.3, "malignant", "benign")
    np.testing.assert_array_equal(out["prediction"], expected)
    assert (out["proba_malignant"].between(0.3, 0.5, inclusive="left")).any()
    X = pd.read_csv(rows).drop(columns="diagnosis")
    engine = PredictionEngine.load("shared", shared, log=False)
    np.testing.assert_allclose(out[["proba_benign", "proba_malignant"]].to_numpy(),
                               engine.predict_proba(X), rtol=0, atol=1e-12)


def test_a_request_csv_keeps_text_where_the_holdout_had_text_only(shared, tmp_path):
    engine = PredictionEngine.load("shared", shared, log=False)
    assert engine.text_features == ["size"]
    header = ",".join(f'"{c}"' for c in [*CANCER_COLUMNS, "size"])
    good = tmp_path / "good.csv"
    good.write_text(f"{header}\n14,,0.1,0.1,700,0.3,1\n14,20,0.1,0.1,700,0.3,\n")
    [batch] = RequestsCsv.check(good, engine.feature_names, engine.text_features).batches()
    assert batch.features["size"].tolist()[0] == "1"  # a category that looks like a number
    assert batch.features.isna().sum().sum() == 2
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{header}\n14,twenty,0.1,0.1,700,0.3,small\n")
    with pytest.raises(InvalidInputError, match="line 2: column 'mean texture' holds "
                                                "'twenty', not a number"):
        list(RequestsCsv.check(bad, engine.feature_names, engine.text_features).batches())
