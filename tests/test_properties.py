"""Invariants that must hold for any input (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import promotion
from promotion._evaluation import ModelEvaluation, ScopeEvaluation

weights = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1,
                   max_size=30).filter(lambda ws: sum(ws) > 0)


@given(weights)
def test_normalized_weights_are_non_negative_and_sum_to_one(raw):
    normalized = promotion.normalize(raw)
    assert (normalized >= 0).all()
    assert abs(math.fsum(normalized.tolist()) - 1.0) <= 1e-12


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=25),
       st.integers(min_value=0, max_value=2**31 - 1))
def test_ranking_is_a_permutation_consistent_with_scores(accuracies, seed):
    rng = np.random.default_rng(seed)
    models = [
        ModelEvaluation(f"m{i:02d}", "x", "tree", "ok", None, "0" * 64, None,
                        {"accuracy": a}, {"accuracy": (a, a)}, ("accuracy",),
                        np.clip(a + rng.normal(0, 0.01, (50, 1)), 0, 1))
        for i, a in enumerate(accuracies)
    ]
    evaluation = ScopeEvaluation("s", "multiclass", [0, 1], 100, "0" * 64, {"accuracy": 0.5},
                                 models, 0, 0.0)
    board = promotion.rank_models(evaluation, {"accuracy": 1.0})
    assert sorted(r.model_name for r in board.ranked) == sorted(m.model_name for m in models)
    assert [r.rank for r in board.ranked] == list(range(1, len(models) + 1))
    scores = [r.composite_score for r in board.ranked]
    assert scores == sorted(scores, reverse=True)
    for row in board.ranked:
        assert row.composite_interval[0] <= row.composite_score <= row.composite_interval[1]
