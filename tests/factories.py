"""Builders of real, tiny scopes on disk: fitted scikit-learn models, a holdout CSV, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes, make_classification
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsRegressor
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from promotion.contract import HoldoutInfo, ModelCard, export_paths
from promotion.scopes import file_sha256, load_scope

#: name -> (estimator factory, model_type, group)
TINY_MODELS: dict[str, tuple[Any, str, str]] = {
    "logreg": (lambda: LogisticRegression(max_iter=500), "logistic_regression", "linear"),
    "tree_d3": (lambda: DecisionTreeClassifier(max_depth=3, random_state=0), "decision_tree",
                "tree"),
    "tree_d1": (lambda: DecisionTreeClassifier(max_depth=1, random_state=0), "decision_tree",
                "variant"),
    "bayes": (lambda: GaussianNB(), "naive_bayes", "neural"),
}


def make_data(task: str = "multiclass", n_rows: int = 600, seed: int = 0
              ) -> tuple[pd.DataFrame, np.ndarray]:
    """A learnable classification problem with named feature columns."""
    n_classes = 6 if task == "multiclass" else 2
    X, y = make_classification(n_samples=n_rows, n_features=8, n_informative=5,
                               n_redundant=1, n_classes=n_classes, n_clusters_per_class=1,
                               random_state=seed)
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])]), y


def write_model(scope_dir: Path, name: str, estimator: Any, *, model_type: str, group: str,
                meta_extra: dict[str, Any] | None = None) -> Path:
    """Save a fitted estimator as a model folder; returns the folder."""
    folder = scope_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, folder / "model.joblib")
    meta = {"model_type": model_type, "group": group, **(meta_extra or {})}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def make_scope(root: Path, name: str = "tiny", *, task: str = "multiclass",
               models: tuple[str, ...] = ("logreg", "tree_d3", "tree_d1", "bayes"),
               n_rows: int = 600, scope_extra: dict[str, Any] | None = None) -> Path:
    """A scope folder with a holdout and fitted tiny models; returns the scope folder."""
    X, y = make_data(task, n_rows)
    split = n_rows // 2
    scope_dir = root / name
    scope_dir.mkdir(parents=True, exist_ok=True)
    holdout = X.iloc[split:].assign(label=y[split:])
    holdout.to_csv(scope_dir / "holdout.csv", index=False)
    # Served from the native files: these scopes' tests compare the engine's numbers with
    # their models' exactly (compiled members: tests/export/test_compiled.py).
    config = {"task": task, "target": "label", "holdout": "holdout.csv", "n_bootstrap": 200,
              "latency_rows": 20, "compile_members": False, **(scope_extra or {})}
    (scope_dir / "scope.json").write_text(json.dumps(config))
    for model_name in models:
        factory, model_type, group = TINY_MODELS[model_name]
        estimator = factory().fit(X.iloc[:split], y[:split])
        write_model(scope_dir, model_name, estimator, model_type=model_type, group=group)
    return scope_dir


#: name -> (regressor factory, model_type, group): the regression scope's models.
REGRESSION_MODELS: dict[str, tuple[Any, str, str]] = {
    "ridge": (lambda: Ridge(alpha=1.0), "ridge", "linear"),
    "tree_d4": (lambda: DecisionTreeRegressor(max_depth=4, random_state=0), "decision_tree",
                "tree"),
    "tree_d2": (lambda: DecisionTreeRegressor(max_depth=2, random_state=0), "decision_tree",
                "variant"),
    "knn": (lambda: KNeighborsRegressor(n_neighbors=15), "knn", "neural"),
    "mean": (lambda: DummyRegressor(strategy="mean"), "dummy", "linear"),
}


def make_regression_scope(root: Path, name: str = "diabetes", *,
                          models: tuple[str, ...] = tuple(REGRESSION_MODELS),
                          scope_extra: dict[str, Any] | None = None) -> Path:
    """A regression scope over scikit-learn's diabetes data (442 patients, disease
    progression a year on): the first 60% of the rows train, the rest is the holdout."""
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    split = int(len(X) * 0.6)
    scope_dir = root / name
    scope_dir.mkdir(parents=True, exist_ok=True)
    X.iloc[split:].assign(progression=y.iloc[split:]).to_csv(scope_dir / "holdout.csv",
                                                             index=False)
    config = {"task": "regression", "target": "progression", "holdout": "holdout.csv",
              "n_bootstrap": 200, "latency_rows": 20, "compile_members": False,
              **(scope_extra or {})}
    (scope_dir / "scope.json").write_text(json.dumps(config))
    for model_name in models:
        factory, model_type, group = REGRESSION_MODELS[model_name]
        write_model(scope_dir, model_name, factory().fit(X.iloc[:split], y.iloc[:split]),
                    model_type=model_type, group=group)
    return scope_dir


class _MakesAMarker:
    """Unpickling this runs ``os.mkdir(marker)``: proof of whether a file was ever loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        import os

        return os.mkdir, (self.marker,)


def write_marker_pickle(path: Path, marker: Path) -> Path:
    """A joblib file whose loading creates the folder ``marker``; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(_MakesAMarker(marker), path)
    return path


def make_card(root: Path, model: str = "logreg", scope: str = "tiny", **changes: Any
              ) -> ModelCard:
    """A valid card of one model of a factory scope, the only member of its ensemble: its
    real file, checksum, features and classes, with ``changes`` applied. For tests of what
    reads cards, without going through an export."""
    loaded = load_scope(root, scope)
    entry = loaded.model(model)
    holdout = loaded.load_holdout()
    relative = entry.model_path.relative_to(root.parent).as_posix()
    card = ModelCard(
        model_name=model, model_type=entry.model_type, game=scope, scope=scope,
        phase=entry.phase, group=entry.group, stage="production", task=loaded.task,
        composite_score=0.5, composite_interval=(0.4, 0.6), health_score=0.4,
        ensemble_weight=1.0, weights_method="score",
        top_5_accuracy=0.9 if loaded.task == "multiclass" else None,
        roc_auc=0.9 if loaded.task == "binary" else None, metrics={},
        strength="", known_bias="", recommended_use="", model_path=relative,
        sha256=file_sha256(entry.model_path), feature_names=list(holdout.features.columns),
        classes=list(holdout.classes),
        holdout=HoldoutInfo(path=(loaded.folder / loaded.config.holdout)
                            .relative_to(root.parent).as_posix(),
                            sha256=holdout.sha256, rows=len(holdout.y)),
        generated_at=datetime.now(UTC))
    return card.model_copy(update=changes)


def write_cards(root: Path, cards: list[ModelCard], scope: str = "tiny") -> Path:
    """``cards`` as the scope's newest cards file, written as the export names it."""
    path = export_paths(root, scope, datetime.now(UTC))[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([c.model_dump(mode="json") for c in cards]))
    return path


def install_old_cards(root: Path, fixture: Path, stamp: str, scope: str = "tiny") -> list[dict]:
    """An older version's committed cards file as the scope's export, each card pointed at
    the scope's real model file (the fixture's hashes are of other builds), every other field
    kept as committed. Returns the cards as written."""
    cards = json.loads(fixture.read_text())
    for card in cards:
        card["sha256"] = file_sha256(root.parent / card["model_path"])
    path = root / "advanced" / "model_cards" / f"model_cards_{scope}_{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cards))
    return cards


def edit_cards(path: Path, model: str | None = None, **changes: Any) -> None:
    """Change fields of the cards in an exported file in place (every card, or ``model``'s)."""
    cards = json.loads(path.read_text())
    for card in cards:
        if model is None or card["model_name"] == model:
            card.update(changes)
    path.write_text(json.dumps(cards))


# --- real data: bundled data sets with text categories and missing values -------------------

#: Breast-cancer columns used by the real-data scopes (scikit-learn's bundled UCI set).
CANCER_COLUMNS = ("mean radius", "mean texture", "mean smoothness", "mean concavity",
                  "worst area", "worst symmetry")


def cancer_frame(seed: int = 0) -> pd.DataFrame:
    """scikit-learn's bundled breast-cancer data as a team would hold it: six measurements,
    a text category (``size``: small / medium / large, cut from the mean area), about 3% of
    the values missing in three columns, and the diagnosis as text (``malignant`` /
    ``benign``, target column ``diagnosis``)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.data[list(CANCER_COLUMNS)].copy()
    frame["size"] = pd.qcut(bunch.data["mean area"], 3,
                            labels=["small", "medium", "large"]).astype(str)
    rng = np.random.default_rng(seed)
    for column in ("mean texture", "worst symmetry", "size"):
        frame.loc[rng.random(len(frame)) < 0.03, column] = np.nan
    frame["diagnosis"] = np.asarray(bunch.target_names)[bunch.target]
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def real_data_pipeline(frame: pd.DataFrame, estimator: Any) -> Any:
    """A team's usual pipeline: numbers imputed and scaled, text imputed and one-hot encoded."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    numbers = [c for c in frame.columns if c not in text]
    return make_pipeline(ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore")), text),
    ]), estimator)


def make_real_scope(root: Path, name: str, frame: pd.DataFrame, target: str, *,
                    task: str = "binary", models: dict[str, Any] | None = None,
                    preprocessor: Any = None, scope_extra: dict[str, Any] | None = None
                    ) -> Path:
    """A scope over ``frame`` (first half trains, second half is the holdout, written as
    CSV with its gaps and text). ``models``: name -> unfitted estimator, fitted on the
    training half (on ``preprocessor``'s output when one is given, which is then fitted too
    and kept as ``preprocessor.joblib``)."""
    split = len(frame) // 2
    train, holdout = frame.iloc[:split], frame.iloc[split:]
    scope_dir = root / name
    scope_dir.mkdir(parents=True, exist_ok=True)
    holdout.to_csv(scope_dir / "holdout.csv", index=False)
    config = {"task": task, "target": target, "holdout": "holdout.csv", "n_bootstrap": 50,
              "latency_rows": 10, "compile_members": False, **(scope_extra or {})}
    X = train.drop(columns=target)
    if preprocessor is not None:
        preprocessor.fit(X)
        joblib.dump(preprocessor, scope_dir / "preprocessor.joblib")
        config["preprocessor"] = "preprocessor.joblib"
        X = preprocessor.transform(X)
    (scope_dir / "scope.json").write_text(json.dumps(config))
    for model_name, estimator in (models or {}).items():
        write_model(scope_dir, model_name, estimator.fit(X, train[target]),
                    model_type=type(estimator).__name__.lower(), group="linear")
    return scope_dir
def write_onnx_member(scope: Path, name: str, *, per_column: bool = False) -> object:
    """A real scikit-learn model fitted here, converted with skl2onnx (ZipMap output, as the
    converter writes by default) and saved as ``<name>/model.onnx``; returns the native
    model."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_data("multiclass", 600)
    native = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        X.iloc[:300], y[:300])
    if per_column:  # one input per feature column, named after it
        types = [(c, FloatTensorType([None, 1])) for c in X.columns]
    else:
        types = [("features", FloatTensorType([None, X.shape[1]]))]
    onx = convert_sklearn(native, initial_types=types)
    folder = scope / name
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(onx.SerializeToString())
    (folder / "meta.json").write_text(json.dumps({"model_type": "logistic_regression",
                                                  "group": "linear",
                                                  "model_file": "model.onnx"}))
    return native
