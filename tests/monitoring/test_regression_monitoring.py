"""Monitoring a regression export: numeric outcomes, live RMSE and MAE per model and day
against an independent scikit-learn computation on the logged rows, the canary rule on RMSE
(lower is better), the replay and drift, and the command line."""

from __future__ import annotations

import copy
import io
import math
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import write_model
from served_regression import SCOPE, regression_export
from sklearn.metrics import mean_absolute_error, mean_squared_error

from promotion import InvalidInputError
from promotion.engine import PredictionEngine, read_cards
from promotion.engine._predlog import log_path, read_batches, read_outcomes
from promotion.monitoring import (
    decide,
    drift,
    load_live,
    recommend,
    record_outcomes,
    regression_comparison,
    served_errors,
    simulate,
    window_metrics,
)
from promotion.monitoring._rules import RuleFigures
from promotion.scopes import load_scope

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0


def holdout(root: Path):
    return load_scope(root, SCOPE).load_holdout()


def serve_days(root: Path, frame: pd.DataFrame, ids: list[str], days: float,
               start: float = datetime(2026, 3, 1, tzinfo=UTC).timestamp(),
               batch_rows: int = 200) -> None:
    """Serve ``frame`` as requests spread evenly over ``days`` from ``start``."""
    times = start + np.arange(len(frame)) * (days * DAY / len(frame))
    engine = PredictionEngine.load(SCOPE, root)
    try:
        for at in range(0, len(frame), batch_rows):
            part = slice(at, at + batch_rows)
            engine.serve(frame.iloc[part], ids[part], times=times[part])
    finally:
        engine.close()


def labels(ids: list[str], values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"request_id": ids, "label": [repr(float(v)) for v in values]})


@pytest.fixture
def root(models_root, regression_scope) -> Path:
    return models_root


def test_numeric_outcomes_join_and_a_text_label_refuses_the_file(root, store):
    regression_export(root, store, {"ridge": 1.0})
    rows = holdout(root)
    ids = [f"q{i}" for i in range(5)]
    serve_days(root, rows.features.head(5), ids, 1.0)
    bad = labels(ids, rows.y[:5])
    bad.loc[3, "label"] = "high"
    with pytest.raises(InvalidInputError) as err:
        record_outcomes(root, SCOPE, bad, source="outcomes.csv")
    assert str(err.value).startswith("outcomes.csv: row 4 (request_id 'q3'), column 'label': "
                                     "'high' is not a finite number")
    assert read_outcomes(log_path(root, SCOPE)) == {}  # nothing of the file joined
    report = record_outcomes(root, SCOPE, labels(ids[:3], rows.y[:3]))
    assert report.written == 3
    again = pd.DataFrame({"request_id": ["q0", "q1", "nope"],
                          "label": [f"{rows.y[0]:.4f}", str(rows.y[1] + 1), "1"]})
    report = record_outcomes(root, SCOPE, again)
    # "151.0000" is 151.0 again: a duplicate, not a conflict.
    assert (report.written, report.duplicates, report.conflicts, report.unmatched) == (
        0, ["q0"], ["q1"], ["nope"])
    stored = read_outcomes(log_path(root, SCOPE))
    assert {k: float(v) for k, v in stored.items()} == dict(zip(ids[:3], rows.y[:3],
                                                                strict=True))


def z95() -> float:
    return NormalDist().inv_cdf(0.975)


def test_live_rmse_and_mae_per_model_and_day_equal_scikit_learn_on_the_logged_rows(root,
                                                                                   store):
    cards_path = regression_export(root, store, {"ridge": 0.5, "tree_d4": 0.3, "knn": 0.2})
    rows = holdout(root)
    frame = pd.concat([rows.features] * 2, ignore_index=True)
    y = np.concatenate([rows.y, rows.y])
    ids = [f"r{i}" for i in range(len(frame))]
    serve_days(root, frame, ids, 2.0)
    labelled = np.arange(len(ids)) % 5 != 0  # a fifth of the requests has no outcome yet
    record_outcomes(root, SCOPE, labels([i for i, k in zip(ids, labelled, strict=True) if k],
                                        y[labelled]))
    cards = read_cards(cards_path)
    table = window_metrics(load_live(root, SCOPE), "regression", cards)

    # Independently: the logged values and outcomes, read back with plain decoding.
    batches = read_batches(log_path(root, SCOPE))
    outcomes = read_outcomes(log_path(root, SCOPE))
    logged = pd.DataFrame({
        "id": [i for b in batches for i in b.request_ids],
        "day": pd.to_datetime(np.concatenate([b.at for b in batches]), unit="s",
                              utc=True).floor("D"),
        **{m: np.concatenate([b.probas[:, k, 0] for b in batches])
           for k, m in enumerate(batches[0].models)}})
    logged["y"] = logged["id"].map(lambda i: float(outcomes[i]) if i in outcomes else np.nan)
    logged = logged.dropna(subset=["y"])
    assert len(table) == 2 * 3 * 2  # days × models × (RMSE, MAE)
    for (day, model, metric), row in table.set_index(["window", "model", "metric"]).iterrows():
        day_rows = logged[logged["day"] == day]
        miss = day_rows[model] - day_rows["y"]
        n = len(day_rows)
        assert row["outcomes"] == n
        if metric == "rmse":
            mse = mean_squared_error(day_rows["y"], day_rows[model])
            half = z95() * np.std(miss ** 2, ddof=1) / math.sqrt(n)
            expected = (math.sqrt(mse), math.sqrt(mse - half), math.sqrt(mse + half))
        else:
            mae = mean_absolute_error(day_rows["y"], day_rows[model])
            half = z95() * np.std(np.abs(miss), ddof=1) / math.sqrt(n)
            expected = (mae, mae - half, mae + half)
        np.testing.assert_allclose([row["value"], row["low"], row["high"]], expected,
                                   rtol=1e-9)
        held = next(c for c in cards if c.model_name == model).metrics[metric]
        assert (row["holdout"], row["holdout_low"], row["holdout_high"]) == (
            held.value, held.low, held.high)
    # The served answers (the weighted mean) on every request with an outcome.
    served = np.concatenate([b.served_values for b in batches])
    answered, errors = served_errors(load_live(root, SCOPE))
    assert answered == int(labelled.sum())
    assert errors["rmse"][0] == pytest.approx(
        math.sqrt(mean_squared_error(y[labelled], served[labelled])), rel=1e-12)
    assert errors["mae"][0] == pytest.approx(
        mean_absolute_error(y[labelled], served[labelled]), rel=1e-12)
    # The logged values are each member's own predict, at full precision.
    ridge = joblib.load(root / SCOPE / "ridge" / "model.joblib")
    np.testing.assert_array_equal(batches[0].probas[:, 0, 0],
                                  ridge.predict(frame.iloc[:len(batches[0].request_ids)]))


def shifted_ridge(root: Path, name: str, ratio: float, frame: pd.DataFrame, y: np.ndarray
                  ) -> None:
    """The ridge with its intercept moved so its RMSE on ``frame`` is ``ratio`` × the
    ridge's: a canary that over-predicts by a constant."""
    ridge = joblib.load(root / SCOPE / "ridge" / "model.joblib")
    miss = ridge.predict(frame) - y
    mean, mse = miss.mean(), (miss ** 2).mean()
    # (e + d)² averages to mse + 2·mean·d + d²: solved for ratio² · mse.
    delta = -mean + math.sqrt(mean ** 2 + mse * (ratio ** 2 - 1))
    worse = copy.deepcopy(ridge)
    worse.intercept_ = ridge.intercept_ + delta
    write_model(root / SCOPE, name, worse, model_type="ridge", group="variant")


@pytest.mark.parametrize(("ratio", "rolls_back"), [(1.06, True), (1.03, False)])
def test_the_canary_is_rolled_back_when_its_live_rmse_is_over_5_percent_worse(
        root, store, ratio, rolls_back):
    rows = holdout(root)
    frame = pd.concat([rows.features] * 6, ignore_index=True)  # 1,062 requests
    y = np.tile(rows.y, 6)
    shifted_ridge(root, "ridge_shifted", ratio, frame, y)
    regression_export(root, store, {"ridge": 0.5, "ridge_shifted": 0.5}, mode="canary",
                      roles={"ridge": "champion", "ridge_shifted": "canary"}, share=0.1)
    ids = [f"c{i}" for i in range(len(frame))]
    serve_days(root, frame, ids, 4.0)
    record_outcomes(root, SCOPE, labels(ids, y))
    cards = read_cards(sorted((root / "advanced" / "model_cards").iterdir())[-1])
    live = load_live(root, SCOPE)
    advice = recommend(live, cards, "regression")
    f = advice.figures
    assert (advice.subject, advice.baseline, f.outcomes) == ("ridge_shifted", "ridge", 1062)
    assert f.lower_is_better and f.live / f.baseline_live == pytest.approx(ratio, rel=1e-9)
    # Independently: the champion's live RMSE is scikit-learn's on every request.
    champion = joblib.load(root / SCOPE / "ridge" / "model.joblib").predict(frame)
    assert f.baseline_live == pytest.approx(math.sqrt(mean_squared_error(y, champion)),
                                            rel=1e-12)
    # The RMSE rule alone (the latency rule compares timings: held equal here).
    action, rule = decide(replace(f, latency_ms=f.baseline_latency_ms))
    if rolls_back:
        assert action == advice.action == "rollback"
        assert rule == advice.rule == (f"live RMSE {f.live:.4g} is 6.0% above (worse than) "
                                       f"the baseline's {f.baseline_live:.4g} (> 5%)")
        assert advice.plan == "stop the canary ridge_shifted: champion mode"
    else:
        assert action == "increase"
        assert "RMSE" not in advice.rule


def figures(**change) -> RuleFigures:
    base = {"outcomes": 5000, "days": 10.0, "min_days": 3, "live": 100.0,
            "baseline_live": 100.0, "error_rate": 0.0, "latency_ms": 1.0,
            "baseline_latency_ms": 1.0, "lower_is_better": True}
    return RuleFigures(**{**base, **change})


@pytest.mark.parametrize(("live", "action"), [
    (105.0, "increase"),  # exactly 5% worse: not more than 5%
    (105.0001, "rollback"),
    (90.0, "increase"),  # better: lower RMSE
    (94.0, "increase"),
])
def test_the_rmse_rule_at_its_boundary(live, action):
    assert decide(figures(live=live))[0] == action
    # The same numbers read as accuracy (higher is better) decide the other way round.
    if live < 95:
        assert decide(figures(live=live, lower_is_better=False))[0] == "rollback"


def test_a_lone_champion_is_held_to_its_holdout_rmse_upper_bound(root, store):
    cards_path = regression_export(root, store, {"ridge": 1.0}, mode="champion",
                                   roles={"ridge": "champion"})
    simulate(root, SCOPE, 1100, seed=3, days=4.0)
    cards = read_cards(cards_path)
    advice = recommend(load_live(root, SCOPE), cards, "regression")
    assert advice.baseline == "holdout upper bound"
    assert advice.figures.baseline_live == cards[0].metrics["rmse"].high
    # Holdout rows replayed: the live RMSE stays within the holdout's level.
    assert advice.figures.live < advice.figures.baseline_live
    assert (advice.action, advice.rule) == ("keep", "the champion holds its holdout level; no "
                                                    "challenger to test")


def test_a_replay_serves_holdout_rows_with_their_true_values_and_flags_drift(root, store):
    cards_path = regression_export(root, store, {"ridge": 0.5, "knn": 0.5}, mode="champion",
                                   roles={"ridge": "champion", "knn": "challenger"})
    report = simulate(root, SCOPE, 600, seed=7, days=3.0, drift=("bmi", 2.0))
    assert report.outcomes.written == 600 and report.drifted == "bmi"
    live = load_live(root, SCOPE)
    assert live.regression and live.labelled.all()
    known = holdout(root)
    assert set(live.y) <= set(known.y.tolist())
    np.testing.assert_array_equal(live.served_values, live.predicted("ridge"))
    table = drift(root, SCOPE, live)
    assert table.iloc[0]["feature"] == "bmi" and table.iloc[0]["flagged"]
    assert not table.iloc[1:]["flagged"].any()
    comparison = regression_comparison(live, read_cards(cards_path))
    assert set(comparison["reference"]) == {"ridge"}
    assert comparison.loc[comparison["model"] == "ridge", "vs_reference"].tolist() == [0, 0]


def run_cli(*args: str, models_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMOTION_DB_URL"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "promotion", *args, "--models-dir",
                           str(models_dir)], capture_output=True, text=True, env=env)


def test_predict_outcomes_and_monitor_from_the_command_line(root, store, tmp_path):
    cards_path = regression_export(root, store, {"ridge": 0.7, "tree_d4": 0.3})
    rows = holdout(root)
    requests = tmp_path / "requests.csv"
    ids = [f"k{i}" for i in range(6)]
    rows.features.head(6).assign(request_id=ids).to_csv(requests, index=False)
    out = tmp_path / "answers.csv"
    done = run_cli("predict", "--scope", SCOPE, "--input", str(requests), "--output", str(out),
                   models_dir=root)
    assert done.returncode == 0, done.stderr
    answers = pd.read_csv(out)
    assert list(answers.columns) == ["request_id", "served_by", "prediction", "failed_models"]
    cards = read_cards(cards_path)
    by_hand = sum(joblib.load(root.parent / c.model_path).predict(rows.features.head(6))
                  * c.ensemble_weight for c in cards)
    np.testing.assert_allclose(answers["prediction"], by_hand, rtol=1e-12)
    outcomes = tmp_path / "outcomes.csv"
    labels(ids, rows.y[:6]).assign(label=lambda f: f["label"].where(f.index != 2, "n/a")
                                   ).to_csv(outcomes, index=False)
    done = run_cli("outcomes", "--scope", SCOPE, "--file", str(outcomes), models_dir=root)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert f"{outcomes}: row 3 (request_id 'k2'), column 'label': 'n/a' is not a finite " \
           "number" in done.stderr
    labels(ids, rows.y[:6]).to_csv(outcomes, index=False)
    done = run_cli("outcomes", "--scope", SCOPE, "--file", str(outcomes), models_dir=root)
    assert done.returncode == 0 and "6 outcome(s) joined" in done.stdout
    done = run_cli("monitor", "--scope", SCOPE, models_dir=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{SCOPE}: 6 requests logged, 6 outcomes")
    assert "recommendation: none (ensemble mode" in done.stdout
    # The served values read back from the log equal the file's predictions.
    [batch] = read_batches(log_path(root, SCOPE))
    np.testing.assert_array_equal(batch.served_values, pd.read_csv(io.StringIO(
        out.read_text()))["prediction"].to_numpy())


def test_a_log_of_another_task_than_the_scopes_gets_no_recommendation(models_root,
                                                                       tiny_scope):
    """A scope whose task changed since it was served: its classification log is no evidence
    about regression models (and nothing fails reading it)."""
    from factories import make_card, write_cards

    cards = [make_card(models_root, "logreg", deployment_mode="champion", role="champion",
                       is_champion=True)]
    engine = PredictionEngine.load("tiny", models_root, cards_file=write_cards(models_root,
                                                                               cards))
    engine.serve(load_scope(models_root, "tiny").load_holdout().features.head(10))
    engine.close()
    live = load_live(models_root, "tiny")
    assert not live.regression
    advice = recommend(live, cards, "regression")
    assert advice.action == "none" and "another task than the scope's" in advice.rule
    assert window_metrics(live, "regression", cards).empty
