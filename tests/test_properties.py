"""Invariants that must hold for any input (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from factories import make_scope
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promotion import InvalidInputError, InvalidTransitionError
from promotion.evaluation import ModelEvaluation, ScopeEvaluation
from promotion.export import build_cards, ensemble_weights, export_results, normalize, promoted_set
from promotion.lifecycle import demote, make_champion, promote
from promotion.scoring import rank_models
from promotion.store import open_store
from promotion.usecases import scope_state
from promotion.vocabulary import WEIGHTS_METHODS

weights = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1,
                   max_size=30).filter(lambda ws: sum(ws) > 0)


@given(weights)
def test_normalized_weights_are_non_negative_and_sum_to_one(raw):
    normalized = normalize(raw)
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
    board = rank_models(evaluation, {"accuracy": 1.0})
    assert sorted(r.model_name for r in board.ranked) == sorted(m.model_name for m in models)
    assert [r.rank for r in board.ranked] == list(range(1, len(models) + 1))
    scores = [r.composite_score for r in board.ranked]
    assert scores == sorted(scores, reverse=True)
    for row in board.ranked:
        assert row.composite_interval[0] <= row.composite_score <= row.composite_interval[1]


# --- ensemble weights, every method -----------------------------------------------------------

@st.composite
def promoted_sets(draw):
    """Any non-empty promoted set: composites, holdout predictions and true classes."""
    n_models = draw(st.integers(1, 8))
    n_classes = draw(st.integers(2, 6))
    n_rows = draw(st.integers(4, 60))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    probas = [rng.dirichlet(np.ones(n_classes), size=n_rows) for _ in range(n_models)]
    y = rng.integers(0, n_classes, size=n_rows)
    composites = draw(st.lists(st.floats(0, 1), min_size=n_models, max_size=n_models))
    return [f"m{i}" for i in range(n_models)], composites, probas, y, seed


@settings(max_examples=80, deadline=None)
@given(promoted_sets(), st.sampled_from(WEIGHTS_METHODS), st.integers(1, 40))
def test_ensemble_weights_of_every_method_are_non_negative_and_sum_to_one(promoted, method,
                                                                          size):
    names, composites, probas, y, seed = promoted
    if method == "score" and math.fsum(composites) == 0:
        with pytest.raises(InvalidInputError, match="all zero"):
            ensemble_weights(method, names, composites, probas, y, seed=seed,
                                       size=size)
        return
    weights = ensemble_weights(method, names, composites, probas, y, seed=seed,
                                         size=size)
    assert list(weights) == names
    assert all(w >= 0 for w in weights.values())
    assert abs(math.fsum(weights.values()) - 1.0) <= 1e-12


# --- promote / demote are idempotent on a real store --------------------------------------------

@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("props") / "models"
    make_scope(root, "tiny", models=("logreg", "tree_d3", "bayes"))
    store = open_store(root)
    state = scope_state(root, "tiny", store, n_jobs=1)
    yield root, store, state
    store.close()


ACTIONS = st.lists(st.tuples(st.sampled_from(["logreg", "tree_d3", "bayes"]),
                             st.sampled_from(["promote", "demote", "champion"])),
                   min_size=1, max_size=12)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ACTIONS)
def test_promote_demote_and_crowning_are_idempotent(evaluated, actions):
    root, _, state = evaluated
    store = open_store(root, f"sqlite:///{root}/idem-{next(_counter)}.db")
    try:
        for model, action in actions:
            first = _act(store, state, model, action)
            stages, history = store.stages("tiny"), store.history("tiny")
            assert _act(store, state, model, action) is None  # the same again: a no-op
            assert store.stages("tiny") == stages and store.history("tiny") == history
            if first is not None:
                assert first.model_name == model
    finally:
        store.close()


_counter = iter(range(10**9))


def _act(store, state, model, action):
    args = (store, state.scope, state.evaluation, state.board, model)
    try:
        if action == "promote":
            return promote(*args, actor="a", reason="r", override=True)
        if action == "demote":
            return demote(*args, actor="a", reason="r")
        return make_champion(*args, actor="a", reason="r", override=True)
    except InvalidTransitionError:
        return None  # not allowed from the current stage: nothing may have changed either


# --- export -> engine load round-trips every card field -----------------------------------------

@pytest.fixture(scope="module")
def exportable(evaluated):
    root, store, state = evaluated
    for name in ("logreg", "tree_d3", "bayes"):
        promote(store, state.scope, state.evaluation, state.board, name, actor="a",
                          reason="r", override=True)
    promoted = promoted_set(state.scope, store, state.evaluation, state.board)
    return root, store, promoted, build_cards(promoted, store)


texts = st.text(max_size=200)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.floats(0, 1e6), min_size=3, max_size=3).filter(lambda ws: sum(ws) > 0),
       st.lists(st.tuples(texts, texts, texts, texts), min_size=3, max_size=3),
       st.sampled_from(WEIGHTS_METHODS))
def test_export_then_engine_load_round_trips_every_card_field(exportable, raw, words, method):
    from promotion.engine import PredictionEngine

    root, store, promoted, cards = exportable
    weights = normalize(raw)
    edited = [card.model_copy(update={
        "ensemble_weight": float(w), "weights_method": method, "strength": s,
        "known_bias": b, "recommended_use": u, "model_type": t or "x"})
        for card, w, (s, b, u, t) in zip(cards, weights, words, strict=True)]
    written = export_results(promoted, store, method, cards=edited)
    engine = PredictionEngine.load("tiny", root, cards_file=written.model_cards)
    assert engine.cards == written.cards
    for loaded, card in zip(engine.cards, written.cards, strict=True):
        assert loaded.model_dump() == card.model_dump()  # every field, one by one
