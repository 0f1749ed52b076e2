"""Drift on real data: text categories counted by value, missing values in their own bin,
float32 logged values matched to float64 holdout values within a tolerance, and no verdict
below the minimum sample."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from factories import cancer_frame, make_real_scope, real_data_pipeline
from sklearn.linear_model import LogisticRegression

from promotion.monitoring import drift, drift_table, feature_stats, load_live, simulate
from promotion.monitoring._drift import MIN_DRIFT_ROWS, bin_counts
from promotion.usecases import change_stage, export_scope


@pytest.fixture
def served(models_root, store):
    """The breast-cancer scope (text category, gaps), exported with one pipeline model."""
    frame = cancer_frame()
    frame["rating"] = np.round((frame["mean radius"] // 3 - 4.2) / 1.37, 5)  # low-card float
    make_real_scope(models_root, "cancer", frame, "diagnosis", models={
        "pipeline": real_data_pipeline(frame.drop(columns="diagnosis"),
                                       LogisticRegression(max_iter=2000))})
    change_stage(models_root, "cancer", store, "pipeline", "production", actor="ana",
                 reason="drift test", override=True)
    export_scope(models_root, "cancer", store)
    return models_root


def test_replayed_holdout_rows_do_not_drift(served):
    simulate(served, "cancer", 1500, seed=3)
    table = drift(served, "cancer", load_live(served, "cancer"))
    assert not table["flagged"].any(), table
    assert set(table["verdict"]) == {"stable"}
    assert table.set_index("feature").loc["size", "bins"] == 5  # 3 values, other, missing
    assert table["psi"].max() < 0.1


def test_below_the_minimum_sample_there_is_no_verdict(served):
    simulate(served, "cancer", 10, seed=1, drift=("mean radius", 3.0))
    table = drift(served, "cancer", load_live(served, "cancer"))
    assert not table["flagged"].any()
    assert set(table["verdict"]) == {f"not enough rows (10 < {MIN_DRIFT_ROWS})"}
    assert table["psi"].isna().all()


def test_a_category_that_moves_is_flagged_by_value():
    holdout = pd.DataFrame({"size": ["small"] * 60 + ["large"] * 30 + [None] * 10})
    stats = feature_stats("s", holdout, datetime.now(UTC))
    bins = stats.features[0]
    assert bins.kind == "categories" and sorted(bins.labels) == ["large", "small"]
    live = pd.DataFrame({"size": ["large"] * 150 + ["small"] * 40 + ["huge"] * 10})
    from promotion.engine._align import input_numbers

    codes = input_numbers(live).astype(np.float32)
    counts = bin_counts(bins, codes[:, 0])
    by_label = dict(zip(bins.labels, counts[:2].tolist(), strict=True))
    assert by_label == {"large": 150, "small": 40} and counts[2:].tolist() == [10, 0]
    assert drift_table(stats, codes, ["size"])["flagged"].tolist() == [True]


def test_float32_copies_of_low_cardinality_floats_match_their_values():
    rng = np.random.default_rng(0)
    rating = np.round((rng.integers(1, 8, 2000) - 3.6) / 1.45, 5)  # 7 values, not in float32
    score = np.round(rng.integers(0, 11, 2000) * 0.1, 1)  # a 0.1-step score
    wide = rng.normal(size=2000)  # quantile bins
    holdout = pd.DataFrame({"rating": rating, "score": score, "wide": wide})
    stats = feature_stats("s", holdout, datetime.now(UTC))
    logged = holdout.to_numpy(dtype=np.float32)
    assert (logged[:, 0].astype(float) != rating).any()  # float32 really differs
    table = drift_table(stats, logged, ["rating", "score", "wide"])
    assert table["psi"].max() < 1e-9, table
    assert not table["flagged"].any()
