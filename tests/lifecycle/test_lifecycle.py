"""Stages, reasons, gates, rollback and the history, including under concurrency."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from factories import make_data, make_scope, write_model
from sklearn.linear_model import LogisticRegression
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError, DBAPIError

from promotion import InvalidInputError, InvalidTransitionError, ModelNotFoundError
from promotion.contract import cards_files
from promotion.engine import PredictionEngine
from promotion.evaluation import ModelEvaluation, ScopeEvaluation
from promotion.lifecycle import (
    demote,
    deployment_of,
    next_canary_share,
    rollback,
    rollback_plan,
    serving_after,
    set_deployment,
    subscribe,
)
from promotion.lifecycle._transitions import apply_move
from promotion.scopes import GateSettings, Scope, file_sha256, load_scope
from promotion.scoring import gate_report, rank_models
from promotion.scoring._gates import gate_reports
from promotion.scoring._gates import tested_together as corrected_over
from promotion.store import open_store
from promotion.usecases import change_stage, demote_model, deploy, export_scope, scope_state
from promotion.vocabulary import PROMOTED_STAGES, stage_of

ROOT = Path(__file__).resolve().parents[2]
STORE_BACKENDS = ("sqlite", "postgresql")


def move(root, store, model, stage, reason="because", override=False):
    return change_stage(root, "tiny", store, model, stage, actor="ana", reason=reason,
                                  override=override)


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_reason_is_required(models_root, tiny_scope, store, reason):
    with pytest.raises(InvalidTransitionError, match="a reason is required"):
        move(models_root, store, "logreg", "production", reason=reason)
    with pytest.raises(InvalidTransitionError, match="a reason is required"), \
            store.decision("tiny") as tx:
        tx.record_move("logreg", "development", "production", actor="a", reason=reason,
                       model_sha256=None)
    assert store.history("tiny") == []


def test_the_cli_requires_a_reason(models_root, tiny_scope):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "promotion", "promote", "--scope", "tiny",
                           "--model", "logreg", "--models-dir", str(models_root)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "--reason" in done.stderr
    done = subprocess.run([sys.executable, "-m", "promotion", "promote", "--scope", "tiny",
                           "--model", "logreg", "--reason", " ", "--models-dir",
                           str(models_root)], capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "a reason is required" in done.stderr
    assert "Traceback" not in done.stderr


def test_champion_only_from_production_and_one_at_a_time(models_root, tiny_scope, store):
    with pytest.raises(InvalidTransitionError, match="promote it to production first"):
        move(models_root, store, "logreg", "champion")
    move(models_root, store, "logreg", "production")
    move(models_root, store, "logreg", "champion")
    move(models_root, store, "bayes", "production")
    move(models_root, store, "bayes", "champion", override=True)
    stages = {n: r.stage for n, r in store.stages("tiny").items()}
    assert stages == {"logreg": "archived", "bayes": "champion"}
    # Archived models can be promoted again.
    assert move(models_root, store, "logreg", "production").from_stage == "archived"


def test_promote_and_demote_are_idempotent(models_root, tiny_scope, store):
    assert move(models_root, store, "logreg", "production") is not None
    assert move(models_root, store, "logreg", "production") is None
    state = scope_state(models_root, "tiny", store)
    args = (store, state.scope, state.evaluation, state.board, "logreg")
    assert demote(*args, actor="a", reason="r") is not None
    assert demote(*args, actor="a", reason="r") is None
    assert len(store.history("tiny")) == 2


def test_rollback_restores_the_previous_champion(models_root, tiny_scope, store):
    scope = load_scope(models_root, "tiny")
    with pytest.raises(InvalidTransitionError, match="no previous champion"):
        rollback(store, scope, actor="a", reason="r")
    for name in ("logreg", "bayes", "tree_d3"):
        move(models_root, store, name, "production")
    move(models_root, store, "logreg", "champion")
    move(models_root, store, "bayes", "champion", override=True)
    move(models_root, store, "tree_d3", "champion", override=True)
    before = {n: r.stage for n, r in store.stages("tiny").items()}
    plan = rollback_plan(store, scope)
    assert plan.describe() == "bayes becomes champion again; tree_d3 goes back to production"
    moved = rollback(store, scope, actor="ops", reason="live accuracy dropped")
    assert (moved.model_name, moved.action) == ("bayes", "rollback")
    after = {n: r.stage for n, r in store.stages("tiny").items()}
    # The state before tree_d3 was crowned: bayes champion, tree_d3 in production.
    assert after == before | {"bayes": "champion", "tree_d3": "production"}
    last = store.history("tiny")[-2:]
    assert [(t.model_name, t.from_stage, t.to_stage) for t in last] == [
        ("tree_d3", "champion", "production"), ("bayes", "archived", "champion")]
    # Rolling back the rollback restores the state before it, again by the same rule.
    assert rollback_plan(store, scope).describe() == ("tree_d3 becomes champion again; bayes "
                                                      "goes back to archived")


def test_rollback_refuses_a_changed_file(models_root, tiny_scope, store):
    for name in ("logreg", "bayes"):
        move(models_root, store, name, "production")
    move(models_root, store, "logreg", "champion")
    move(models_root, store, "bayes", "champion", override=True)
    X, y = make_data("multiclass", 600)
    write_model(tiny_scope, "logreg", LogisticRegression(C=0.05, max_iter=300).fit(X, y),
                model_type="logistic_regression", group="linear")
    with pytest.raises(InvalidTransitionError,
                       match="no longer the version that was champion"):
        rollback(store, load_scope(models_root, "tiny"), actor="a",
                           reason="r")


def test_a_retrained_model_is_a_new_version(models_root, tiny_scope, store):
    first = move(models_root, store, "logreg", "production")
    X, y = make_data("multiclass", 600)
    write_model(tiny_scope, "logreg", LogisticRegression(C=0.05, max_iter=300).fit(X, y),
                model_type="logistic_regression", group="linear")
    assert store.stages("tiny")["logreg"].model_sha256 == first.model_sha256
    move(models_root, store, "logreg", "archived")
    again = move(models_root, store, "logreg", "production")
    assert again.model_sha256 != first.model_sha256
    assert again.model_sha256 == file_sha256(tiny_scope / "logreg" / "model.joblib")
    assert store.history("tiny")[0].model_sha256 == first.model_sha256


def test_the_history_is_append_only_in_the_database(models_root, tiny_scope, store):
    move(models_root, store, "logreg", "production")
    for statement in ("UPDATE transition SET reason = 'edited'", "DELETE FROM transition"):
        with pytest.raises(DatabaseError, match="append-only"), store._session() as conn:
            conn.execute(text(statement))
    assert store.history("tiny")[0].reason == "because"


def test_subscribers_hear_of_committed_moves_only(models_root, tiny_scope, store):
    heard = []

    def listen(committed) -> None:
        # Called after the commit: the store's other connections already see the moves.
        heard.append(([(t.model_name, t.to_stage) for t in committed.moves],
                      committed.store.stages("tiny")[committed.moves[-1].model_name].stage))

    unsubscribe = subscribe(listen)
    try:
        move(models_root, store, "logreg", "production")
        move(models_root, store, "logreg", "production")  # already there: nothing decided
        move(models_root, store, "bayes", "production")
        move(models_root, store, "logreg", "champion")
        move(models_root, store, "bayes", "champion", override=True)
        with pytest.raises(InvalidTransitionError, match="only from production"):
            move(models_root, store, "tree_d3", "champion")
    finally:
        unsubscribe()
    assert heard == [
        ([("logreg", "production")], "production"),
        ([("bayes", "production")], "production"),
        ([("logreg", "champion")], "champion"),
        ([("logreg", "archived"), ("bayes", "champion")], "champion"),
    ]


def test_a_failing_subscriber_neither_undoes_nor_hides_a_decision(models_root, tiny_scope,
                                                                   store, caplog):
    def broken(committed) -> None:
        raise RuntimeError("subscriber down")

    heard = []
    unsubscribe = [subscribe(broken), subscribe(lambda committed: heard.append(committed.moves))]
    try:
        moved = move(models_root, store, "logreg", "production")
    finally:
        for stop in unsubscribe:
            stop()
    assert moved is not None and store.stages("tiny")["logreg"].stage == "production"
    assert heard == [(moved,)]  # the next subscriber still heard of it
    [logged] = [r for r in caplog.records if r.exc_info]
    assert "subscriber down" in str(logged.exc_info[1]) and "'tiny'" in logged.getMessage()


# --- gate arithmetic on constructed evidence ----------------------------------------------

def _model(name: str, accuracy_reps: np.ndarray, latency: float = 5.0,
           size: float = 1.0, model_file: str = "model.joblib") -> ModelEvaluation:
    metrics = {"accuracy": float(accuracy_reps.mean()), "latency_p95_ms": latency,
               "artifact_size_mb": size, "load_memory_mb": size, "error_rate": 0.0}
    return ModelEvaluation(name, "x", "tree", "ok", None, "0" * 64, None, metrics,
                           {"accuracy": (0.0, 1.0)}, ("accuracy",), accuracy_reps[:, None],
                           model_file=model_file)


@pytest.fixture
def constructed():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, 1000)  # shared resamples: paired differences
    champion = 0.80 + noise
    models = [
        _model("champion", champion),
        _model("clearly_better", champion + 0.05),
        _model("tied", champion + rng.normal(0, 0.01, 1000)),
        _model("worse", champion - 0.05),
        _model("slower", champion + 0.05, latency=900.0),
        _model("heavier", champion + 0.05, size=3.0),
        _model("heavier_by_bytes", champion + 0.05, size=1.9),  # 1.9x, but 0.9 MB more
        _model("heavier_as_skops", champion + 0.05, size=3.0, model_file="model.skops"),
    ]
    chance = {"accuracy": 0.5}
    evaluation = ScopeEvaluation("s", "multiclass", [0, 1], 1000, "0" * 64, chance, models,
                                 0, 0.0)
    board = rank_models(evaluation, {"accuracy": 1.0})
    return evaluation, board


@pytest.mark.parametrize(("name", "passes", "fails"), [
    ("clearly_better", True, set()),
    ("tied", False, {"improvement", "significance"}),
    ("worse", False, {"improvement", "significance"}),
    ("slower", False, {"latency_p95"}),
    ("heavier", False, {"resources"}),
    ("heavier_by_bytes", True, set()),
    ("heavier_as_skops", True, set()),
])
def test_gates_on_constructed_evidence(constructed, name, passes, fails):
    evaluation, board = constructed
    report = gate_report(name, "champion", board, evaluation,
                                   GateSettings(), "champion")
    assert report.passed is passes
    assert {g.name for g in report.failed} == fails
    significance = next(g for g in report.gates if g.name == "significance")
    assert significance.effect == pytest.approx(
        board.row(name).composite_score - board.row("champion").composite_score)


@pytest.mark.parametrize(("name", "detail"), [
    ("heavier", "artifact_size_mb 3.00× the champion's, +2.00 MB (> 1.2×)"),
    ("heavier_by_bytes", "artifact_size_mb +0.90 MB vs the champion's (within 1 MB)"),
    ("heavier_as_skops", "not compared: model.skops vs the champion's model.joblib "
                         "(different formats)"),
])
def test_the_resources_gate_says_what_it_compared(constructed, name, detail):
    evaluation, board = constructed
    report = gate_report(name, "champion", board, evaluation, GateSettings(), "champion")
    assert next(g for g in report.gates if g.name == "resources").detail == detail


def test_the_resources_gate_ignores_a_format_change_of_the_same_model(models_root, store):
    """A skops file of the champion's very estimator: larger on disk and in memory, and no
    heavier a model. Real joblib files some hundred KB apart are noise under the floor."""
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    scope_dir = make_scope(models_root, "tiny", models=("logreg",))
    X, y = make_data()
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    write_model(scope_dir, "forest", forest, model_type="rf", group="tree")
    write_model(scope_dir, "forest_skops", forest, model_type="rf", group="tree",
                meta_extra={"model_file": "model.skops"})
    (scope_dir / "forest_skops" / "model.joblib").unlink()
    sio.dump(forest, scope_dir / "forest_skops" / "model.skops")
    scope = load_scope(models_root, "tiny")
    state = scope_state(models_root, "tiny", store, n_jobs=1)
    board, evaluation = state.board, state.evaluation
    sizes = {n: board.row(n).metrics["artifact_size_mb"] for n in ("forest", "forest_skops")}
    assert sizes["forest_skops"] > 1.2 * sizes["forest"]  # what the gate used to block on
    report = gate_report("forest_skops", "champion", board, evaluation,
                         scope.config.gates, "forest")
    resources = next(g for g in report.gates if g.name == "resources")
    assert resources.passed and "different formats" in resources.detail
    # Many times the small champion's size, by less than a megabyte: noise, not cost.
    assert sizes["forest"] > 10 * board.row("logreg").metrics["artifact_size_mb"]
    report = gate_report("forest", "champion", board, evaluation, scope.config.gates, "logreg")
    resources = next(g for g in report.gates if g.name == "resources")
    assert resources.passed and "(within 1 MB)" in resources.detail


def test_several_candidates_are_holm_corrected(constructed):
    """One rule: a candidate's significance is corrected over every model tested against the
    same baseline, whether it is asked about alone or with the others."""
    evaluation, board = constructed
    family = corrected_over(board, "champion")
    assert len(family) > 3

    def significance(reports):
        return [next(g.p_value for g in r.gates if g.name == "significance") for r in reports]

    together = significance(gate_reports(family, "champion", board, evaluation,
                                         GateSettings(), "champion"))
    alone = significance([gate_report(n, "champion", board, evaluation, GateSettings(),
                                      "champion") for n in family])
    uncorrected = significance([gate_reports([n], "champion", board, evaluation,
                                             GateSettings(), "champion")[0] for n in family])
    assert alone == pytest.approx(together)
    assert all(t >= u for t, u in zip(together, uncorrected, strict=True))
    assert any(t > u for t, u in zip(together, uncorrected, strict=True))
    assert max(together) <= 1


def test_without_a_champion_the_baseline_is_chance(constructed):
    evaluation, board = constructed
    report = gate_report("worse", "champion", board, evaluation,
                                   GateSettings(), None)
    assert report.baseline == "chance level"
    assert report.passed


def test_no_lottery_model_passes_the_significance_gate(constructed):
    evaluation, _ = constructed
    flat = [replace(m, replicates=np.clip(np.random.default_rng(i).normal(0.5, 0.01, (1000, 1)),
                                          0, 1), metrics={**m.metrics, "accuracy": 0.5})
            for i, m in enumerate(evaluation.models)]
    evaluation = replace(evaluation, models=flat)
    board = rank_models(evaluation, {"accuracy": 1.0})
    reports = gate_reports([m.model_name for m in flat], "champion", board, evaluation,
                           GateSettings(), None)
    for report in reports:
        assert not next(g for g in report.gates if g.name == "significance").passed


# --- concurrency --------------------------------------------------------------------------

@pytest.mark.slow
def test_concurrent_decisions_and_exports_lose_nothing(models_root, tiny_scope, store, store_url,
                                                      monkeypatch):
    """Processes promoting, demoting, crowning and exporting one scope at once."""
    monkeypatch.setenv("PROMOTION_DB_URL", store_url)  # the worker processes' store
    scope_state(models_root, "tiny", store)  # evaluate once, cached for the workers
    workers, operations = 6, 50
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_run_worker, [(str(models_root), seed, operations)
                                              for seed in range(workers)]))
    done = [(seed, *op) for seed, result in enumerate(results) for op in result]
    assert len(done) == workers * operations
    moves = [(m, target, f"worker-{seed}") for seed, m, target, changed, _ in done
             if changed and target != "export"]
    history = store.history("tiny")
    # No lost update: every move a worker was told it made is in the history, once, and
    # nothing else is but the archivings a new champion causes.
    crowning = [t for t in history if t.reason.startswith("replaced as champion")]
    assert Counter(moves) == Counter((t.model_name, t.to_stage, t.actor) for t in history
                                     if t not in crowning)
    # Replaying the history from nothing gives exactly the stages stored now.
    replayed: dict[str, str] = {}
    for entry in history:
        assert replayed.get(entry.model_name, "development") == entry.from_stage
        replayed[entry.model_name] = entry.to_stage
    assert replayed == {n: r.stage for n, r in store.stages("tiny").items()}
    assert sum(stage == "champion" for stage in replayed.values()) <= 1
    # Every export either wrote its files or was refused for a reason it names: nothing was
    # promoted then, or a decision landed while it was built. Under this much contention that
    # can be every one of them, so one more export runs once the workers are done (after a
    # promotion when the random moves left nothing promoted).
    exports = [(why, f) for _, why, target, _, f in done if target == "export"]
    assert exports, "no export was attempted: the test proves nothing about exports"
    assert all(bool(f) != (why in {"empty", "raced"}) for why, f in exports)
    exported = {Path(f) for _, f in exports if f}
    assert set(cards_files(models_root, "tiny")) == exported  # nothing else where it looks
    if not any(stage in PROMOTED_STAGES for stage in replayed.values()):
        move(models_root, store, next(iter(replayed)), "production", override=True)
    export_scope(models_root, "tiny", store, "score")
    # Complete files that load, those of the closing steps too.
    exported = set(cards_files(models_root, "tiny"))
    for path in exported:
        engine = PredictionEngine.load("tiny", models_root, cards_file=path)
        assert math.fsum(c.ensemble_weight for c in engine.cards) == pytest.approx(1, abs=1e-12)
        assert sum(c.is_champion for c in engine.cards) <= 1
    refused = Counter(why for why, f in exports if not f)
    print(f"concurrency: {workers} processes, {len(done)} operations ({len(moves)} moves, "
          f"{len(exports)} exports: {len(exported)} written, {refused['raced']} refused as "
          f"raced, {refused['empty']} with nothing promoted), {len(history)} history entries, "
          f"nothing lost")


def _run_worker(args: tuple[str, int, int]) -> list[tuple[str, str, bool, str | None]]:
    from workers import random_decisions

    models_dir, seed, operations = args
    return random_decisions(models_dir, "tiny", seed, operations, export_share=0.2)


def test_a_promoted_model_whose_folder_is_gone_can_still_be_archived(models_root, tiny_scope,
                                                                     store):
    import shutil

    move(models_root, store, "bayes", "production")
    shutil.rmtree(tiny_scope / "bayes")
    with pytest.raises(InvalidInputError, match="promoted model 'bayes'"):
        export_scope(models_root, "tiny", store)
    moved = move(models_root, store, "bayes", "archived", reason="folder deleted")
    assert (moved.from_stage, moved.to_stage) == ("production", "archived")
    with pytest.raises(ModelNotFoundError):
        move(models_root, store, "bayes", "production")


def test_rollback_to_a_missing_file_is_one_clear_message(models_root, tiny_scope, store):
    for name in ("logreg", "bayes"):
        move(models_root, store, name, "production")
    move(models_root, store, "logreg", "champion")
    move(models_root, store, "bayes", "champion", override=True)
    (tiny_scope / "logreg" / "model.joblib").unlink()
    with pytest.raises(InvalidInputError, match="tiny/logreg/model.joblib: cannot be"):
        rollback(store, load_scope(models_root, "tiny"), actor="a",
                           reason="r")


# --- moves that change what is served -----------------------------------------------------

def canary_running(models_root, store, canary: str = "bayes") -> Scope:
    """logreg champion, tree_d3 and bayes in production, ``canary`` at 10%, exported."""
    for name in ("logreg", "tree_d3", "bayes"):
        move(models_root, store, name, "production")
    move(models_root, store, "logreg", "champion")
    deploy(models_root, "tiny", store, "canary", canary=canary, canary_share=0.10,
                     actor="ana", reason="start the canary")
    return load_scope(models_root, "tiny")


def served(models_root, store) -> tuple[str, str | None, dict[str, str]]:
    """Export again and read what the engine would serve: mode, canary, roles."""
    export_scope(models_root, "tiny", store)
    engine = PredictionEngine.load("tiny", models_root, log=False)
    return engine.mode, engine.canary, {c.model_name: c.role for c in engine.cards}


def test_the_canary_made_champion_ends_the_canary(models_root, tiny_scope, store):
    scope = canary_running(models_root, store)
    move(models_root, store, "bayes", "champion", reason="won on live data", override=True)
    decided = deployment_of(store, scope)
    assert (decided.mode, decided.canary_model, decided.canary_share) == ("champion", None,
                                                                          None)
    assert (decided.actor, decided.reason) == ("ana", "canary bayes became champion: won on "
                                                      "live data")
    assert served(models_root, store) == ("champion", None, {"bayes": "champion",
                                                      "tree_d3": "challenger"})


def test_the_canary_leaving_production_ends_the_canary(models_root, tiny_scope, store):
    scope = canary_running(models_root, store, canary="tree_d3")
    move(models_root, store, "tree_d3", "archived", reason="too slow")
    decided = deployment_of(store, scope)
    assert (decided.mode, decided.canary_model) == ("champion", None)
    assert decided.reason == "canary tree_d3 left production: too slow"
    assert served(models_root, store) == ("champion", None, {"logreg": "champion",
                                                      "bayes": "challenger"})
    # Another model's move leaves the deployment alone.
    before = len(store.deployments("tiny"))
    move(models_root, store, "bayes", "candidate", reason="back to review")
    assert len(store.deployments("tiny")) == before


@pytest.mark.parametrize("mode", ["champion", "canary"])
def test_the_champion_leaving_production_falls_back_to_the_ensemble(models_root, tiny_scope,
                                                                    store, mode):
    scope = canary_running(models_root, store)
    if mode == "champion":
        set_deployment(store, scope, "champion", actor="ana", reason="shadow only")
    state = scope_state(models_root, "tiny", store)
    demote(store, state.scope, state.evaluation, state.board, "logreg",
                     actor="ops", reason="bad data source")
    decided = deployment_of(store, scope)
    assert (decided.mode, decided.canary_model, decided.actor) == ("ensemble", None, "ops")
    assert decided.reason == "champion logreg left production: bad data source"
    assert served(models_root, store) == ("ensemble", None, {"tree_d3": "member",
                                                             "bayes": "member"})


def test_demoting_the_served_champion_exports_again(models_root, tiny_scope, store):
    scope = canary_running(models_root, store)
    assert serving_after(store, scope, [("logreg", "archived")]) == (
        "ensemble of 2 promoted model(s): bayes, tree_d3")
    demote_model(models_root, "tiny", store, "logreg", actor="ops", reason="bad data source")
    engine = PredictionEngine.load("tiny", models_root, log=False)  # no export by hand
    assert (engine.mode, {c.model_name for c in engine.cards}) == ("ensemble",
                                                                   {"bayes", "tree_d3"})
    assert set(engine.serve(make_data("multiclass", 40, seed=3)[0]).served_by) == {"ensemble"}


def test_a_served_scope_keeps_one_promoted_model(models_root, tiny_scope, store):
    move(models_root, store, "logreg", "production")
    export_scope(models_root, "tiny", store)
    with pytest.raises(InvalidTransitionError, match="last promoted model"):
        move(models_root, store, "logreg", "archived")
    assert stage_of(store.stages("tiny"), "logreg") == "production"


def test_a_rollback_keeps_champion_mode_serving(models_root, tiny_scope, store):
    scope = canary_running(models_root, store, canary="tree_d3")
    move(models_root, store, "bayes", "champion", reason="try bayes", override=True)
    rollback(store, scope, actor="ops", reason="bayes slipped")
    assert deployment_of(store, scope).mode == "canary"  # tree_d3 still a canary
    # bayes is back in production, where it was before it was crowned: a challenger again.
    assert served(models_root, store) == ("canary", "tree_d3", {"logreg": "champion",
                                                         "tree_d3": "canary",
                                                         "bayes": "challenger"})


def test_a_move_and_its_deployment_follow_up_commit_together(models_root, tiny_scope, store,
                                                            backend):
    scope = canary_running(models_root, store, canary="tree_d3")
    moved = move(models_root, store, "tree_d3", "archived", reason="too slow")
    followed = store.deployments("tiny")[-1]
    assert followed.reason == "canary tree_d3 left production: too slow"
    assert followed.at == moved.at  # recorded in the move's own decision
    # When the follow-up cannot be recorded, the move is not kept either.
    _freeze_deployments(store, backend)
    before = (store.stages("tiny"), store.history("tiny"))
    state = scope_state(models_root, "tiny", store)
    with pytest.raises(DBAPIError, match="deployments are frozen"):
        demote(store, state.scope, state.evaluation, state.board, "logreg", actor="ops",
               reason="bad data source")
    assert (store.stages("tiny"), store.history("tiny")) == before
    assert deployment_of(store, scope) == followed


def _freeze_deployments(store, backend: str) -> None:
    """A trigger that refuses every new deployment record (the database's own refusal)."""
    if backend == "sqlite":
        statements = ["CREATE TRIGGER frozen BEFORE INSERT ON deployment BEGIN "
                      "SELECT RAISE(ABORT, 'deployments are frozen'); END"]
    else:
        statements = ["CREATE FUNCTION frozen() RETURNS trigger LANGUAGE plpgsql AS "
                      "$$ BEGIN RAISE EXCEPTION 'deployments are frozen'; END $$",
                      "CREATE TRIGGER frozen BEFORE INSERT ON deployment "
                      "FOR EACH ROW EXECUTE FUNCTION frozen()"]
    with store._session() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_a_deployment_is_decided_on_the_state_inside_its_decision(models_root, tiny_scope,
                                                                  store, store_url):
    """A deployment change checks the stages and the deployment it reads under the scope's
    lock: a move under way is waited for and seen, never decided around."""
    scope = canary_running(models_root, store)  # bayes the canary at 10%
    newest = store.deployments("tiny")[-1].id
    holding, deciding, release = (threading.Event() for _ in range(3))
    outcome: list[object] = []

    def archive_the_canary() -> None:
        with store.decision("tiny") as tx:
            apply_move(tx, "bayes", "archived", actor="ops", reason="broken",
                       model_sha256=None)
            holding.set()
            release.wait(60)

    def step_the_canary() -> None:
        other = open_store(models_root, store_url)
        try:
            deciding.set()
            outcome.append(set_deployment(other, scope, "canary", canary="bayes",
                                          canary_share=0.25, actor="a", reason="next step"))
        except InvalidTransitionError as err:
            outcome.append(err)
        finally:
            other.close()

    mover = threading.Thread(target=archive_the_canary)
    mover.start()
    assert holding.wait(60)
    stepper = threading.Thread(target=step_the_canary)
    stepper.start()
    assert deciding.wait(60)
    release.set()
    mover.join(60)
    stepper.join(60)
    [refused] = outcome
    assert isinstance(refused, InvalidTransitionError)
    assert "'bayes' is archived; a canary must be a production model" in str(refused)
    assert store.deployments("tiny")[-1].id == newest  # nothing written


def test_deciders_stepping_a_canary_at_once_never_skip_or_repeat_a_step(models_root,
                                                                         tiny_scope, store,
                                                                         store_url):
    scope = canary_running(models_root, store)  # bayes the canary at 10%
    stores = [open_store(models_root, store_url) for _ in range(6)]

    def step(pair):
        other, share = pair
        try:
            return set_deployment(other, scope, "canary", canary="bayes", canary_share=share,
                                  actor="a", reason=f"to {share:.0%}")
        except InvalidTransitionError as err:
            assert "skips a step" in str(err)
            return None

    with ThreadPoolExecutor(len(stores)) as pool:
        done = list(pool.map(step, zip(stores, [0.25, 0.5] * 3, strict=True)))
    for other in stores:
        other.close()
    shares = [d.canary_share for d in store.deployments("tiny")]
    assert shares[:2] == [0.10, 0.25]  # someone took the one step allowed from 10%
    for before, after in itertools.pairwise(shares):
        assert after != before  # each record changed something
        assert after < before or after == next_canary_share(before)  # up one step at a time
    assert sum(d is not None for d in done) == len(shares) - 1
