from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest

from promotion.contract import LeaderboardEntry
from promotion.evaluation import evaluate_scope
from promotion.scopes import load_scope
from promotion.scoring import rank_models
from promotion.usecases import build_leaderboard


@pytest.fixture
def evaluation(models_root, tiny_scope, store):
    return evaluate_scope(load_scope(models_root, "tiny"), store, n_jobs=1)


def test_ranks_are_one_to_n_by_composite(evaluation):
    board = rank_models(evaluation)
    assert [r.rank for r in board.ranked] == list(range(1, len(board.ranked) + 1))
    scores = [r.composite_score for r in board.ranked]
    assert scores == sorted(scores, reverse=True)
    for row in board.ranked:
        low, high = row.composite_interval
        assert 0 <= low <= row.composite_score <= high <= 1
        assert row.health_score == low


def test_model_order_does_not_change_scores(evaluation):
    board = rank_models(evaluation)
    shuffled = replace(evaluation, models=list(reversed(evaluation.models)))
    again = rank_models(shuffled)
    assert [(r.model_name, r.composite_score, r.composite_interval) for r in board.rows] == [
        (r.model_name, r.composite_score, r.composite_interval) for r in again.rows]


def test_removing_a_model_never_moves_another_models_score(evaluation):
    board = rank_models(evaluation)
    fewer = rank_models(replace(evaluation, models=evaluation.models[1:]))
    for row in fewer.ranked:
        assert row.composite_score == board.row(row.model_name).composite_score


def test_weights_change_the_ranking(evaluation):
    by_accuracy = rank_models(evaluation, {"accuracy": 1.0})
    for row in by_accuracy.ranked:
        assert row.composite_score == pytest.approx(
            (row.metrics["accuracy"] - evaluation.chance["accuracy"])
            / (1 - evaluation.chance["accuracy"]))
    assert by_accuracy.weights == {"accuracy": 1.0}


def test_models_overlapping_the_leader_are_tied(evaluation):
    board = rank_models(evaluation)
    leader_low = board.leader.composite_interval[0]
    for row in board.ranked[1:]:
        assert row.tied_with_leader == (row.composite_interval[1] >= leader_low)
    assert not board.leader.tied_with_leader


def test_identical_models_tie_and_break_by_name(models_root, store):
    from factories import make_scope

    scope_dir = make_scope(models_root, "twins", models=("logreg",))
    import shutil

    shutil.copytree(scope_dir / "logreg", scope_dir / "a_copy")
    board, _ = build_leaderboard(models_root, "twins", store, n_jobs=1)
    first, second = board.ranked
    assert first.composite_score == second.composite_score
    assert (first.model_name, second.model_name) == ("a_copy", "logreg")
    assert second.tied_with_leader


def test_a_nan_metric_makes_the_model_unscorable_not_the_board(evaluation):
    broken = replace(evaluation.models[0], metrics={**evaluation.models[0].metrics,
                                                    "log_loss": float("nan")})
    board = rank_models(replace(evaluation, models=[broken, *evaluation.models[1:]]))
    row = board.row(broken.model_name)
    assert row.status == "failed"
    assert "log_loss could not be measured (NaN)" in row.reason
    assert len(board.ranked) == len(evaluation.models) - 1
    assert not np.isnan([r.composite_score for r in board.ranked]).any()


def test_the_frame_and_the_exported_entries_are_one_row(evaluation):
    """Rows, exported entries and the frame's lines come from one shape: the row's evaluation
    read through ``LeaderboardRow.to_entry``."""
    broken = replace(evaluation.models[0], status="failed", reason="boom", metrics={},
                     intervals={}, replicate_names=(), replicates=None)
    board = rank_models(replace(evaluation, models=[broken, *evaluation.models[1:]]))
    entries = board.entries()
    frame = board.to_frame()
    assert [e.model_name for e in entries] == [r.model_name for r in board.rows] == list(
        frame["model_name"])
    for row, entry, (_, line) in zip(board.rows, entries, frame.iterrows(), strict=True):
        assert entry.stage == "development"  # no record in any store
        assert (entry.model_type, entry.group, entry.phase, entry.sha256) == (
            row.evaluation.model_type, row.evaluation.group, row.phase, row.evaluation.sha256)
        assert line["status"] == entry.status
        if row.ok:
            assert line["health_score"] == entry.health_score == entry.composite_interval[0]
            assert (line["composite_low"], line["composite_high"]) == entry.composite_interval
            for name, metric in entry.metrics.items():
                assert metric.value == line[name] == row.evaluation.metrics[name]
                assert (metric.low, metric.high) == row.evaluation.intervals[name]
    assert set(frame.columns) >= set(LeaderboardEntry.model_fields) - {"composite_interval",
                                                                        "metrics"}
    failed = board.row(broken.model_name)
    assert (failed.rank, failed.reason, dict(failed.metrics)) == (None, "boom", {})
    assert entries[-1].model_name == broken.model_name and entries[-1].metrics == {}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_interval_is_numpys_linear_percentile(dtype):
    from promotion.scoring._composite import percentile_interval

    replicates = np.random.default_rng(3).normal(0.6, 0.1, (40, 500)).astype(dtype)
    replicates[[4, 17], 9] = np.nan  # resamples without a value are skipped, not propagated
    low, high = percentile_interval(replicates)
    want_low, want_high = np.nanpercentile(replicates.astype(float), [2.5, 97.5], axis=-1)
    np.testing.assert_allclose(low, want_low, rtol=0, atol=1e-12)
    np.testing.assert_allclose(high, want_high, rtol=0, atol=1e-12)
    assert low.dtype == high.dtype == np.float64


@pytest.mark.parametrize("values", [[0.3], [0.2, np.nan, np.nan, 0.9], [np.nan, np.nan],
                                    [0.5, 0.5, 0.5], [0.1, 0.7, 0.2, 0.4, 0.3]])
def test_interval_of_short_or_nan_rows_is_numpys(values):
    from promotion.scoring._composite import percentile_interval

    replicates = np.array([values, sorted(values, reverse=True)], dtype=float)
    low, high = percentile_interval(replicates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns on an all-NaN row
        want_low, want_high = np.nanpercentile(replicates, [2.5, 97.5], axis=-1)
    np.testing.assert_allclose(low, want_low, rtol=0, atol=1e-12)
    np.testing.assert_allclose(high, want_high, rtol=0, atol=1e-12)


def test_differences_below_float32_resolution_still_count(evaluation):
    """Composite replicates are summed in float64: a model better by 1e-9 on every resample
    is better on every resample (the gates' paired test reads these differences)."""
    from promotion.scoring._composite import composite_replicates

    base = next(m for m in evaluation.models if m.ok)
    reps = np.random.default_rng(1).uniform(0.6, 0.9, (300, len(base.replicate_names)))
    column = base.replicate_names.index("accuracy")
    nudged = reps.copy()
    nudged[:, column] += 1e-9
    twins = [replace(base, model_name="a", replicates=reps),
             replace(base, model_name="b", replicates=nudged)]
    composite, replicates = composite_replicates(replace(evaluation, models=twins),
                                                 {"accuracy": 1.0})
    assert replicates.dtype == np.float64
    assert (replicates[1] > replicates[0]).all()


def test_one_significance_rule_for_gates_banner_and_cards(models_root, tiny_scope, store,
                                                           evaluation):
    """A model tested alone against chance level gets the p-value it gets among all of the
    scope's models (Holm-corrected over them), so the gate table, the banner (every model at
    once) and the cards (``skilled_models``) never disagree."""
    from promotion.export._slices import recommended_use
    from promotion.scopes import GateSettings
    from promotion.scoring import gate_report, gate_reports, skill_p_values, skilled_models

    board, settings = rank_models(evaluation), GateSettings()
    together = gate_reports([r.model_name for r in board.ranked], "champion", board,
                            evaluation, settings, None)
    adjusted = skill_p_values(board, evaluation)
    skilled = skilled_models(board, evaluation, settings.alpha)
    for report in together:
        alone = gate_report(report.model_name, "champion", board, evaluation, settings, None)
        significance = next(g for g in alone.gates if g.name == "significance")
        assert significance.p_value == adjusted[report.model_name] == next(
            g.p_value for g in report.gates if g.name == "significance")
        assert significance.passed == (report.model_name in skilled)
    leader = board.ranked[0].model_name
    frame = board.to_frame()
    assert "primary model" in recommended_use(leader, frame, None, skilled=True)
    unskilled = recommended_use(leader, frame, None, skilled=False)
    assert "No evidence of skill" in unskilled and "primary" not in unskilled
