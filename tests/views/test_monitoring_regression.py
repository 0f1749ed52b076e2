"""The Monitoring page on a regression scope, driven through Streamlit's AppTest: live RMSE and
MAE per day against the holdout (lower is better), the shadow comparison and drift, and no
classification widget."""

from __future__ import annotations

from pathlib import Path

import pytest
from served_regression import SCOPE, regression_export
from streamlit.testing.v1 import AppTest

from promotion.monitoring import simulate

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGE = "views/monitoring.py"


@pytest.fixture
def app_root(models_root, regression_scope, store, monkeypatch) -> Path:
    """The diabetes scope in champion mode: ridge serves, tree_d4 and knn in shadow."""
    regression_export(models_root, store, {"ridge": 0.4, "tree_d4": 0.3, "knn": 0.3},
                      mode="champion", roles={"ridge": "champion", "tree_d4": "challenger",
                                              "knn": "challenger"})
    monkeypatch.setenv("PROMOTION_MODELS_DIR", str(models_root))
    monkeypatch.setenv("PROMOTION_USER", "ana")
    monkeypatch.delenv("PROMOTION_DB_URL", raising=False)
    return models_root


def open_monitoring() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["scope"] = SCOPE
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception
    return at


def test_a_replayed_log_shows_live_rmse_and_mae_against_the_holdout(app_root):
    simulate(app_root, SCOPE, 1200, seed=5, days=4.0, drift=("bmi", 2.0))
    at = open_monitoring()
    assert not at.error, [e.value for e in at.error]
    texts = [t.value for t in at.text]
    assert "1,200 requests logged, 1,200 with outcomes" in texts
    assert any(t.startswith("Served answers (1,200 with outcomes): RMSE ") for t in texts)
    headers = [h.value for h in at.subheader]
    assert "Live RMSE and MAE per day, on the same requests (lower is better)" in headers
    assert "Shadow comparison: every model on the same requests" in headers
    assert not any("Top-5" in h or "AUC" in h for h in headers)  # no classification widget
    windows, comparison, drifted = (at.dataframe[k].value for k in (1, 2, 3))
    assert set(windows["metric"]) == {"rmse", "mae"}
    assert set(windows["model"]) == {"ridge", "tree_d4", "knn"}
    assert windows["window"].nunique() >= 4 and (windows["low"] <= windows["value"]).all()
    assert (windows["value"] <= windows["high"]).all()
    assert len(comparison) == 6 and set(comparison["reference"]) == {"ridge"}
    assert drifted.iloc[0]["feature"] == "bmi" and drifted.iloc[0]["flagged"]
    recommendation = at.dataframe[0].value
    assert "live RMSE (lower is better)" in recommendation.columns
    assert recommendation.iloc[0]["baseline"] == "ridge"
    assert any("bmi" in w.value for w in at.warning)


def test_served_requests_without_outcomes_say_how_to_join_them(app_root):
    from promotion.engine import PredictionEngine
    from promotion.scopes import load_scope

    engine = PredictionEngine.load(SCOPE, app_root)
    engine.serve(load_scope(app_root, SCOPE).load_holdout().features.head(20))
    engine.close()
    at = open_monitoring()
    assert "20 requests logged, 0 with outcomes" in [t.value for t in at.text]
    assert any("each label a number" in i.value for i in at.info)
    assert not at.error
