"""Crashes: processes killed (SIGKILL) at random points while exporting or deciding.

The kill points are random without any sleeping here: the child reports each step on a pipe,
the test waits for a random number of reports, then burns a random amount of CPU (so the kill
lands anywhere within the next step, not just after a report) and kills.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from processes import plain_main
from workers import decide_forever, export_forever

from promotion._jsonio import STALE_TEMP_SECONDS
from promotion.contract import (
    EXPORT_AREA,
    LEADERBOARDS,
    MODEL_CARDS,
    LeaderboardExport,
    cards_files,
)
from promotion.engine import PredictionEngine, newest_cards_file, read_cards
from promotion.export import build_cards, promoted_set
from promotion.store import SqlStore
from promotion.usecases import change_stage, export_scope, scope_state

PROMOTED = ("logreg", "tree_d3", "bayes")
#: Up to this many sha256 rounds of CPU work between the last report and the kill: about
#: the length of one export or transition on a shared 2-core machine.
JITTER_ROUNDS = 20_000


@pytest.fixture(scope="module")
def fork_server() -> multiprocessing.context.BaseContext:
    """Children forked from a server that has already imported the package: cheap to start,
    and never a fork of this (possibly multi-threaded) test process."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["promotion.usecases", "promotion.engine", "workers"])
    return context


def _burn(rounds: int) -> None:
    digest = b"x" * 1024
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest() * 32


def _kill_at_random(context, target: Callable, args: tuple, rng: random.Random,
                    max_reports: int) -> list[str]:
    """Start ``target``, kill it after a random number of reports plus random CPU work;
    return every report it made (all of them describe finished steps)."""
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(*args, sender), daemon=True)
    with plain_main():
        process.start()
    sender.close()
    try:
        assert receiver.poll(120), "the child never got ready"
        assert receiver.recv() == "ready"
        reports = [receiver.recv() for _ in range(rng.randint(0, max_reports))]
        _burn(rng.randint(0, JITTER_ROUNDS))
        os.kill(process.pid, signal.SIGKILL)
        process.join(60)
        assert process.exitcode == -signal.SIGKILL
        while receiver.poll():  # reports written before the kill landed
            try:
                reports.append(receiver.recv())
            except EOFError:
                break
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
    return reports


@pytest.mark.slow
def test_kills_during_exports_never_leave_a_partial_file_where_the_engine_looks(
        models_root, tiny_scope, store, fork_server):
    for name in PROMOTED:
        change_stage(models_root, "tiny", store, name, "production", actor="ana",
                               reason="chosen")
    state = scope_state(models_root, "tiny", store, n_jobs=1)
    promoted = promoted_set(state.scope, store, state.evaluation, state.board)
    cards = build_cards(promoted, store)
    expected = [card.model_name for card in cards]  # in rank order
    rng = random.Random(7)
    kills, reported = 60, []
    area = models_root / EXPORT_AREA
    for _ in range(kills):
        reported += _kill_at_random(fork_server, export_forever,
                                    (str(models_root), promoted, cards), rng, max_reports=4)
        if not reported:
            continue
        # Every file where the engine looks is complete and valid.
        for path in (area / MODEL_CARDS).glob("model_cards_*.json"):
            assert [c.model_name for c in read_cards(path)] == expected
        for path in (area / LEADERBOARDS).glob("leaderboard_*.json"):
            LeaderboardExport.model_validate(json.loads(path.read_text()))
        # The engine loads the newest complete export: the last one reported, or one the
        # child finished just before the kill but had not reported yet.
        newest = newest_cards_file("tiny", models_root)
        assert newest.name >= max(reported)
        engine = PredictionEngine.load("tiny", models_dir=models_root)
        assert engine.source == newest
        assert [c.model_name for c in engine.cards] == expected
    files = {p.name for p in cards_files(models_root, "tiny")}
    assert set(reported) <= files  # nothing reported as written was lost
    mid_write = len(list((area / MODEL_CARDS).glob(".*.tmp"))) + len(
        list((area / LEADERBOARDS).glob(".*.tmp")))
    print(f"crash: {kills} kills during exports, {len(reported)} exports reported, "
          f"{len(files)} complete cards files, {mid_write} kills landed mid-write "
          "(temporary files left, never read), no partial file where the engine looks")
    assert len(files) > kills / 2  # the kills interrupted a loop that was really exporting
    # The next export sweeps what killed writers left, once it is surely not being written.
    (area / LEADERBOARDS / ".leaderboard_tiny_killed.json.a1b2.tmp").write_text("[")
    left = [*(area / MODEL_CARDS).glob(".*.tmp"), *(area / LEADERBOARDS).glob(".*.tmp")]
    for path in left:
        old = path.stat().st_mtime - STALE_TEMP_SECONDS - 1
        os.utime(path, (old, old))
    in_progress = area / MODEL_CARDS / ".model_cards_tiny_now.json.x1y2.tmp"
    in_progress.write_text("{")
    export_scope(models_root, "tiny", store)
    assert not any(path.exists() for path in left) and in_progress.exists()


@pytest.mark.slow
def test_kills_during_transitions_leave_the_store_consistent(models_root, tiny_scope, store,
                                                             fork_server):
    scope_state(models_root, "tiny", store, n_jobs=1)  # cached for the children
    rng = random.Random(11)
    kills, steps = 25, 0
    for seed in range(kills):
        steps += len(_kill_at_random(fork_server, decide_forever,
                                     (str(models_root), "tiny", seed), rng, max_reports=12))
        _assert_consistent(models_root, store)
    history = store.history("tiny")
    print(f"crash: {kills} kills during transitions after {steps} reported decisions; "
          f"{len(history)} history entries replay to the stored stages; integrity ok")
    assert len(history) > kills  # the kills interrupted a loop that was really deciding


def _assert_consistent(models_root: Path, store: SqlStore) -> None:
    with sqlite3.connect(models_root / "promotion.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    replayed: dict[str, str] = {}
    for entry in store.history("tiny"):
        assert replayed.get(entry.model_name, "development") == entry.from_stage
        replayed[entry.model_name] = entry.to_stage
    stages = {n: r.stage for n, r in store.stages("tiny").items()}
    assert replayed == stages
    assert sum(stage == "champion" for stage in stages.values()) <= 1


