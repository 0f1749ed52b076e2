"""Serving modes, the prediction log, outcomes, the recommendation rules and drift."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from factories import install_old_cards

from promotion import InvalidInputError, InvalidTransitionError, monitoring
from promotion.engine import PredictionEngine, canary_bucket, log_path, read_cards
from promotion.lifecycle import demote, deployment_of, set_deployment
from promotion.monitoring import (
    Crown,
    Recommendation,
    apply_recommendation,
    decide,
    load_live,
    read_labels,
    recommend,
    record_outcomes,
    simulate,
)
from promotion.monitoring._rules import MIN_DAYS, RuleFigures
from promotion.scopes import file_sha256, load_scope
from promotion.usecases import change_stage, deploy, export_scope, scope_state

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def move(root, store, model, stage):
    change_stage(root, "tiny", store, model, stage, actor="ana", reason="test")


@pytest.fixture
def champion_export(models_root, tiny_scope, store):
    """logreg champion, tree_d3 and bayes challengers, exported in champion mode."""
    for name in ("logreg", "tree_d3", "bayes"):
        move(models_root, store, name, "production")
    move(models_root, store, "logreg", "champion")
    deploy(models_root, "tiny", store, "champion", actor="ana", reason="shadow")
    return models_root


def holdout(models_root: Path, scope: str = "tiny") -> pd.DataFrame:
    return pd.read_csv(models_root / scope / "holdout.csv")


def log_rows(models_root: Path, sql: str) -> list:
    with sqlite3.connect(log_path(models_root, "tiny")) as conn:
        return conn.execute(sql).fetchall()


def logged_ids(models_root: Path) -> list[str]:
    """Every request id in the log, batch by batch, read with plain sqlite3."""
    return [i for (text,) in log_rows(models_root, "SELECT request_ids FROM batch ORDER BY id")
            for i in text.split("\n")]


# --- routing and shadow ------------------------------------------------------------------

def test_the_hash_is_stable_across_processes_and_splits_at_the_share():
    ids = [f"req-{i}" for i in range(40_000)]
    buckets = np.array([canary_bucket(i) for i in ids])
    for share in (0.05, 0.10, 0.25, 0.50):
        observed = (buckets < share).mean()
        sigma = np.sqrt(share * (1 - share) / len(ids))
        assert abs(observed - share) < 4 * sigma, (share, observed)
    code = ("from promotion.engine import canary_bucket; "
            "print([canary_bucket(f'req-{i}') for i in range(5)])")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONPATH": str(ROOT),
                                            "PYTHONHASHSEED": "123"})
    assert json.loads(other.stdout) == list(buckets[:5])


def test_canary_mode_serves_the_share_and_a_request_always_lands_on_the_same_side(
        champion_export, store):
    root = champion_export
    deploy(root, "tiny", store, "canary", canary="tree_d3", canary_share=0.10,
                     actor="ana", reason="start canary")
    engine = PredictionEngine.load("tiny", root)
    assert (engine.mode, engine.canary, engine.canary_share) == ("canary", "tree_d3", 0.10)
    frame = holdout(root).drop(columns="label")
    rows = pd.concat([frame] * 10, ignore_index=True)  # 3,000 requests
    ids = [f"c-{i}" for i in range(len(rows))]
    served = engine.serve(rows, ids)
    canary = np.array([s == "tree_d3" for s in served.served_by])
    assert abs(canary.mean() - 0.10) < 4 * np.sqrt(0.09 / len(ids))
    assert set(served.served_by) == {"logreg", "tree_d3"}
    # The same id (in a fresh log file) lands on the same side.
    log_path(root, "tiny").unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(log_path(root, "tiny")) + suffix).unlink(missing_ok=True)
    fresh = PredictionEngine.load("tiny", root)
    assert fresh.serve(rows, ids).served_by == served.served_by
    breakdown = fresh.predict_breakdown(rows)
    np.testing.assert_array_equal(served.proba[canary], breakdown["tree_d3"][canary])
    np.testing.assert_array_equal(served.proba[~canary], breakdown["logreg"][~canary])


def test_shadow_predictions_never_change_the_served_answer(champion_export, store):
    root = champion_export
    frame = holdout(root).drop(columns="label")
    with_shadows = PredictionEngine.load("tiny", root, log=False)
    assert sorted(c.role for c in with_shadows.cards) == ["challenger", "challenger",
                                                          "champion"]
    answer = with_shadows.predict_proba(frame)
    state = scope_state(root, "tiny", store)
    for name in ("tree_d3", "bayes"):
        demote(store, state.scope, state.evaluation, state.board, name, actor="a",
                         reason="alone")
    export_scope(root, "tiny", store)
    alone = PredictionEngine.load("tiny", root, log=False)
    assert [c.model_name for c in alone.cards] == ["logreg"]
    np.testing.assert_array_equal(answer, alone.predict_proba(frame))
    np.testing.assert_array_equal(answer, with_shadows.predict_breakdown(frame)["logreg"])


def test_every_models_prediction_is_logged_with_mode_and_latency(champion_export):
    engine = PredictionEngine.load("tiny", champion_export)
    frame = holdout(champion_export).drop(columns="label").head(7)
    engine.serve(frame, [f"r{i}" for i in range(7)])
    engine.close()
    live = load_live(champion_export, "tiny")
    assert list(live.requests["request_id"]) == [f"r{i}" for i in range(7)]
    assert set(live.requests["mode"]) == {"champion"} and set(live.requests["served"]) == {
        "logreg"}
    assert set(live.probas) == {"logreg", "tree_d3", "bayes"}
    expected = engine.predict_breakdown(frame)
    for name, proba in live.probas.items():
        np.testing.assert_allclose(proba, expected[name], rtol=1e-6, atol=1e-7)
        assert np.isfinite(live.latency[name]).all()
    np.testing.assert_allclose(live.inputs, frame.to_numpy(np.float32))
    with pytest.raises(InvalidInputError, match="repeat within the batch"):
        engine.serve(frame.head(2), ["z", "z"])
    assert logged_ids(champion_export) == [f"r{i}" for i in range(7)]
    # An id reused by a later batch is served and logged; its label cannot be joined.
    engine.serve(frame.head(1), ["r3"])
    report = record_outcomes(champion_export, "tiny", pd.DataFrame(
        {"request_id": ["r3", "r4"], "label": ["1", "1"]}))
    assert (report.written, report.ambiguous) == (1, ["r3"])
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        log_rows(champion_export, "DELETE FROM batch")


def test_a_process_killed_mid_way_keeps_every_answered_batch(champion_export):
    code = ("import sys; sys.path.insert(0, 'tests'); import promotion.engine, workers; "
            f"workers.serve_forever({str(champion_export)!r}, 'tiny')")
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    answered: list[str] = []
    try:
        for _ in range(5):  # wait on the pipe: each line is one answered batch
            line = worker.stdout.readline()
            assert line, "the worker stopped early"
            answered += line.split()
        worker.send_signal(signal.SIGKILL)  # possibly mid-way through the next batch
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
    logged = set(logged_ids(champion_export))
    assert set(answered) <= logged
    assert len(answered) == 5 * 300
    assert len(logged) % 300 == 0  # whole batches only: a batch is one transaction


# --- outcomes ----------------------------------------------------------------------------

def test_outcomes_join_late_duplicate_conflicting_and_unmatched_labels(champion_export,
                                                                      tmp_path):
    root = champion_export
    data = holdout(root)
    engine = PredictionEngine.load("tiny", root)
    engine.serve(data.drop(columns="label").head(3), ["a", "b", "c"])
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["a", "zzz", "a", "b", "b"],
                  "label": [data.label[0], 1, data.label[0], data.label[1],
                            (data.label[1] + 1) % 6]}).to_csv(labels, index=False)
    report = record_outcomes(root, "tiny", read_labels(labels))
    assert report.written == 2
    assert (report.unmatched, report.duplicates, report.conflicts) == (["zzz"], ["a"], ["b"])
    # A late label: request c gets its label after later requests were served.
    engine.serve(data.drop(columns="label").iloc[3:6], ["d", "e", "f"])
    late = record_outcomes(root, "tiny", pd.DataFrame(
        {"request_id": ["c"], "label": [str(data.label[2])]}))
    assert late.written == 1
    live = load_live(root, "tiny")
    assert list(live.y[:3]) == [int(v) for v in data.label[:3]]
    assert list(live.y[3:]) == [-1, -1, -1]
    assert log_rows(root, "SELECT label FROM outcome WHERE request_id='b'") == [
        (str(data.label[1]),)]  # the first label is kept


def test_the_outcomes_command_reports_what_it_did_not_join(champion_export, tmp_path):
    engine = PredictionEngine.load("tiny", champion_export)
    engine.serve(holdout(champion_export).drop(columns="label").head(2), ["p", "q"])
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\np,1\nnope,2\np,3\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "promotion", "outcomes", "--scope", "tiny",
                           "--file", str(labels), "--models-dir", str(champion_export)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "1 outcome(s) joined" in done.stdout
    assert "1 unmatched (no such request logged): nope" in done.stdout
    assert "1 conflicting (another label; the first is kept): p" in done.stdout
    labels.write_text("id,label\np,1\n")
    done = subprocess.run([sys.executable, "-m", "promotion", "outcomes", "--scope", "tiny",
                           "--file", str(labels), "--models-dir", str(champion_export)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "column 'request_id' is missing" in done.stderr


# --- drift -------------------------------------------------------------------------------

def test_a_simulated_drift_is_flagged_on_that_feature_only(champion_export):
    root = champion_export
    report = simulate(root, "tiny", 2000, drift=("f3", 1.0), seed=1)
    assert report.outcomes.written == 2000
    table = monitoring.drift(root, "tiny", load_live(root, "tiny"))
    assert table["feature"].iloc[0] == "f3"
    assert list(table.loc[table["flagged"], "feature"]) == ["f3"]
    assert table["psi"].iloc[1] < 0.1
    assert list(table["psi"]) == sorted(table["psi"], reverse=True)


def test_feature_stats_are_paired_with_their_export(champion_export):
    files = sorted((champion_export / "advanced" / "feature_stats").glob("*.json"))
    cards = sorted((champion_export / "advanced" / "model_cards").glob("*.json"))
    assert [f.name.removeprefix("feature_stats_") for f in files] == [
        c.name.removeprefix("model_cards_") for c in cards]


# --- the rules ---------------------------------------------------------------------------

def figures(**change) -> RuleFigures:
    base = {"outcomes": 1000, "days": 3.0, "min_days": 3.0, "live": 0.95,
            "baseline_live": 1.0, "error_rate": 0.01, "latency_ms": 2.0,
            "baseline_latency_ms": 1.0}
    return RuleFigures(**(base | change))


@pytest.mark.parametrize(("change", "action"), [
    ({}, "increase"),  # every figure exactly at its boundary: nothing fires
    ({"outcomes": 999}, "wait"),
    ({"days": 2.99}, "wait"),
    ({"live": 0.9499}, "rollback"),
    ({"error_rate": 0.0101}, "rollback"),
    ({"latency_ms": 2.001}, "rollback"),
    ({"outcomes": 999, "live": 0.5}, "wait"),  # waiting comes first, as in the seeds
])
def test_the_recommendation_follows_the_rules_at_their_boundaries(change, action):
    assert decide(figures(**change))[0] == action


def test_minimum_days_follow_the_allocation():
    assert [MIN_DAYS[s] for s in (0.0, 0.10, 0.25, 0.50)] == [3, 3, 5, 7]


def test_apply_the_recommendation_moves_through_the_lifecycle(champion_export, store):
    """A canary fitted on shuffled labels is rolled back by the metric rule, every time.

    Its probabilities carry no information, so its live top-5 accuracy sits near chance
    (5 of 6 classes, about 0.83) while the champion's is near 1.0 on the same requests: a drop
    far above the 5% limit. The metric rule is checked before the latency rule, so the timings
    (which do vary) cannot change the outcome; the 1,200 outcomes and 8 days clear the wait rule.
    """
    from factories import make_data, write_model
    from sklearn.linear_model import LogisticRegression

    from promotion.monitoring._rules import MAX_DROP, MIN_OUTCOMES

    root = champion_export
    X, y = make_data("multiclass", 600)
    shuffled = np.random.default_rng(0).permutation(y[:300])
    write_model(root / "tiny", "noise", LogisticRegression(max_iter=500).fit(X[:300], shuffled),
                model_type="logistic_regression", group="linear")
    change_stage(root, "tiny", store, "noise", "production", actor="ana",
                           reason="a canary that knows nothing", override=True)
    deploy(root, "tiny", store, "canary", canary="noise", canary_share=0.10,
                     actor="ana", reason="start")
    simulate(root, "tiny", 1200, seed=2, days=8)
    cards = read_cards(sorted((root / "advanced" / "model_cards").glob("*.json"))[-1])
    advice = recommend(load_live(root, "tiny"), cards, "multiclass")
    assert advice.subject == "noise" and advice.baseline == "logreg"
    f = advice.figures
    assert f.outcomes == 1200 >= MIN_OUTCOMES and f.days > 7.9 >= f.min_days
    assert f.baseline_live > 0.95 and 1 - f.live / f.baseline_live > 2 * MAX_DROP
    assert advice.action == "rollback" and "below the baseline" in advice.rule
    assert advice.plan == "stop the canary noise: champion mode"
    before = len(store.deployments("tiny"))
    apply_recommendation(root, "tiny", store, advice, actor="ops", reason="live data")
    decided = store.deployments("tiny")
    assert len(decided) == before + 1 and decided[-1].actor == "ops"
    assert "live data" in decided[-1].reason and advice.rule in decided[-1].reason
    engine = PredictionEngine.load("tiny", root, log=False)
    assert (engine.mode, engine.canary) == ("champion", None)


def test_deployment_changes_are_governed(champion_export, store):
    root = champion_export
    scope = load_scope(root, "tiny")
    with pytest.raises(InvalidTransitionError, match="a reason is required"):
        set_deployment(store, scope, "ensemble", actor="a", reason=" ")
    with pytest.raises(InvalidTransitionError, match="starts|skips a step"):
        set_deployment(store, scope, "canary", canary="bayes", canary_share=0.25,
                                 actor="a", reason="too fast")
    with pytest.raises(InvalidTransitionError, match="production model"):
        set_deployment(store, scope, "canary", canary="logreg", canary_share=0.1,
                                 actor="a", reason="champion is no canary")
    set_deployment(store, scope, "canary", canary="bayes", canary_share=0.05,
                             actor="a", reason="start small")
    with pytest.raises(InvalidTransitionError, match="skips a step"):
        set_deployment(store, scope, "canary", canary="bayes", canary_share=0.5,
                                 actor="a", reason="skip")
    assert set_deployment(store, scope, "canary", canary="bayes", canary_share=0.1,
                                    actor="a", reason="next").canary_share == 0.1
    assert set_deployment(store, scope, "canary", canary="bayes",
                                    canary_share=0.1, actor="a", reason="same") is None
    assert deployment_of(store, scope).actor == "a"


def test_a_scope_json_default_deployment_is_validated(models_root):
    from factories import make_scope

    make_scope(models_root, "bad", scope_extra={"deployment": {"mode": "canary"}})
    with pytest.raises(InvalidInputError, match="deployment.*canary mode needs"):
        load_scope(models_root, "bad")
    make_scope(models_root, "odd", scope_extra={"deployment": {"mode": "shadow"}})
    with pytest.raises(InvalidInputError, match="deployment.mode"):
        load_scope(models_root, "odd")


# --- version 1 cards ---------------------------------------------------------------------

def test_a_version_1_cards_file_still_loads_and_serves_the_ensemble(models_root, tiny_scope,
                                                                   tmp_path):
    fixture = FIXTURES / "model_cards_v1.json"
    old = read_cards(fixture)
    assert {c.schema_version for c in old} == {1}
    assert {(c.deployment_mode, c.role) for c in old} == {("ensemble", "member")}
    cards = install_old_cards(models_root, fixture, "20250101T000000000000Z")
    engine = PredictionEngine.load("tiny", models_root, log=False)
    frame = holdout(models_root).drop(columns="label")
    expected = sum(engine.predict_breakdown(frame)[c["model_name"]] * c["ensemble_weight"]
                   for c in cards)
    np.testing.assert_allclose(engine.predict_proba(frame), expected)
    assert engine.mode == "ensemble"


def test_a_version_3_binary_file_keeps_its_class_order_and_decides_by_argmax(models_root):
    """Version 3 cards listed a binary scope's positive class last (here 0: classes [1, 0])
    and had no positive_class nor decision_threshold: they serve as they did."""
    from factories import make_scope

    make_scope(models_root, "bin", task="binary", models=("logreg", "tree_d3"),
               scope_extra={"positive_class": 0})
    cards = json.loads((FIXTURES / "model_cards_v3_binary.json").read_text())
    assert {c["schema_version"] for c in cards} == {3} and cards[0]["classes"] == [1, 0]
    for card in cards:  # the fixture's hashes are of another build of the same models
        card["sha256"] = file_sha256(models_root.parent / card["model_path"])
    path = models_root / "advanced" / "model_cards" / "model_cards_bin_20250101T000000000000Z.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(cards))
    engine = PredictionEngine.load("bin", models_root, log=False)
    frame = holdout(models_root, "bin").drop(columns="label")
    proba = engine.predict_proba(frame)
    assert engine.classes == [1, 0]
    np.testing.assert_array_equal(engine.predict(frame), np.asarray([1, 0])[proba.argmax(axis=1)])


def test_export_carries_the_mode_roles_and_shares(champion_export, store):
    deploy(champion_export, "tiny", store, "canary", canary="bayes",
                     canary_share=0.10, actor="ana", reason="start")
    cards = json.loads(sorted((champion_export / "advanced" / "model_cards").glob("*.json"))
                       [-1].read_text())
    from promotion.contract import SCHEMA_VERSION

    # Version 2 brought the mode, roles and shares; a later version keeps them.
    assert SCHEMA_VERSION >= 2
    assert isinstance(cards, list) and {c["schema_version"] for c in cards} == {SCHEMA_VERSION}
    roles = {c["model_name"]: (c["deployment_mode"], c["role"], c["traffic_share"])
             for c in cards}
    assert roles == {"logreg": ("canary", "champion", 0.9), "bayes": ("canary", "canary", 0.1),
                     "tree_d3": ("canary", "challenger", 0.0)}


def test_simulated_times_are_spread_over_the_days(champion_export):
    end = datetime(2026, 1, 10, tzinfo=UTC)
    report = simulate(champion_export, "tiny", 100, days=5, end=end)
    assert report.first_at == datetime(2026, 1, 5, tzinfo=UTC)
    assert report.last_at < end


def run_cli(*args: str, models_dir: Path) -> subprocess.CompletedProcess[str]:
    # The store beside the models root, whatever the calling shell points at.
    env = {k: v for k, v in os.environ.items() if k != "PROMOTION_DB_URL"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "promotion", *args, "--models-dir",
                           str(models_dir)], capture_output=True, text=True, env=env)


def test_predict_simulate_and_monitor_from_the_command_line(champion_export, tmp_path):
    rows = tmp_path / "rows.csv"
    holdout(champion_export).drop(columns="label").head(4).assign(
        request_id=["w", "x", "y", "z"]).to_csv(rows, index=False)
    done = run_cli("predict", "--scope", "tiny", "--input", str(rows), models_dir=champion_export)
    assert done.returncode == 0, done.stderr
    out = pd.read_csv(__import__("io").StringIO(done.stdout))
    assert list(out["request_id"]) == ["w", "x", "y", "z"] and set(out["served_by"]) == {
        "logreg"}
    assert logged_ids(champion_export) == list("wxyz")
    done = run_cli("simulate", "--scope", "tiny", "--requests", "300", "--drift", "f1:2",
                   models_dir=champion_export)
    assert done.returncode == 0, done.stderr
    assert "300 requests served and logged" in done.stdout and "feature f1 drifted" in done.stdout
    done = run_cli("monitor", "--scope", "tiny", models_dir=champion_export)
    assert done.returncode == 0, done.stderr
    assert "recommendation: wait (300 outcomes < 1,000 needed)" in done.stdout
    assert "f1" in done.stdout.splitlines()[2] and "DRIFT" in done.stdout.splitlines()[2]
    for bad, message in ((["--drift", "f1"], "expected FEATURE:SHIFT"),
                         (["--drift", "nope:1"], "has no feature 'nope'")):
        done = run_cli("simulate", "--scope", "tiny", "--requests", "10", *bad,
                       models_dir=champion_export)
        assert done.returncode == 2 and message in done.stderr
        assert "Traceback" not in done.stderr


def test_history_lists_deployment_decisions(champion_export, store):
    deploy(champion_export, "tiny", store, "canary", canary="bayes",
                     canary_share=0.05, actor="ana", reason="a small start")
    done = run_cli("history", "--scope", "tiny", models_dir=champion_export)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "deployment: champion mode  by ana  shadow" in lines[-2]
    assert "deployment: canary mode canary bayes at 5%  by ana  a small start" in lines[-1]


def test_history_tells_moves_and_deployment_changes_in_time_order(champion_export, store):
    deploy(champion_export, "tiny", store, "canary", canary="bayes",
                     canary_share=0.05, actor="ana", reason="a small start")
    change_stage(champion_export, "tiny", store, "bayes", "champion", actor="ana",
                           reason="won", override=True)
    done = run_cli("history", "--scope", "tiny", models_dir=champion_export)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "deployment: canary mode canary bayes at 5%" in lines[-4]
    assert "logreg: champion -> archived" in lines[-3]
    assert "bayes: production -> champion" in lines[-2]
    assert "deployment: champion mode  by ana  canary bayes became champion: won" in lines[-1]
    stamps = [line[:19] for line in lines]
    assert stamps == sorted(stamps)


def test_simulate_refuses_a_span_of_no_days(champion_export):
    for days in ("0", "-2"):
        done = run_cli("simulate", "--scope", "tiny", "--requests", "10", "--days", days,
                       models_dir=champion_export)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [done.stderr.strip()]
        assert f"--days {days}: must be more than 0" in done.stderr
    assert not log_path(champion_export, "tiny").exists()


def test_a_damaged_log_is_one_clear_message_in_every_command(champion_export, tmp_path):
    path = log_path(champion_export, "tiny")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).bytes(4096))  # not a database
    rows = tmp_path / "rows.csv"
    holdout(champion_export).drop(columns="label").head(2).assign(
        request_id=["a", "b"]).to_csv(rows, index=False)
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\na,1\n")
    for command in (["predict", "--input", str(rows)], ["outcomes", "--file", str(labels)],
                    ["simulate", "--requests", "10"], ["monitor"]):
        done = run_cli(command[0], "--scope", "tiny", *command[1:], models_dir=champion_export)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        message = done.stderr.strip()
        assert len(message.splitlines()) == 1 and "Traceback" not in message, message
        assert f"{path}: the prediction log cannot be used" in message, message


def test_the_newest_batch_decides_the_mode_even_when_replayed_with_older_times(
        champion_export, store):
    root = champion_export
    simulate(root, "tiny", 400, seed=4, days=2)  # champion mode, now
    deploy(root, "tiny", store, "canary", canary="bayes", canary_share=0.05,
                     actor="ana", reason="start")
    simulate(root, "tiny", 400, seed=5, days=2,  # canary, logged last, times older
                       end=datetime.now(UTC) - pd.Timedelta(days=30))
    live = load_live(root, "tiny")
    assert live.requests["mode"].iloc[-1] == "champion"  # the latest time is a shadow request
    cards = read_cards(sorted((root / "advanced" / "model_cards").glob("*.json"))[-1])
    advice = recommend(live, cards, "multiclass")
    assert (advice.mode, advice.subject, advice.share) == ("canary", "bayes", 0.05)
    assert advice.figures.outcomes == 400


def test_a_holdout_feature_without_any_value_counts_live_values_as_other():
    from promotion.monitoring._drift import bin_shares, drift_table, feature_stats

    stats = feature_stats("tiny", pd.DataFrame({"f0": [np.nan, np.nan, np.nan],
                                                "f1": [1.0, 2.0, 3.0]}), datetime.now(UTC))
    empty = stats.features[0]
    assert empty.edges == [] and empty.expected == [0.0, 1.0]  # "other", missing
    live = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [np.nan, 1.0]])
    np.testing.assert_allclose(bin_shares(empty, live[:, 0]), [0.75, 0.25])
    table = drift_table(stats, np.tile(live, (25, 1)), ["f0", "f1"])  # 100 rows: a verdict
    assert table["feature"].tolist() == ["f0", "f1"]
    assert table["flagged"].tolist() == [True, False]


def test_generated_request_ids_are_random_and_unique_across_batches(champion_export):
    engine = PredictionEngine.load("tiny", champion_export, log=False)
    frame = holdout(champion_export).drop(columns="label")
    first, second = engine.serve(frame).request_ids, engine.serve(frame).request_ids
    assert len(first) == len(frame) and all(re.fullmatch("[0-9a-f]{32}", i) for i in first)
    assert len(set(first) | set(second)) == 2 * len(frame)


def test_crowning_the_canary_is_one_decision(champion_export, store):
    """Applying 'make the canary the champion' records the move and the end of the canary in
    one transaction (the lifecycle's follow-up), exports it, and refuses to apply it twice."""
    root = champion_export
    change_stage(root, "tiny", store, "tree_d3", "champion", actor="ana", override=True,
                 reason="a weaker champion, so the canary passes the gates")
    move(root, store, "logreg", "production")  # archived when it was replaced as champion
    for share in (0.10, 0.25, 0.50, 1.00):
        deploy(root, "tiny", store, "canary", canary="logreg", canary_share=share,
               actor="ana", reason=f"step to {share:.0%}")
    before = (len(store.history("tiny")), len(store.deployments("tiny")))
    advice = Recommendation("increase", "enough evidence", "logreg", "tree_d3", "canary", 1.0,
                            plan="make logreg the champion", step=Crown("logreg"))
    apply_recommendation(root, "tiny", store, advice, actor="ops", reason="live data")
    moves, deployments = store.history("tiny")[before[0]:], store.deployments("tiny")[before[1]:]
    assert [(m.model_name, m.to_stage) for m in moves] == [("tree_d3", "archived"),
                                                           ("logreg", "champion")]
    assert [(d.mode, d.canary_model) for d in deployments] == [("champion", None)]
    assert deployments[0].at == moves[-1].at  # decided in the same transaction
    engine = PredictionEngine.load("tiny", root, log=False)
    assert (engine.mode, engine.champion, engine.canary) == ("champion", "logreg", None)
    # Applied once: the allocation it was made for is gone, so it is refused, not repeated.
    with pytest.raises(InvalidInputError, match="no longer current .* now champion mode"):
        apply_recommendation(root, "tiny", store, advice, actor="ops", reason="again")
    assert len(store.history("tiny")) == before[0] + 2
    assert len(store.deployments("tiny")) == before[1] + 1


def test_the_recommendation_is_for_the_allocation_in_force(champion_export, store):
    root = champion_export
    simulate(root, "tiny", 400, seed=4, days=2)  # served in champion mode
    deploy(root, "tiny", store, "canary", canary="bayes", canary_share=0.05,
           actor="ana", reason="start")
    cards = read_cards(sorted((root / "advanced" / "model_cards").glob("*.json"))[-1])
    advice = recommend(load_live(root, "tiny"), cards, "multiclass")
    # Nothing was served at 5% yet: the champion-mode requests say nothing about it.
    assert (advice.action, advice.mode, advice.subject, advice.share) == (
        "wait", "canary", "bayes", 0.05)
    assert "no request served at the allocation in force" in advice.rule
    assert advice.step is None
