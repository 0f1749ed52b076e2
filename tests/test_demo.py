"""The demo zoo: real models, deterministic, idempotent, and honest about the lottery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo import build_demo_zoo
from promotion.scopes import load_scope
from promotion.store import open_store
from promotion.usecases import build_leaderboard

pytestmark = pytest.mark.slow


@pytest.fixture
def zoo(demo_zoo: Path) -> Path:
    return demo_zoo


def test_every_scope_has_at_least_twelve_models_across_the_groups(zoo):
    for name in ("digits", "lotto_6_49"):
        scope = load_scope(zoo, name)
        assert len(scope.models) >= 12
        assert {m.group for m in scope.models} == {"tree", "neural", "variant", "linear"}
        assert {"xgboost", "random_forest", "extra_trees", "hist_gradient_boosting", "mlp",
                "logistic_regression"} <= {m.model_type for m in scope.models}
        for entry in scope.models:
            meta = json.loads((entry.folder / "meta.json").read_text())
            assert not {"accuracy", "auc", "score", "metrics"} & set(meta)  # describes only


def test_a_second_run_rebuilds_nothing_and_a_missing_model_alone_is_rebuilt(zoo):
    lines: list[str] = []
    build_demo_zoo(zoo, scopes=("digits",), progress=lines.append)
    assert "digits: complete, skipped (use --force to rebuild)" in lines
    assert "0 model(s) built" in lines[-1]

    (zoo / "digits" / "mlp_small" / "model.joblib").unlink()
    lines.clear()
    build_demo_zoo(zoo, scopes=("digits",), progress=lines.append)
    assert "1 model(s) built" in lines[-1]
    assert any("mlp_small trained" in line for line in lines)


def test_the_lottery_shows_no_skill(zoo):
    store = open_store(zoo)
    board, _ = build_leaderboard(zoo, "lotto_6_49", store)
    store.close()
    assert len(board.ranked) >= 12
    for row in board.ranked:
        assert row.composite_score < 0.02
        assert row.health_score == 0.0
        assert row.tied_with_leader or row.rank == 1
    chance = board.chance["top_5_accuracy"]
    assert chance == pytest.approx(5 / 49, abs=0.02)


def test_digits_models_are_real_and_skilled(zoo):
    store = open_store(zoo)
    board, evaluation = build_leaderboard(zoo, "digits", store)
    store.close()
    assert all(m.ok for m in evaluation.models)
    assert board.leader.metrics["accuracy"] > 0.9
    assert board.leader.composite_score > 0.8


def test_the_loan_applications_scope_is_built_like_a_real_teams(zoo):
    import pandas as pd

    scope = load_scope(zoo, "loan_applications")
    holdout = scope.load_holdout()
    assert scope.preprocessor_path is not None and scope.preprocessor_path.is_file()
    assert holdout.classes == ["ok", "default"]  # text labels, the positive class last
    text = [c for c in holdout.features.columns
            if not pd.api.types.is_numeric_dtype(holdout.features[c])]
    assert {"home_ownership", "purpose", "employment", "region"} <= set(text)
    gaps = holdout.features.isna().mean()
    assert 0.01 < gaps["annual_income"] < 0.06 and 0.01 < gaps["employment"] < 0.06
    store = open_store(zoo)
    board, evaluation = build_leaderboard(zoo, "loan_applications", store)
    store.close()
    assert all(m.ok for m in evaluation.models), [m.reason for m in evaluation.models]
    assert board.leader.metrics["roc_auc"] > 0.7
    # Models kept as a team keeps them: pickles, XGBoost's own file, a network in ONNX.
    files = {m.model_name: scope.model(m.model_name).model_path.name for m in evaluation.models}
    assert {"model.joblib", "model.ubj", "model.onnx"} <= set(files.values()), files
    assert all(board.row(name).metrics["roc_auc"] > 0.65 for name in files)
