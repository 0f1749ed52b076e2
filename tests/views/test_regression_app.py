"""The pages on a regression scope (scikit-learn's diabetes data), driven through AppTest:
what each shows is checked against the models' own ``predict`` and the domain's tables."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import make_regression_scope, make_scope
from sklearn.metrics import mean_squared_error
from streamlit.testing.v1 import AppTest

from promotion import export
from promotion.evaluation import load_row_predictions
from promotion.scopes import load_scope
from promotion.scoring import residuals_by_feature
from promotion.store import open_store
from promotion.usecases import scope_state

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGES = ["views/leaderboard.py", "views/explorer.py", "views/comparison.py",
         "views/lifecycle.py"]


@pytest.fixture
def app_root(models_root, monkeypatch) -> Path:
    make_regression_scope(models_root)
    monkeypatch.setenv("PROMOTION_MODELS_DIR", str(models_root))
    monkeypatch.setenv("PROMOTION_USER", "ana")
    monkeypatch.delenv("PROMOTION_DB_URL", raising=False)
    return models_root


def open_app(page: str | None = None, scope: str = "diabetes") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["scope"] = scope
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> dict[str, dict]:
    """The page's Plotly figures by title."""
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return {figure["layout"]["title"]["text"]: figure for figure in figures}


def numbers(data: object) -> np.ndarray:
    """A figure's array: Plotly writes numpy arrays as base64 typed arrays."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"])
    return np.asarray(data, dtype=float)


def holdout_rows(root: Path) -> tuple[pd.DataFrame, np.ndarray]:
    frame = pd.read_csv(root / "diabetes" / "holdout.csv")
    return frame.drop(columns="progression"), frame["progression"].to_numpy()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_on_a_regression_scope(app_root, page):
    at = open_app(page)
    assert not at.error
    assert at.title[0].value.endswith("diabetes")


def test_the_leaderboard_key_column_is_rmse_lower_is_better(app_root):
    at = open_app()
    assert "**RMSE ↓**" in [m.value for m in at.markdown]
    assert not any(label in m.value for m in at.markdown for label in ("Top-5", "AUC"))
    X, y = holdout_rows(app_root)
    texts = [t.value for t in at.text]
    for model, shown in (("knn", "53.54"), ("ridge", "58.92"), ("mean", "76.84")):
        rmse = np.sqrt(mean_squared_error(y, joblib.load(
            app_root / "diabetes" / model / "model.joblib").predict(X)))
        assert f"{rmse:.2f}" == shown  # four significant digits of an error near 60
        assert texts[texts.index(model) + 3] == shown  # after the phase and the interval


def test_the_promoted_summary_counts_averages_and_finds_the_best(app_root):
    at = open_app()
    at.text_input(key="decision_reason").input("lowest RMSE")
    at.run()
    [b for b in at.button if b.key == "promote:diabetes:knn"][0].click()
    at.run()
    at.text_input(key="decision_reason").input("simple baseline")
    at.run()
    [b for b in at.button if b.key == "promote:diabetes:ridge"][0].click()
    at.run()
    assert not at.exception, at.exception
    assert "**Total Promoted: 2**" in [m.value for m in at.markdown]
    board = scope_state(app_root, "diabetes", open_store(app_root)).board
    scores = [board.row(n).composite_score for n in ("knn", "ridge")]
    assert [m.value for m in at.metric] == ["2", f"{np.mean(scores):.4f}", f"{max(scores):.4f}"]


def test_the_explorer_draws_predicted_against_actual_and_residuals_by_feature(app_root):
    at = open_app("views/explorer.py")
    at.selectbox(key="explore_model:diabetes").set_value("ridge")
    at.run()
    assert not at.exception and not at.error
    shown = charts(at)
    scatter = next(f for title, f in shown.items() if title.startswith("Predicted against"))
    X, y = holdout_rows(app_root)
    predicted = joblib.load(app_root / "diabetes" / "ridge" / "model.joblib").predict(X)
    points = next(d for d in scatter["data"] if d["name"] == "predicted")
    np.testing.assert_allclose(numbers(points["x"]), y)
    np.testing.assert_allclose(numbers(points["y"]), predicted, rtol=1e-12)
    diagonal = next(d for d in scatter["data"] if d["name"] == "predicted = actual")
    assert list(numbers(diagonal["x"])) == list(numbers(diagonal["y"]))  # the y = x line
    assert "Mean residual by age bin" in shown
    # Nothing of a classifier: no confusion matrix, ROC curve or threshold slider.
    assert not any(t.startswith(("Confusion", "ROC", "Accuracy per class")) for t in shown)
    assert not at.slider

    at.selectbox(key="residual_feature:diabetes:ridge").set_value("bmi")
    at.run()
    store = open_store(app_root)
    state = scope_state(app_root, "diabetes", store)
    rows = load_row_predictions(store, next(m for m in state.evaluation.models
                                            if m.model_name == "ridge"))
    holdout = load_scope(app_root, "diabetes").load_holdout()
    expected = residuals_by_feature(rows, holdout)
    expected = expected[expected["feature"] == "bmi"]
    table = next(d.value for d in at.dataframe if "interval" in d.value.columns)
    assert table["bin"].tolist() == expected["bin"].tolist()
    assert table["rows"].tolist() == expected["rows"].tolist()
    np.testing.assert_allclose(table["mean_residual"], expected["mean_residual"])
    bars = charts(at)["Mean residual by bmi bin"]
    assert {d["name"] for d in bars["data"]} <= {"over-predicts", "under-predicts"}


@pytest.mark.parametrize("scope", ["diabetes", "tiny"])
def test_the_explorer_shows_the_slice_analysis_or_says_why_not(app_root, scope):
    """The slice table is what the slice analysis finds, whatever the task; when the analysis
    cannot run for a model, the page says so and keeps the rest."""
    make_scope(app_root, "tiny")
    at = open_app("views/explorer.py", scope)
    model = at.selectbox(key=f"explore_model:{scope}").value
    store = open_store(app_root)
    state = scope_state(app_root, scope, store)
    rows = load_row_predictions(store, next(m for m in state.evaluation.models
                                            if m.model_name == model))
    holdout = load_scope(app_root, scope).load_holdout()
    named = {"target": "progression"} if scope == "diabetes" else {}
    try:
        findings = export.slice_findings(rows, holdout, state.scope.task, **named)
    except TypeError as err:
        assert any(f"The slice analysis is not available for this model: {err}"
                   == i.value.replace("\\", "") for i in at.info)
        return
    tables = [d.value for d in at.dataframe if "slice" in d.value.columns]
    if findings:
        assert tables[0]["slice"].tolist() == [f.description for f in findings]
        assert tables[0]["value"].tolist() == pytest.approx([f.slice_loss for f in findings])
    else:
        assert not tables
        assert any(c.value.startswith("No slice passes the bars") for c in at.caption)


def test_comparison_sets_groups_side_by_side_on_rmse_lowest_best(app_root):
    at = open_app("views/comparison.py")
    shown = charts(at)
    assert "RMSE by group (lower is better)" in shown
    assert any(title.startswith("Score against latency") for title in shown)
    summary = next(d.value for d in at.dataframe
                   if "best" in d.value.columns and d.value["best"].max() > 1)
    board = scope_state(app_root, "diabetes", open_store(app_root)).board
    frame = board.to_frame()
    best = frame.groupby("group")["rmse"].min()
    assert summary["best"].tolist() == pytest.approx([best[g] for g in summary["group"].map(
        {"Tree (2A)": "tree", "Neural (2B)": "neural", "Variants (2C)": "variant",
         "Linear": "linear"})])
    assert summary["average"].tolist() == sorted(summary["average"])  # lowest RMSE first


def lifecycle_move(at: AppTest, model: str, target: str, reason: str) -> None:
    at.selectbox(key="lifecycle_model:diabetes").set_value(model)
    at.selectbox(key="lifecycle_target:diabetes").set_value(target)
    at.text_input(key="lifecycle_reason").input(reason)
    at.run()
    [b for b in at.button if b.key == "move:diabetes"][0].click()
    at.run()
    assert not at.exception, at.exception


def gate_verdicts(at: AppTest) -> dict[str, str]:
    table = next(d.value for d in at.dataframe if "verdict" in d.value.columns)
    return dict(zip(table["gate"], table["verdict"], strict=True))


def test_lifecycle_crowns_a_regressor_through_the_gates(app_root):
    at = open_app("views/lifecycle.py")
    for model in ("ridge", "knn", "tree_d4"):
        lifecycle_move(at, model, "production", "fit for production")
    lifecycle_move(at, "ridge", "champion", "first champion")
    assert any("Champion: **ridge**" in s.value for s in at.success)
    # A worse regressor (higher RMSE) is blocked before the click, by the gates' evidence.
    at.selectbox(key="lifecycle_model:diabetes").set_value("tree_d4")
    at.selectbox(key="lifecycle_target:diabetes").set_value("champion")
    at.run()
    verdicts = gate_verdicts(at)
    assert verdicts["Improvement"] == verdicts["Significance (Holm)"] == "❌ fail"
    # A better one passes every gate and takes the crown; the old champion is archived.
    at.selectbox(key="lifecycle_model:diabetes").set_value("knn")
    at.run()
    assert set(gate_verdicts(at).values()) == {"✅ pass"}
    lifecycle_move(at, "knn", "champion", "lower RMSE, significantly")
    stages = open_store(app_root).stages("diabetes")
    assert (stages["knn"].stage, stages["ridge"].stage) == ("champion", "archived")


def test_rows_a_model_failed_on_are_drawn_apart_and_left_out_of_the_residuals(app_root):
    from factories import write_model
    from misbehaving import FailsOnSomeRows

    inner = joblib.load(app_root / "diabetes" / "ridge" / "model.joblib")
    write_model(app_root / "diabetes", "flaky", FailsOnSomeRows(inner, "bmi", 0.05),
                model_type="ridge", group="variant")
    at = open_app("views/explorer.py")
    at.selectbox(key="explore_model:diabetes").set_value("flaky")
    at.run()
    assert not at.exception and not at.error
    X, _ = holdout_rows(app_root)
    failing = int((X["bmi"] > 0.05).sum())
    assert 0 < failing < len(X)
    scatter = next(f for t, f in charts(at).items() if t.startswith("Predicted against"))
    grey = next(d for d in scatter["data"] if d["name"] == "failed: its mean")
    assert len(numbers(grey["x"])) == failing
    assert any(c.value.startswith(f"{len(X):,} holdout rows; {failing:,} the model failed on")
               for c in at.caption)
    every = next(d.value for d in at.dataframe if "feature" in d.value.columns)
    sex = every[every["feature"] == "sex"]
    assert sex["rows"].sum() == len(X) - failing
