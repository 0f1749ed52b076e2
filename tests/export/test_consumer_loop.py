"""The README's consumer loops, run verbatim on exported cards, give the engine's numbers on
every kind of scope: multiclass, binary with and without ``positive_class``, and a scope with
a shared preprocessor."""

from __future__ import annotations

import json
import re
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import cancer_frame, make_real_scope, real_data_pipeline
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeClassifier

from promotion.engine import PredictionEngine
from promotion.usecases import change_stage, export_scope

README = Path(__file__).resolve().parents[2] / "docs" / "export-and-engine.md"


def readme_loop(marker: str) -> str:
    """The README's python block right after ``<!-- marker -->``."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", text, re.S)
    assert found, f"README has no block marked {marker}"
    return found.group(1)


def run_loop(marker: str, cards_path: Path, X: pd.DataFrame) -> np.ndarray:
    namespace = {"json": json, "joblib": joblib, "cards_path": cards_path, "X": X,
                 "ensemble": 0}
    exec(readme_loop(marker), namespace)  # noqa: S102 - the README's own code, verbatim
    return namespace["ensemble"]


def exported(root: Path, scope: str, store, models: list[str]) -> Path:
    for name in models:
        change_stage(root, scope, store, name, "production", actor="ana", reason="loop test",
                     override=True)
    return export_scope(root, scope, store).model_cards


def credit_frame() -> pd.DataFrame:
    """A credit-style set: text categories, 3% gaps, labels 'default' / 'ok' (the positive
    class sorts first)."""
    from demo._loans import loan_frames

    train, holdout, _ = loan_frames()
    return pd.concat([train, holdout]).iloc[:2400].reset_index(drop=True)


def wine_frame() -> pd.DataFrame:
    bunch = load_wine(as_frame=True)
    frame = bunch.data.iloc[:, :6].copy()
    frame["cultivar"] = np.asarray(["barolo", "grignolino", "barbera"])[bunch.target]
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def _pipelines(frame: pd.DataFrame, target: str) -> dict:
    features = frame.drop(columns=target)
    return {"logreg": real_data_pipeline(features, LogisticRegression(max_iter=3000)),
            "tree": real_data_pipeline(features, DecisionTreeClassifier(max_depth=4,
                                                                        random_state=0))}


CASES = {
    # multiclass, scope.json listing the classes in another order than scikit-learn's
    "wine": (wine_frame, "cultivar", "multiclass",
             {"classes": ["grignolino", "barolo", "barbera"]}),
    # binary, positive class by default (the larger label)
    "cancer": (cancer_frame, "diagnosis", "binary", {}),
    # binary, positive class that sorts first: cards once listed it last, the loop inverted
    "credit": (credit_frame, "outcome", "binary", {"positive_class": "default"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_readme_loop_gives_the_engines_numbers(models_root, store, monkeypatch, case):
    make_frame, target, task, extra = CASES[case]
    frame = make_frame()
    make_real_scope(models_root, case, frame, target, task=task, scope_extra=extra,
                    models=_pipelines(frame, target))
    cards_path = exported(models_root, case, store, ["logreg", "tree"])
    X = pd.read_csv(models_root / case / "holdout.csv").drop(columns=target)
    engine = PredictionEngine.load(case, models_root, log=False)
    monkeypatch.chdir(models_root.parent)  # model_path is relative to the models root's parent
    ensemble = run_loop("consumer-loop", cards_path, X)
    np.testing.assert_array_equal(ensemble, engine.predict_proba(X))
    card = json.loads(cards_path.read_text())[0]
    assert card["classes"] == sorted(card["classes"])  # scikit-learn's classes_ order
    if task == "binary":
        y = pd.read_csv(models_root / case / "holdout.csv")[target]
        positive = card["positive_class"]
        assert positive == extra.get("positive_class", sorted(y.unique())[-1])
        auc = roc_auc_score(y == positive, ensemble[:, card["classes"].index(positive)])
        assert auc > 0.7  # not inverted (an inverted loop read 1 - AUC)


def test_the_readme_loop_with_a_preprocessor_gives_the_engines_numbers(models_root, store,
                                                                      monkeypatch):
    frame = credit_frame()
    features = frame.drop(columns="outcome")
    text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    preprocessor = ColumnTransformer([
        ("num", "passthrough", [c for c in features.columns if c not in text]),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), text)])
    make_real_scope(models_root, "loans", frame, "outcome", scope_extra={
        "positive_class": "default", "decision_threshold": 0.3},
        preprocessor=preprocessor, models={
            "boosting": HistGradientBoostingClassifier(max_iter=40, random_state=0),
            "logreg": _imputed_logreg()})
    cards_path = exported(models_root, "loans", store, ["boosting", "logreg"])
    X = pd.read_csv(models_root / "loans" / "holdout.csv").drop(columns="outcome")
    engine = PredictionEngine.load("loans", models_root, log=False)
    monkeypatch.chdir(models_root.parent)
    ensemble = run_loop("consumer-loop-preprocessor", cards_path, X)
    np.testing.assert_array_equal(ensemble, engine.predict_proba(X))
    card = json.loads(cards_path.read_text())[0]
    assert card["preprocessor_path"] == "models/loans/preprocessor.joblib"
    assert card["decision_threshold"] == 0.3
    # predict answers the positive class where its probability reaches the threshold
    at = card["classes"].index("default")
    expected = np.where(ensemble[:, at] >= 0.3, "default", "ok")
    np.testing.assert_array_equal(engine.predict(X).astype(str), expected)
    assert (expected == "default").sum() > (ensemble.argmax(axis=1) == at).sum()


def _imputed_logreg():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=2000))
