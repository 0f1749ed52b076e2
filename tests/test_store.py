from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from promotion import InvalidTransitionError, open_store

STORE_BACKENDS = ("sqlite", "postgresql")


def test_transitions_persist_across_store_instances(models_root, store, store_url):
    store.transition("s", "m1", "production", actor="ana", reason="best tree",
                     model_sha256="a" * 64)
    reopened = open_store(models_root, store_url)
    record = reopened.stages("s")["m1"]
    assert (record.stage, record.updated_by, record.reason) == ("production", "ana", "best tree")
    assert [t.to_stage for t in reopened.history("s")] == ["production"]
    reopened.close()


def test_promote_twice_writes_one_history_entry(store):
    first = store.transition("s", "m1", "production", actor="a", reason="r", model_sha256=None)
    second = store.transition("s", "m1", "production", actor="a", reason="r", model_sha256=None)
    assert first is not None and second is None
    assert len(store.history("s")) == 1


def test_new_champion_archives_the_old_one_in_the_same_transaction(store):
    for name in ("m1", "m2"):
        store.transition("s", name, "production", actor="a", reason="r", model_sha256=None)
    store.transition("s", "m1", "champion", actor="a", reason="r", model_sha256=None)
    store.transition("s", "m2", "champion", actor="b", reason="better", model_sha256=None)
    stages = {n: r.stage for n, r in store.stages("s").items()}
    assert stages == {"m1": "archived", "m2": "champion"}
    moves = [(t.model_name, t.from_stage, t.to_stage) for t in store.history("s")]
    assert moves[-2:] == [("m1", "champion", "archived"), ("m2", "production", "champion")]


def test_the_database_itself_refuses_a_second_champion(store):
    store.transition("s", "m1", "champion", actor="a", reason="r", model_sha256=None)
    with pytest.raises(IntegrityError), store._session() as conn:
        conn.execute(text(
            "INSERT INTO model_stage (scope, model_name, stage, updated_at, updated_by, reason) "
            "VALUES ('s', 'm2', 'champion', CURRENT_TIMESTAMP, 'x', 'sneaky')"))
    assert [r.model_name for r in store.stages("s").values() if r.stage == "champion"] == ["m1"]


def test_unknown_stage_and_disallowed_moves_are_refused(store):
    with pytest.raises(InvalidTransitionError, match="unknown stage 'beta'"):
        store.transition("s", "m", "beta", actor="a", reason="r", model_sha256=None)
    with pytest.raises(InvalidTransitionError, match="only from production"):
        store.transition("s", "m", "champion", actor="a", reason="r", model_sha256=None,
                         allowed_from=frozenset({"production"}))


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
    store.transition("s", "m1", "production", actor="a", reason="kept", model_sha256=None)
    store.record_deployment("s", "champion", None, None, actor="a", reason="kept")
    for table in ("transition", "deployment"):
        with pytest.raises(DBAPIError, match="append-only"), store._session() as conn:
            conn.execute(text(statement.replace("transition", table)))
    assert [t.reason for t in store.history("s")] == ["kept"]
    assert [d.reason for d in store.deployments("s")] == ["kept"]


def test_racing_champions_leave_exactly_one(store, store_url, models_root):
    """Eight threads, each on its own store instance, crown different models at once."""
    names = [f"m{i}" for i in range(8)]
    for name in names:
        store.transition("s", name, "production", actor="a", reason="r", model_sha256=None)
    stores = [open_store(models_root, store_url) for _ in names]
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda pair: pair[0].transition(
            "s", pair[1], "champion", actor=pair[1], reason="race", model_sha256=None,
            allowed_from=frozenset({"production", "candidate"})), zip(stores, names, strict=True)))
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
