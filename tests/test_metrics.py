from __future__ import annotations

import math

import numpy as np
import pytest

from promotion import UnknownMetricError
from promotion.metrics import (
    chance_levels,
    default_weights,
    get_metric,
    get_metric_names,
    metric_score,
)
from promotion.scoring import resolve_weights


def test_unknown_metric_lists_valid_names():
    with pytest.raises(UnknownMetricError, match="valid metrics are accuracy, top_5_accuracy"):
        get_metric("f1_macro")


def test_directions_follow_the_metric():
    assert get_metric("roc_auc").sign == 1
    assert get_metric("log_loss").sign == -1
    assert get_metric("latency_p95_ms").sign == -1


def test_metrics_by_task():
    assert "top_5_accuracy" in get_metric_names("multiclass")
    assert "top_5_accuracy" not in get_metric_names("binary")
    assert "roc_auc" in get_metric_names("binary")


def test_chance_levels_are_those_of_the_best_constant_guess():
    counts = np.array([500, 200, 100, 100, 60, 40])
    priors = counts / counts.sum()
    chance = chance_levels(counts)
    assert chance["accuracy"] == pytest.approx(0.5, abs=0.005)  # a clear majority class
    assert chance["top_5_accuracy"] == pytest.approx(0.96, abs=0.005)
    assert chance["balanced_accuracy"] == pytest.approx(1 / 6)
    assert chance["log_loss"] == pytest.approx(-(priors * np.log(priors)).sum())
    assert chance["roc_auc"] == 0.5


def test_chance_is_not_flattered_by_the_rows_it_is_scored_on():
    # 49 equally likely classes: the best constant top-5 guess has no skill, about 5/49.
    counts = np.random.default_rng(0).multinomial(1000, np.full(49, 1 / 49))
    in_sample = np.sort(counts)[::-1][:5].sum() / 1000
    chance = chance_levels(counts)
    assert in_sample > 0.12
    assert chance["top_5_accuracy"] == pytest.approx(5 / 49, abs=0.01)
    assert chance["accuracy"] == pytest.approx(1 / 49, abs=0.005)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("roc_auc", 0.5, 0.0),       # chance
        ("roc_auc", 1.0, 1.0),       # perfect
        ("roc_auc", 0.75, 0.5),
        ("roc_auc", 0.3, 0.0),       # worse than chance is clipped
        ("accuracy", 0.55, 0.1),     # majority share 0.5 is chance
        ("log_loss", 0.0, 1.0),      # lower is better: perfect is 0
        ("log_loss", 5.0, 0.0),      # worse than the prior: clipped
        ("error_rate", 0.0, 1.0),
        ("error_rate", 0.25, 0.75),
        ("latency_p95_ms", 0.1, 1.0),
        ("latency_p95_ms", 1000.0, 0.0),
        ("latency_p95_ms", 10.0, 0.5),   # log scale: halfway between 0.1 ms and 1 s
        ("latency_p95_ms", 5000.0, 0.0),
    ],
)
def test_scores_use_fixed_anchors_and_clip(name, value, expected):
    chance = chance_levels(np.array([50, 50]))
    chance["accuracy"] = 0.5
    assert float(metric_score(name, np.array([value]), chance)[0]) == pytest.approx(expected)


def test_nan_stays_nan():
    chance = chance_levels(np.array([5, 5]))
    assert math.isnan(float(metric_score("roc_auc", np.array([np.nan]), chance)[0]))


def test_default_weights_are_quality_only():
    for task in ("multiclass", "binary"):
        weights = default_weights(task)
        assert all(get_metric(n).kind == "quality" for n in weights)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"speed": 1.0}, "unknown metric 'speed'"),
        ({"roc_auc": 1.0}, "does not apply to multiclass"),
        ({"accuracy": -1.0}, "must be a finite number >= 0"),
        ({"accuracy": 0.0}, "at least one weight must be greater than 0"),
        ({"throughput_rows_s": 1.0}, "informational"),
    ],
)
def test_bad_weights_are_refused(weights, message):
    with pytest.raises(ValueError, match=message):
        resolve_weights("multiclass", weights)


def test_zero_weights_are_dropped():
    assert resolve_weights("binary", {"roc_auc": 1.0, "log_loss": 0.0}) == {"roc_auc": 1.0}
