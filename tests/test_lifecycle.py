"""Stages, reasons, gates, rollback and the history, including under concurrency."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from factories import make_data, write_model
from sklearn.linear_model import LogisticRegression
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

import promotion
from promotion._cards import cards_files
from promotion._evaluation import ModelEvaluation, ScopeEvaluation
from promotion._gates import gate_reports
from promotion.engine import PredictionEngine

ROOT = Path(__file__).resolve().parent.parent
STORE_BACKENDS = ("sqlite", "postgresql")


def move(root, store, model, stage, reason="because", override=False):
    return promotion.change_stage(root, "tiny", store, model, stage, actor="ana", reason=reason,
                                  override=override)


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_reason_is_required(models_root, tiny_scope, store, reason):
    with pytest.raises(promotion.InvalidTransitionError, match="a reason is required"):
        move(models_root, store, "logreg", "production", reason=reason)
    with pytest.raises(promotion.InvalidTransitionError, match="a reason is required"):
        store.transition("tiny", "logreg", "production", actor="a", reason=reason,
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
    with pytest.raises(promotion.InvalidTransitionError, match="promote it to production first"):
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
    state = promotion.scope_state(models_root, "tiny", store)
    args = (store, state.scope, state.evaluation, state.board, "logreg")
    assert promotion.demote(*args, actor="a", reason="r") is not None
    assert promotion.demote(*args, actor="a", reason="r") is None
    assert len(store.history("tiny")) == 2


def test_rollback_restores_the_previous_champion(models_root, tiny_scope, store):
    scope = promotion.load_scope(models_root, "tiny")
    with pytest.raises(promotion.InvalidTransitionError, match="no previous champion"):
        promotion.rollback(store, scope, actor="a", reason="r")
    for name in ("logreg", "bayes", "tree_d3"):
        move(models_root, store, name, "production")
    move(models_root, store, "logreg", "champion")
    move(models_root, store, "bayes", "champion", override=True)
    move(models_root, store, "tree_d3", "champion", override=True)
    moved = promotion.rollback(store, scope, actor="ops", reason="live accuracy dropped")
    assert (moved.model_name, moved.action) == ("bayes", "rollback")
    assert promotion.champion_of(store.stages("tiny")) == "bayes"
    last = store.history("tiny")[-2:]
    assert [(t.model_name, t.from_stage, t.to_stage) for t in last] == [
        ("tree_d3", "champion", "archived"), ("bayes", "archived", "champion")]


def test_rollback_refuses_a_changed_file(models_root, tiny_scope, store):
    for name in ("logreg", "bayes"):
        move(models_root, store, name, "production")
    move(models_root, store, "logreg", "champion")
    move(models_root, store, "bayes", "champion", override=True)
    X, y = make_data("multiclass", 600)
    write_model(tiny_scope, "logreg", LogisticRegression(C=0.05, max_iter=300).fit(X, y),
                model_type="logistic_regression", group="linear")
    with pytest.raises(promotion.InvalidTransitionError,
                       match="no longer the version that was champion"):
        promotion.rollback(store, promotion.load_scope(models_root, "tiny"), actor="a",
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
    assert again.model_sha256 == promotion.file_sha256(tiny_scope / "logreg" / "model.joblib")
    assert store.history("tiny")[0].model_sha256 == first.model_sha256


def test_the_history_is_append_only_in_the_database(models_root, tiny_scope, store):
    move(models_root, store, "logreg", "production")
    for statement in ("UPDATE transition SET reason = 'edited'", "DELETE FROM transition"):
        with pytest.raises(DatabaseError, match="append-only"), store._session() as conn:
            conn.execute(text(statement))
    assert store.history("tiny")[0].reason == "because"


# --- gate arithmetic on constructed evidence ----------------------------------------------

def _model(name: str, accuracy_reps: np.ndarray, latency: float = 5.0,
           size: float = 1.0) -> ModelEvaluation:
    metrics = {"accuracy": float(accuracy_reps.mean()), "latency_p95_ms": latency,
               "artifact_size_mb": size, "load_memory_mb": size, "error_rate": 0.0}
    return ModelEvaluation(name, "x", "tree", "ok", None, "0" * 64, None, metrics,
                           {"accuracy": (0.0, 1.0)}, ("accuracy",), accuracy_reps[:, None])


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
        _model("heavier", champion + 0.05, size=2.0),
    ]
    chance = {"accuracy": 0.5}
    evaluation = ScopeEvaluation("s", "multiclass", [0, 1], 1000, "0" * 64, chance, models,
                                 0, 0.0)
    board = promotion.rank_models(evaluation, {"accuracy": 1.0})
    return evaluation, board


@pytest.mark.parametrize(("name", "passes", "fails"), [
    ("clearly_better", True, set()),
    ("tied", False, {"improvement", "significance"}),
    ("worse", False, {"improvement", "significance"}),
    ("slower", False, {"latency_p95"}),
    ("heavier", False, {"resources"}),
])
def test_gates_on_constructed_evidence(constructed, name, passes, fails):
    evaluation, board = constructed
    report = promotion.gate_report(name, "champion", board, evaluation,
                                   promotion.GateSettings(), "champion")
    assert report.passed is passes
    assert {g.name for g in report.failed} == fails
    significance = next(g for g in report.gates if g.name == "significance")
    assert significance.effect == pytest.approx(
        board.row(name).composite_score - board.row("champion").composite_score)


def test_several_candidates_are_holm_corrected(constructed):
    evaluation, board = constructed
    names = ["clearly_better", "tied", "worse"]
    together = gate_reports(names, "champion", board, evaluation, promotion.GateSettings(),
                            "champion")
    alone = [promotion.gate_report(n, "champion", board, evaluation, promotion.GateSettings(),
                                   "champion") for n in names]
    p_together = [next(g.p_value for g in r.gates if g.name == "significance") for r in together]
    p_alone = [next(g.p_value for g in r.gates if g.name == "significance") for r in alone]
    assert all(t >= a for t, a in zip(p_together, p_alone, strict=True))
    assert max(p_together) <= 1


def test_without_a_champion_the_baseline_is_chance(constructed):
    evaluation, board = constructed
    report = promotion.gate_report("worse", "champion", board, evaluation,
                                   promotion.GateSettings(), None)
    assert report.baseline == "chance level"
    assert report.passed


def test_no_lottery_model_passes_the_significance_gate(constructed):
    evaluation, _ = constructed
    flat = [replace(m, replicates=np.clip(np.random.default_rng(i).normal(0.5, 0.01, (1000, 1)),
                                          0, 1), metrics={**m.metrics, "accuracy": 0.5})
            for i, m in enumerate(evaluation.models)]
    evaluation = replace(evaluation, models=flat)
    board = promotion.rank_models(evaluation, {"accuracy": 1.0})
    reports = gate_reports([m.model_name for m in flat], "champion", board, evaluation,
                           promotion.GateSettings(), None)
    for report in reports:
        assert not next(g for g in report.gates if g.name == "significance").passed


# --- concurrency --------------------------------------------------------------------------

@pytest.mark.slow
def test_concurrent_decisions_and_exports_lose_nothing(models_root, tiny_scope, store, store_url,
                                                      monkeypatch):
    """Processes promoting, demoting, crowning and exporting one scope at once."""
    monkeypatch.setenv("PROMOTION_DB_URL", store_url)  # the worker processes' store
    promotion.scope_state(models_root, "tiny", store)  # evaluate once, cached for the workers
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
    # Every export made meanwhile is complete and loads; nothing else is where the engine looks.
    exported = {Path(f) for *_, f in done if f}
    assert exported, "no export ran: the test proves nothing about exports"
    assert set(cards_files(models_root, "tiny")) == exported
    for path in exported:
        engine = PredictionEngine.load("tiny", models_root, cards_file=path)
        assert math.fsum(c.ensemble_weight for c in engine.cards) == pytest.approx(1, abs=1e-12)
        assert sum(c.is_champion for c in engine.cards) <= 1
    print(f"concurrency: {workers} processes, {len(done)} operations ({len(moves)} moves, "
          f"{len(exported)} exports), {len(history)} history entries, nothing lost")


def _run_worker(args: tuple[str, int, int]) -> list[tuple[str, str, bool, str | None]]:
    from workers import random_decisions

    models_dir, seed, operations = args
    return random_decisions(models_dir, "tiny", seed, operations, export_share=0.2)


def test_a_promoted_model_whose_folder_is_gone_can_still_be_archived(models_root, tiny_scope,
                                                                     store):
    import shutil

    move(models_root, store, "bayes", "production")
    shutil.rmtree(tiny_scope / "bayes")
    with pytest.raises(promotion.InvalidInputError, match="promoted model 'bayes'"):
        promotion.export_scope(models_root, "tiny", store)
    moved = move(models_root, store, "bayes", "archived", reason="folder deleted")
    assert (moved.from_stage, moved.to_stage) == ("production", "archived")
    with pytest.raises(promotion.ModelNotFoundError):
        move(models_root, store, "bayes", "production")


def test_rollback_to_a_missing_file_is_one_clear_message(models_root, tiny_scope, store):
    for name in ("logreg", "bayes"):
        move(models_root, store, name, "production")
    move(models_root, store, "logreg", "champion")
    move(models_root, store, "bayes", "champion", override=True)
    (tiny_scope / "logreg" / "model.joblib").unlink()
    with pytest.raises(promotion.InvalidInputError, match="tiny/logreg/model.joblib: cannot be"):
        promotion.rollback(store, promotion.load_scope(models_root, "tiny"), actor="a",
                           reason="r")


# --- moves that change what is served -----------------------------------------------------

def canary_running(models_root, store, canary: str = "bayes") -> promotion.Scope:
    """logreg champion, tree_d3 and bayes in production, ``canary`` at 10%, exported."""
    for name in ("logreg", "tree_d3", "bayes"):
        move(models_root, store, name, "production")
    move(models_root, store, "logreg", "champion")
    promotion.deploy(models_root, "tiny", store, "canary", canary=canary, canary_share=0.10,
                     actor="ana", reason="start the canary")
    return promotion.load_scope(models_root, "tiny")


def served(models_root, store) -> tuple[str, str | None, dict[str, str]]:
    """Export again and read what the engine would serve: mode, canary, roles."""
    promotion.export_scope(models_root, "tiny", store)
    engine = PredictionEngine.load("tiny", models_root, log=False)
    return engine.mode, engine.canary, {c.model_name: c.role for c in engine.cards}


def test_the_canary_made_champion_ends_the_canary(models_root, tiny_scope, store):
    scope = canary_running(models_root, store)
    move(models_root, store, "bayes", "champion", reason="won on live data", override=True)
    decided = promotion.deployment_of(store, scope)
    assert (decided.mode, decided.canary_model, decided.canary_share) == ("champion", None,
                                                                          None)
    assert (decided.actor, decided.reason) == ("ana", "canary bayes became champion: won on "
                                                      "live data")
    assert served(models_root, store) == ("champion", None, {"bayes": "champion",
                                                      "tree_d3": "challenger"})


def test_the_canary_leaving_production_ends_the_canary(models_root, tiny_scope, store):
    scope = canary_running(models_root, store, canary="tree_d3")
    move(models_root, store, "tree_d3", "archived", reason="too slow")
    decided = promotion.deployment_of(store, scope)
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
        promotion.set_deployment(store, scope, "champion", actor="ana", reason="shadow only")
    state = promotion.scope_state(models_root, "tiny", store)
    promotion.demote(store, state.scope, state.evaluation, state.board, "logreg",
                     actor="ops", reason="bad data source")
    decided = promotion.deployment_of(store, scope)
    assert (decided.mode, decided.canary_model, decided.actor) == ("ensemble", None, "ops")
    assert decided.reason == "champion logreg left production: bad data source"
    assert served(models_root, store) == ("ensemble", None, {"tree_d3": "member",
                                                             "bayes": "member"})


def test_a_rollback_keeps_champion_mode_serving(models_root, tiny_scope, store):
    scope = canary_running(models_root, store, canary="tree_d3")
    move(models_root, store, "bayes", "champion", reason="try bayes", override=True)
    promotion.rollback(store, scope, actor="ops", reason="bayes slipped")
    assert promotion.deployment_of(store, scope).mode == "canary"  # tree_d3 still a canary
    assert served(models_root, store) == ("canary", "tree_d3", {"logreg": "champion",
                                                         "tree_d3": "canary"})


def test_a_deployment_decided_on_a_stale_state_is_refused(models_root, tiny_scope, store):
    scope = canary_running(models_root, store)
    newest = store.deployments("tiny")[-1].id
    stale = [
        ({"expect_champion": "bayes"}, "champion of scope 'tiny' changed meanwhile"),
        ({"expect_champion": "logreg", "expect_latest": newest - 1},
         "deployment of scope 'tiny' changed meanwhile"),
    ]
    for expect, message in stale:
        with pytest.raises(promotion.InvalidTransitionError, match=message):
            store.record_deployment("tiny", "champion", None, None, actor="a",
                                    reason="decided on old facts", **expect)
    # The canary was archived after the decision was checked: the store sees it.
    move(models_root, store, "tree_d3", "archived")
    with pytest.raises(promotion.InvalidTransitionError,
                       match="canary 'tree_d3' of scope 'tiny' changed meanwhile"):
        store.record_deployment("tiny", "canary", "tree_d3", 0.1, actor="a", reason="late",
                                expect_champion="logreg", expect_latest=newest)
    assert store.deployments("tiny")[-1].id == newest  # nothing written
    assert promotion.deployment_of(store, scope).canary_model == "bayes"
    # With the state as it is, the same decision goes through.
    assert store.record_deployment("tiny", "champion", None, None, actor="a", reason="now",
                                   expect_champion="logreg", expect_latest=newest).id > newest
