"""The ``loan_applications`` demo scope, built the way a credit team keeps its artifacts.

Real-looking application data: text categories, about 3% missing values in several columns,
string labels (``default`` / ``ok``, positive class ``default``), one fitted preprocessor kept
beside the models (``preprocessor.joblib``: category columns one-hot encoded, numeric ones
passed through with their gaps), and models fitted on its output, each handling the gaps its
own way (histogram boosting and forests natively, the linear and neural ones with an imputer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

LOANS_SCOPE = "loan_applications"
PREPROCESSOR_FILE = "preprocessor.joblib"
TARGET = "outcome"
POSITIVE = "default"
CATEGORIES: dict[str, tuple[list[str], list[float]]] = {
    "home_ownership": (["rent", "mortgage", "own", "other"], [0.45, 0.38, 0.14, 0.03]),
    "purpose": (["debt_consolidation", "car", "home_improvement", "medical",
                 "small_business", "education", "other"],
                [0.38, 0.18, 0.14, 0.08, 0.07, 0.05, 0.10]),
    "employment": (["salaried", "self_employed", "retired", "student", "unemployed"],
                   [0.68, 0.14, 0.09, 0.05, 0.04]),
    "region": (["north", "south", "east", "west", "central"], [0.2, 0.25, 0.15, 0.2, 0.2]),
}
#: Columns with about 3% of their values missing (as a real application form has).
WITH_GAPS = ("annual_income", "credit_history_years", "debt_to_income", "employment",
             "home_ownership", "risk_rating")
_ROWS = 6_000
_SEED = 1607


def loan_frames() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Train and holdout frames (stratified 70/30) and the scope.json of the scope."""
    rng = np.random.default_rng(_SEED)
    n = _ROWS
    frame = pd.DataFrame({
        "age": np.clip(np.round(rng.normal(41, 12, n)), 19, 85).astype(np.int64),
        "annual_income": np.round(rng.lognormal(np.log(48_000), 0.5, n), -2),
        "loan_amount": np.round(rng.lognormal(np.log(9_000), 0.7, n), -1),
        "term_months": rng.choice([12, 24, 36, 60], n, p=[0.15, 0.3, 0.35, 0.2]),
        "credit_history_years": np.round(rng.gamma(3.0, 3.0, n), 1),
        "open_accounts": rng.poisson(4, n),
        "late_payments_2y": rng.poisson(0.4, n),
        # An agency's rating 1..7, kept standardized: a low-cardinality float feature.
        "risk_rating": np.round((rng.choice(7, n, p=[.08, .17, .25, .22, .15, .09, .04]) + 1
                                 - 3.6) / 1.45, 5),
        **{name: rng.choice(values, n, p=weights)
           for name, (values, weights) in CATEGORIES.items()},
    })
    frame["debt_to_income"] = np.round(
        frame["loan_amount"] / frame["annual_income"] + rng.gamma(2, 0.08, n), 4)
    logit = (-2.6 + 0.55 * frame["risk_rating"] + 0.45 * np.minimum(frame["late_payments_2y"], 4)
             + 2.2 * (frame["debt_to_income"] - 0.35) - 0.04 * frame["credit_history_years"]
             + 0.25 * (frame["term_months"] == 60)
             + frame["employment"].map({"unemployed": 1.3, "student": 0.6,
                                        "self_employed": 0.3}).fillna(0.0)
             + frame["purpose"].map({"small_business": 0.8, "medical": 0.4}).fillna(0.0)
             + 0.3 * (frame["home_ownership"] == "rent") - 0.012 * (frame["age"] - 40))
    defaulted = rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy(dtype=float)))
    frame[TARGET] = np.where(defaulted, POSITIVE, "ok")
    for column in WITH_GAPS:  # gaps decided after the outcome: missing says nothing of it
        frame.loc[rng.random(n) < 0.03, column] = np.nan
    train, holdout = train_test_split(frame, test_size=0.3, random_state=0,
                                      stratify=frame[TARGET])
    info = {
        "task": "binary", "target": TARGET, "holdout": "holdout.csv",
        "positive_class": POSITIVE, "preprocessor": PREPROCESSOR_FILE,
        "decision_threshold": 0.3,
        # A missed default loses the loan; declining a good customer loses the margin.
        "error_costs": {"false_positive": 1.0, "false_negative": 6.0},
        "description": "Synthetic consumer loan applications, kept as a credit team keeps "
        "them: text categories (home ownership, purpose, employment, region), about 3% "
        "missing values, labels 'default' / 'ok', and one shared preprocessor "
        "(preprocessor.joblib) in front of every model. A loan is declined at a 30% "
        "default probability. Stratified 70/30 split.",
    }
    return train.reset_index(drop=True), holdout.reset_index(drop=True), info


def loan_preprocessor(features: pd.DataFrame) -> ColumnTransformer:
    """The shared preprocessor, fitted on the training features: categories one-hot encoded
    (a missing category is its own column), numbers passed through, gaps and all."""
    categorical = list(CATEGORIES)
    numeric = [c for c in features.columns if c not in categorical]
    preprocessor = ColumnTransformer([
        ("num", "passthrough", numeric),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
    ])
    return preprocessor.fit(features)


@dataclass(frozen=True)
class LoanModel:
    """One model of the scope: its folder name, group, type, estimator and description."""

    name: str
    group: str
    model_type: str
    make: Callable[[], BaseEstimator]
    description: str


def _imputed(estimator: BaseEstimator) -> Pipeline:
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), estimator)


LOAN_MODELS: tuple[LoanModel, ...] = (
    LoanModel("hist_gradient_boosting", "tree", "hist_gradient_boosting",
              lambda: HistGradientBoostingClassifier(max_iter=150, learning_rate=0.08,
                                                     max_leaf_nodes=15, random_state=0),
              "Histogram gradient boosting on the preprocessor's output; missing values "
              "handled natively."),
    LoanModel("random_forest", "tree", "random_forest",
              lambda: RandomForestClassifier(n_estimators=120, min_samples_leaf=10,
                                             max_depth=12, random_state=0),
              "Random forest of 120 trees; missing values handled natively by the splits."),
    LoanModel("mlp", "neural", "mlp",
              lambda: _imputed(MLPClassifier(hidden_layer_sizes=(32,), alpha=1e-3,
                                             early_stopping=True, max_iter=300,
                                             random_state=0)),
              "Multi-layer perceptron (32 units) after median imputation and scaling."),
    LoanModel("logistic_regression", "linear", "logistic_regression",
              lambda: _imputed(LogisticRegression(C=0.5, max_iter=2000)),
              "Logistic regression after median imputation and scaling."),
    LoanModel("sgd_elasticnet", "linear", "sgd",
              lambda: _imputed(SGDClassifier(loss="log_loss", penalty="elasticnet",
                                             alpha=1e-3, l1_ratio=0.3, random_state=0)),
              "Elastic-net logistic model trained by SGD, after imputation and scaling."),
)


@dataclass(frozen=True)
class FileModel:
    """A model of the scope kept in another file format than a pickle: its folder name, the
    file, and how to fit it and turn it into that file's bytes."""

    name: str
    model_file: str
    group: str
    model_type: str
    fit_bytes: Callable[[np.ndarray, pd.Series], tuple[bytes, dict[str, Any]]]
    description: str


def _xgboost_native(X: np.ndarray, y: pd.Series) -> tuple[bytes, dict[str, Any]]:
    """XGBoost's own file (``model.ubj``, no pickle): the booster predicts class codes, so
    meta.json ``classes`` names them (sorted, as scikit-learn would)."""
    from xgboost import XGBClassifier

    classes = sorted(y.unique())
    model = XGBClassifier(n_estimators=150, max_depth=4, learning_rate=0.08, subsample=0.9,
                          n_jobs=1, random_state=0)
    model.fit(X, y.map({c: i for i, c in enumerate(classes)}))
    return bytes(model.get_booster().save_raw("ubj")), {"classes": classes}


def _mlp_onnx(X: np.ndarray, y: pd.Series) -> tuple[bytes, dict[str, Any]]:
    """A neural model exported to ONNX (as a PyTorch or Keras team would ship one): one float
    tensor input of the preprocessor's output, probabilities out."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    model = _imputed(MLPClassifier(hidden_layer_sizes=(64, 32), alpha=1e-3,
                                   early_stopping=True, max_iter=300, random_state=0)).fit(X, y)
    graph = convert_sklearn(model, initial_types=[("features",
                                                   FloatTensorType([None, X.shape[1]]))],
                            target_opset=17)
    return graph.SerializeToString(), {}


OTHER_FORMAT_MODELS: tuple[FileModel, ...] = (
    FileModel("xgboost_native", "model.ubj", "tree", "xgboost", _xgboost_native,
              "XGBoost (150 trees) kept in XGBoost's own file format: loaded without "
              "unpickling; missing values handled natively."),
    FileModel("mlp_onnx", "model.onnx", "neural", "mlp_onnx", _mlp_onnx,
              "Multi-layer perceptron (64, 32) exported to ONNX and run with onnxruntime, "
              "after median imputation and scaling."),
)
