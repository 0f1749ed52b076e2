"""Crashes: processes killed (SIGKILL) at random points while exporting or deciding; and the
app under store faults (a lock held by another process, the database replaced under it).

The kill points are random without any sleeping here: the child reports each step on a pipe,
the test waits for a random number of reports, then burns a random amount of CPU (so the kill
lands anywhere within the next step, not just after a report) and kills.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import multiprocessing
import os
import random
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, ROOT, running_app
from processes import plain_main
from store_faults import holding_sqlite_lock
from streamlit.testing.v1 import AppTest
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




# the app under store faults ------------------------------------------------------------------

def _decision_page() -> None:
    """A page's decision as the pages make it: in a callback, through ``store_write``, a
    refusal kept as the notice the next run shows."""
    import streamlit as st

    from promotion import PromotionError
    from views._common import plain, show_notice, store, store_write

    def decide() -> None:
        try:
            with store_write(), store().decision("tiny") as tx:
                tx.record_move("logreg", "development", "production", actor="ana",
                               reason="chosen", model_sha256=None)
        except PromotionError as err:
            st.session_state["notice"] = ("error", plain(err))
            return
        st.session_state["notice"] = ("ok", "Promoted logreg.")

    show_notice()
    st.button("Promote", on_click=decide)


def _stages_page() -> None:
    """A page that shows the store's records, after asking whether the store is usable."""
    import streamlit as st

    from views._common import store, store_ready

    if not store_ready():
        st.stop()
    st.text(" ".join(sorted(store().stages("tiny"))) or "no stages")


def _unescaped(text: str) -> str:
    return text.replace("\\", "")


def test_app_decision_under_a_held_lock_is_an_error_box_not_a_traceback(
        models_root, monkeypatch):
    monkeypatch.setenv("PROMOTION_MODELS_DIR", str(models_root))
    monkeypatch.setenv("PROMOTION_LOCK_WAIT_S", "1")
    database = models_root / "promotion.db"
    SqlStore(f"sqlite:///{database}").close()
    at = AppTest.from_function(_decision_page, default_timeout=120)
    at.run()
    with holding_sqlite_lock(database) as holder:
        at.button[0].click().run()
    assert not at.exception
    [shown] = [_unescaped(e.value) for e in at.error]
    assert shown.startswith(f"{database} is busy: process {holder.pid} (python")
    assert shown.endswith("has held its write lock for over 1 s; nothing was saved. Hint: "
                          "retry, or stop that process")
    at.button[0].click().run()  # the holder is gone: the same click goes through
    assert [s.value for s in at.success] == ["Promoted logreg."] and not at.error


def test_app_stops_with_an_error_box_when_the_database_was_replaced(models_root, monkeypatch):
    monkeypatch.setenv("PROMOTION_MODELS_DIR", str(models_root))
    database = models_root / "promotion.db"
    store = SqlStore(f"sqlite:///{database}")
    with store.decision("tiny") as tx:
        tx.record_move("logreg", "development", "production", actor="ana", reason="r",
                       model_sha256=None)
    store.close()
    at = AppTest.from_function(_stages_page, default_timeout=120)
    at.run()
    assert [t.value for t in at.text] == ["logreg"]
    # Restored from a backup under the running app: an empty store in its place.
    restored = database.with_name("restored.db")
    SqlStore(f"sqlite:///{restored}").close()
    os.replace(restored, database)
    at.run()
    assert not at.exception and not at.text  # not what the app held before
    assert [_unescaped(e.value) for e in at.error] == [
        f"{database} was replaced since this process opened it; what this process read from "
        "it may be out of date. Hint: restart to use the new one"]


@pytest.mark.browser
@pytest.mark.slow
def test_app_shows_busy_retrying_while_it_waits_then_an_error_box(models_root, tmp_path):
    """In the real browser: the "busy, retrying" line is on the page while the decision waits
    for another process's lock (the default wait, 10 s), then the error box replaces it."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: ./scripts/test installs it with apt-get")
    database = models_root / "promotion.db"
    SqlStore(f"sqlite:///{database}").close()
    page_file = tmp_path / "decision_page.py"
    source = inspect.getsource(_decision_page)
    page_file.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n{source}\n"
                         "_decision_page()\n")
    with running_app(models_root, script=page_file) as url, holding_sqlite_lock(database), \
            playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.get_by_role("button", name="Promote").click(timeout=120_000)
        busy = page.get_by_text("is busy: process", exact=False)
        busy.wait_for(timeout=60_000)
        assert "is writing to it; retrying for up to 10 s" in busy.inner_text()
        error = page.get_by_text("has held its write lock for over 10 s", exact=False)
        error.wait_for(timeout=120_000)
        assert page.get_by_text("retrying for up to", exact=False).count() == 0
        browser.close()
