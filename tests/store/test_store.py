from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from promotion import InvalidTransitionError
from promotion.lifecycle._transitions import apply_move
from promotion.store import open_store

STORE_BACKENDS = ("sqlite", "postgresql")


def record(store, model, from_stage, to_stage, *, scope="s", actor="a", reason="r",
           model_sha256=None):
    """One bare record of a move, in its own decision (no lifecycle rules)."""
    with store.decision(scope) as tx:
        return tx.record_move(model, from_stage, to_stage, actor=actor, reason=reason,
                              model_sha256=model_sha256)


def move(store, model, to_stage, *, scope="s", actor="a", reason="r"):
    """One move by the lifecycle's rules, in its own decision."""
    with store.decision(scope) as tx:
        return apply_move(tx, model, to_stage, actor=actor, reason=reason, model_sha256=None)


def test_moves_persist_across_store_instances(models_root, store, store_url):
    record(store, "m1", "development", "production", actor="ana", reason="best tree",
           model_sha256="a" * 64)
    reopened = open_store(models_root, store_url)
    stored = reopened.stages("s")["m1"]
    assert (stored.stage, stored.updated_by, stored.reason) == ("production", "ana", "best tree")
    assert [(t.from_stage, t.to_stage, t.model_sha256) for t in reopened.history("s")] == [
        ("development", "production", "a" * 64)]
    reopened.close()


def test_a_decision_reads_its_own_records_and_lists_its_moves(store):
    with store.decision("s") as tx:
        first = tx.record_move("m1", "development", "production", actor="a", reason="r",
                               model_sha256=None)
        second = tx.record_move("m1", "production", "champion", actor="a", reason="r",
                                model_sha256=None)
        assert tx.stages()["m1"].stage == "champion"
        assert tx.moves == (first, second)
        assert first.at == second.at  # one decision, one moment
        decided = tx.record_deployment("champion", None, None, actor="a", reason="r")
        assert tx.latest_deployment() == decided
    assert store.deployments("s") == [decided]


def test_a_decision_that_raises_keeps_nothing(store):
    with pytest.raises(RuntimeError, match="changed my mind"), store.decision("s") as tx:
        tx.record_move("m1", "development", "production", actor="a", reason="r",
                       model_sha256=None)
        tx.record_deployment("champion", None, None, actor="a", reason="r")
        raise RuntimeError("changed my mind")
    assert store.stages("s") == {} and store.history("s") == []
    assert store.deployments("s") == []


@pytest.mark.parametrize(("from_stage", "to_stage", "message"), [
    ("development", "beta", "unknown stage 'beta'"),
    ("production", "champion", "is development, not production; look again"),
    ("development", "development", "is development already"),
])
def test_a_move_that_would_not_replay_is_not_recorded(store, from_stage, to_stage, message):
    with pytest.raises(InvalidTransitionError, match=message), store.decision("s") as tx:
        tx.record_move("m", from_stage, to_stage, actor="a", reason="r", model_sha256=None)
    assert store.history("s") == []


@pytest.mark.parametrize(("actor", "reason", "message"), [
    ("a", " ", "a reason is required"), (" ", "r", "who is deciding"),
])
def test_every_record_says_who_and_why(store, actor, reason, message):
    with pytest.raises(InvalidTransitionError, match=message), store.decision("s") as tx:
        tx.record_move("m", "development", "production", actor=actor, reason=reason,
                       model_sha256=None)
    with pytest.raises(InvalidTransitionError, match=message), store.decision("s") as tx:
        tx.record_deployment("ensemble", None, None, actor=actor, reason=reason)
    assert store.history("s") == [] and store.deployments("s") == []


def test_the_database_itself_refuses_a_second_champion(store):
    record(store, "m1", "development", "champion")
    with pytest.raises(IntegrityError), store._session() as conn:
        conn.execute(text(
            "INSERT INTO model_stage (scope, model_name, stage, updated_at, updated_by, reason) "
            "VALUES ('s', 'm2', 'champion', CURRENT_TIMESTAMP, 'x', 'sneaky')"))
    # A decision that records a second champion (no lifecycle archived the first) is refused
    # as a whole: its other records are not kept either.
    with pytest.raises(InvalidTransitionError, match="changed meanwhile"), \
            store.decision("s") as tx:
        tx.record_move("m3", "development", "production", actor="a", reason="r",
                       model_sha256=None)
        tx.record_move("m2", "development", "champion", actor="a", reason="r",
                       model_sha256=None)
    assert [r.model_name for r in store.stages("s").values()] == ["m1"]
    assert len(store.history("s")) == 1


def test_promote_twice_writes_one_history_entry(store):
    first = move(store, "m1", "production")
    second = move(store, "m1", "production")
    assert first is not None and second is None
    assert len(store.history("s")) == 1


def test_new_champion_archives_the_old_one_in_the_same_transaction(store):
    for name in ("m1", "m2"):
        move(store, name, "production")
    move(store, "m1", "champion")
    with store.decision("s") as tx:
        apply_move(tx, "m2", "champion", actor="b", reason="better", model_sha256=None)
        assert [(t.model_name, t.to_stage) for t in tx.moves] == [("m1", "archived"),
                                                                   ("m2", "champion")]
    stages = {n: r.stage for n, r in store.stages("s").items()}
    assert stages == {"m1": "archived", "m2": "champion"}
    moves = [(t.model_name, t.from_stage, t.to_stage) for t in store.history("s")]
    assert moves[-2:] == [("m1", "champion", "archived"), ("m2", "production", "champion")]


def test_unknown_stage_and_disallowed_moves_are_refused(store):
    with pytest.raises(InvalidTransitionError, match="unknown stage 'beta'"):
        move(store, "m", "beta")
    with pytest.raises(InvalidTransitionError, match="only from production"):
        move(store, "m", "champion")
    assert store.history("s") == []


def test_weights_are_versioned(store):
    assert store.current_weights("s") is None
    store.save_weights("s", {"accuracy": 1.0}, actor="a")
    latest = store.save_weights("s", {"accuracy": 0.5, "log_loss": 0.5}, actor="b")
    assert latest.version == 2
    assert store.current_weights("s").weights == {"accuracy": 0.5, "log_loss": 0.5}


def test_annotations_are_saved_and_cleared(store):
    store.annotate("s", "m", "strength", "fast on small digits", actor="a")
    assert store.annotations("s") == {"m": {"strength": "fast on small digits"}}
    store.annotate("s", "m", "strength", "  ", actor="a")
    assert store.annotations("s") == {}


@pytest.mark.parametrize("statement", [
    "UPDATE transition SET reason = 'rewritten'",
    "DELETE FROM transition",
])
def test_the_history_is_append_only_in_the_database(store, statement):
    with store.decision("s") as tx:
        tx.record_move("m1", "development", "production", actor="a", reason="kept",
                       model_sha256=None)
        tx.record_deployment("champion", None, None, actor="a", reason="kept")
    for table in ("transition", "deployment"):
        with pytest.raises(DBAPIError, match="append-only"), store._session() as conn:
            conn.execute(text(statement.replace("transition", table)))
    assert [t.reason for t in store.history("s")] == ["kept"]
    assert [d.reason for d in store.deployments("s")] == ["kept"]


def test_racing_champions_leave_exactly_one(store, store_url, models_root):
    """Eight threads, each on its own store instance, crown different models at once: each
    decides on the stages it reads inside its own decision, so none loses an update."""
    names = [f"m{i}" for i in range(8)]
    for name in names:
        move(store, name, "production")
    stores = [open_store(models_root, store_url) for _ in names]
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda pair: move(pair[0], pair[1], "champion", actor=pair[1],
                                        reason="race"), zip(stores, names, strict=True)))
    for opened in stores:
        opened.close()
    stages = {n: r.stage for n, r in store.stages("s").items()}
    assert sorted(stages.values()) == ["archived"] * 7 + ["champion"]
    crowned = [t for t in store.history("s") if t.to_stage == "champion"]
    assert len(crowned) == 8  # every crowning happened, one after the other
    assert [t.model_name for t in crowned][-1] == next(
        n for n, s in stages.items() if s == "champion")


def test_concurrent_cache_writes_of_one_model_do_not_fail(store, store_url, models_root):
    stores = [open_store(models_root, store_url) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda i: stores[i].put_evaluation(
            "k" * 64, "a" * 64, "b" * 64, {"writer": i}, None, None), range(6)))
    for opened in stores:
        opened.close()
    assert store.get_evaluations(["k" * 64])["k" * 64].payload["writer"] in range(6)
