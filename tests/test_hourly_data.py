"""The 1H demo scope: simulated hourly prices, split by time, features that never see a later
price, and twelve real regressors that rank as the simulated signal says they should."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score

from demo import DEMO_SCOPES, build_demo_zoo
from demo._hourly import (
    HOLDOUT_HOURS,
    HOURLY_MODELS,
    HOURLY_SCOPE,
    TARGET,
    hourly_features,
    hourly_frames,
    simulate_market,
)

GROUPS = {"tree", "neural", "variant", "linear"}


def test_the_scope_is_built_second_right_after_the_first_page_one():
    assert DEMO_SCOPES[:2] == ("digits", HOURLY_SCOPE)


def test_the_holdout_is_the_last_hours_strictly_after_every_training_row():
    train, holdout, info = hourly_frames()
    assert len(holdout) == HOLDOUT_HOURS
    assert holdout.index.min() > train.index.max()
    hours = train.index.append(holdout.index)
    assert (np.diff(hours.to_numpy()) == np.timedelta64(1, "h")).all()  # no gap, no overlap
    assert info["task"] == "regression" and info["target"] == TARGET
    assert set(info) == {"task", "target", "holdout", "description", "gates"}  # no binary keys
    assert info["gates"] == {"min_composite": 0.02}  # a weak signal scores low
    assert "simulated" in info["description"].lower()
    assert f"{HOLDOUT_HOURS:,} hours" in info["description"]


def test_the_features_are_numbers_without_gaps_and_the_time_is_not_one_of_them():
    train, holdout, _ = hourly_frames()
    for frame in (train, holdout):
        assert all(pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns)
        assert not frame.isna().any().any()
    assert list(train.columns) == list(holdout.columns)
    assert {"ret_lag_1", "ret_lag_6", "vol_24h", "hour_of_day", "day_of_week"} < set(
        holdout.columns)
    assert not {"timestamp", "close", "volume"} & set(holdout.columns)


def test_a_row_never_sees_a_later_price():
    market = simulate_market()
    now = market.index[10_000]
    rng = np.random.default_rng(0)
    later = market.index > now
    changed = market.copy()
    changed.loc[later, "close"] *= np.exp(rng.normal(0, 0.05, later.sum()))
    changed.loc[later, "volume"] *= rng.uniform(0.5, 2.0, later.sum())
    before = hourly_features(market).loc[:now]
    after = hourly_features(changed).loc[:now]
    features = [c for c in before.columns if c != TARGET]
    pd.testing.assert_frame_equal(before[features], after[features])
    # The target is the only column that looks ahead: one hour, and no further.
    assert (before[TARGET].iloc[:-1] == after[TARGET].iloc[:-1]).all()
    assert before[TARGET].iloc[-1] != after[TARGET].iloc[-1]


def test_the_simulation_is_deterministic():
    first, second = hourly_frames(), hourly_frames()
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])


# --------------------------------------------------------------------------------------
# The built scope (real fits, about 6 s)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models root holding the 1H scope alone; a test that changes it puts it back."""
    root = tmp_path_factory.mktemp("hourly") / "models"
    build_demo_zoo(root, scopes=(HOURLY_SCOPE,), progress=lambda _: None)
    return root


def _holdout_r2(scope_dir: Path) -> dict[str, float]:
    """Each model's R² on holdout.csv, from the files on disk."""
    holdout = pd.read_csv(scope_dir / "holdout.csv")
    y = holdout.pop(TARGET)
    return {m.name: r2_score(y, joblib.load(scope_dir / m.name / "model.joblib").predict(holdout))
            for m in HOURLY_MODELS}


@pytest.mark.slow
def test_building_writes_a_regression_scope_with_twelve_models_in_four_groups(built):
    scope_dir = built / HOURLY_SCOPE
    _, expected, info = hourly_frames()
    assert json.loads((scope_dir / "scope.json").read_text()) == info
    holdout = pd.read_csv(scope_dir / "holdout.csv")
    assert len(holdout) == HOLDOUT_HOURS and TARGET in holdout.columns
    assert not holdout.isna().any().any()
    pd.testing.assert_frame_equal(holdout, expected.reset_index(drop=True), check_exact=False)
    folders = sorted(p for p in scope_dir.iterdir() if p.is_dir())
    assert [p.name for p in folders] == sorted(m.name for m in HOURLY_MODELS)
    assert len(folders) == 12
    metas = {p.name: json.loads((p / "meta.json").read_text()) for p in folders}
    assert {meta["group"] for meta in metas.values()} == GROUPS
    for name, meta in metas.items():
        assert {"model_type", "group", "description", "seed", "training"} <= set(meta)
        assert not {"r2", "rmse", "score", "metrics"} & set(meta)  # describes only
        assert meta["training"]["rows"] > 10_000 and meta["training"]["features"] == 14
        assert (scope_dir / name / "model.joblib").stat().st_size < 5_000_000
    assert metas["mean_baseline"]["group"] == "linear"


@pytest.mark.slow
def test_the_models_rank_as_the_simulated_signal_says(built):
    r2 = _holdout_r2(built / HOURLY_SCOPE)
    trees = [m.name for m in HOURLY_MODELS if m.group == "tree"]
    best_tree = max(r2[name] for name in trees)
    assert 0.03 < best_tree < 0.15, r2  # weak but real
    assert 0 < r2["ridge"] < max(r2.values()), r2  # the linear baseline sees part of it
    assert max(r2.values()) - r2["ridge"] > 0.01, r2
    assert abs(r2["mean_baseline"]) <= 0.01, r2  # the mean has no skill


@pytest.mark.slow
def test_a_second_build_skips_and_a_missing_model_alone_is_rebuilt(built):
    lines: list[str] = []
    build_demo_zoo(built, scopes=(HOURLY_SCOPE,), progress=lines.append)
    assert f"{HOURLY_SCOPE}: complete, skipped (use --force to rebuild)" in lines
    assert "0 model(s) built" in lines[-1]

    (built / HOURLY_SCOPE / "ridge" / "model.joblib").unlink()
    lines.clear()
    build_demo_zoo(built, scopes=(HOURLY_SCOPE,), progress=lines.append)
    assert "1 model(s) built" in lines[-1]
    assert any("ridge trained" in line for line in lines)
    assert _holdout_r2(built / HOURLY_SCOPE)["ridge"] > 0


@pytest.mark.slow
def test_a_forced_build_retrains_everything_to_the_same_predictions(built):
    before = _holdout_r2(built / HOURLY_SCOPE)
    lines: list[str] = []
    build_demo_zoo(built, scopes=(HOURLY_SCOPE,), force=True, progress=lines.append)
    assert "12 model(s) built" in lines[-1]
    assert _holdout_r2(built / HOURLY_SCOPE) == before
