"""A regression scope through the gates, on real models of the diabetes data: the key metric
is RMSE (lower is better), yet the gates judge the composite, so improvement over the
champion and its paired significance on the same holdout rows hold as for classification."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from promotion.evaluation._bootstrap import bootstrap_counts
from promotion.lifecycle import GateFailure
from promotion.metrics import holm, metric_score, regression_chance_levels
from promotion.scopes import load_scope
from promotion.scoring import gate_report
from promotion.scoring import tested_together as corrected_over
from promotion.usecases import change_stage, scope_state


def move(root, store, model, stage, override=False):
    return change_stage(root, "diabetes", store, model, stage, actor="ana",
                        reason="regression gates", override=override)


@pytest.fixture
def state(regression_scope, store):
    return scope_state(regression_scope.parent, "diabetes", store, n_jobs=1)


def gates(state, model, target, champion):
    report = gate_report(model, target, state.board, state.evaluation,
                         state.scope.config.gates, champion)
    return report, {g.name: g for g in report.gates}


def test_the_first_champion_beats_chance_level_and_a_mean_predictor_does_not(state):
    report, by_name = gates(state, "ridge", "champion", None)
    assert report.baseline == "chance level" and report.passed
    assert by_name["improvement"].value == pytest.approx(state.board.row("ridge").composite_score)
    assert by_name["significance"].p_value < 0.05
    report, by_name = gates(state, "mean", "champion", None)
    assert {g.name for g in report.failed} == {"min_composite", "improvement", "significance"}
    assert by_name["significance"].p_value >= 0.05


def test_a_better_regressor_replaces_the_champion_and_a_worse_one_is_blocked(models_root,
                                                                           state, store):
    for name in ("ridge", "knn", "tree_d4"):
        move(models_root, store, name, "production")
    move(models_root, store, "ridge", "champion")
    board = state.board
    # Lower RMSE, higher composite: knn is better than ridge, by a margin chance cannot explain.
    assert board.row("knn").metrics["rmse"] < board.row("ridge").metrics["rmse"]
    _, knn = gates(state, "knn", "champion", "ridge")
    assert knn["improvement"].passed and knn["significance"].passed
    assert knn["improvement"].value == pytest.approx(
        board.row("knn").composite_score / board.row("ridge").composite_score - 1)
    report, tree = gates(state, "tree_d4", "champion", "ridge")
    assert not tree["improvement"].passed and not tree["significance"].passed
    with pytest.raises(GateFailure, match="'tree_d4' cannot move to champion: gates fail"):
        move(models_root, store, "tree_d4", "champion")
    move(models_root, store, "knn", "champion")
    stages = {n: r.stage for n, r in store.stages("diabetes").items()}
    assert stages == {"knn": "champion", "ridge": "archived", "tree_d4": "production"}


def test_an_improvement_chance_can_explain_is_blocked_by_significance(models_root, state, store):
    """Against tree_d4, ridge gains over 2% on the composite, but on the same 200 resampled
    row sets the gain is not consistent: the significance gate alone blocks it."""
    _, by_name = gates(state, "ridge", "champion", "tree_d4")
    assert by_name["improvement"].passed and by_name["improvement"].value > 0.02
    assert not by_name["significance"].passed
    for name in ("ridge", "tree_d4"):
        move(models_root, store, name, "production")
    move(models_root, store, "tree_d4", "champion")
    with pytest.raises(GateFailure, match=r"significance: paired bootstrap vs tree_d4"):
        move(models_root, store, "ridge", "champion")
    assert move(models_root, store, "ridge", "champion", override=True).overridden


def test_a_mean_predictor_cannot_reach_production(models_root, state, store):
    with pytest.raises(GateFailure, match=r"min_composite: composite 0\.0\d+ < 0\.1000"):
        move(models_root, store, "mean", "production")


@pytest.mark.parametrize(("candidate", "champion"), [("knn", "ridge"), ("ridge", "tree_d4"),
                                                     ("ridge", None)])
def test_significance_is_a_paired_test_on_the_same_resampled_rows(regression_scope, state,
                                                                  candidate, champion):
    """The gate's p-value recomputed from scratch: every model's RMSE, MAE and R² by
    scikit-learn on each of the scope's resampled row sets, scored against the no-skill
    anchor, weighted into composites; the candidate's share of resamples not above the
    baseline, Holm-corrected over the models tested against the same baseline."""
    holdout = load_scope(regression_scope.parent, "diabetes").load_holdout()
    y = holdout.y
    board = state.board
    assert board.chance == pytest.approx(regression_chance_levels(y))
    resamples = bootstrap_counts(len(y), state.scope.config.n_bootstrap,
                                 state.scope.config.bootstrap_seed).astype(int)
    picks = [np.repeat(np.arange(len(y)), counts) for counts in resamples]

    def composites(model: str) -> np.ndarray:
        predicted = joblib.load(regression_scope / model / "model.joblib").predict(
            holdout.features)
        values = {"rmse": [np.sqrt(mean_squared_error(y[p], predicted[p])) for p in picks],
                  "mae": [mean_absolute_error(y[p], predicted[p]) for p in picks],
                  "r2": [r2_score(y[p], predicted[p]) for p in picks]}
        total = sum(board.weights.values())
        return sum(weight / total * metric_score(name, np.array(values[name]), board.chance)
                   for name, weight in board.weights.items())

    baseline = composites(champion) if champion else np.zeros(len(picks))
    family = corrected_over(board, champion)
    raw = [(1 + int((composites(m) - baseline <= 0).sum())) / (len(picks) + 1)
           for m in family]
    expected = holm(np.array(raw))[family.index(candidate)]
    _, by_name = gates(state, candidate, "champion", champion)
    assert by_name["significance"].p_value == pytest.approx(expected, rel=1e-12)
