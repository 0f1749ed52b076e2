"""Code run in other processes by the concurrency and crash tests (importable by a fresh
interpreter or a fork server)."""

from __future__ import annotations

import random
from multiprocessing.connection import Connection
from pathlib import Path

import promotion
from promotion import InvalidInputError, InvalidTransitionError
from promotion.contract import ModelCard
from promotion.export import PromotedSet, export_results
from promotion.lifecycle import transition_model
from promotion.store import open_store
from promotion.usecases import export_scope, scope_state

TARGETS = ("production", "champion", "archived")


def random_decisions(models_dir: str, scope_name: str, seed: int, operations: int,
                     export_share: float = 0.0) -> list[tuple[str, str, bool, str | None]]:
    """Promote, demote, crown and export at random.

    Returns (model, target, changed, cards file) per operation; ``target`` is ``export`` for an
    export, whose cards file is named when it was written. A refused export names why in the
    model slot: ``empty`` (nothing promoted then) or ``raced`` (a decision landed while it was
    built, which the export must refuse).
    """
    root = Path(models_dir)
    store = open_store(root)
    state = scope_state(root, scope_name, store, n_jobs=1)
    names = [row.model_name for row in state.board.ranked]
    rng = random.Random(seed)
    done: list[tuple[str, str, bool, str | None]] = []
    for _ in range(operations):
        if rng.random() < export_share:
            try:
                paths = export_scope(root, scope_name, store, "score")
            except InvalidInputError as refused:
                why = "raced" if "landed while this export" in str(refused) else "empty"
                done.append((why, "export", False, None))
                continue
            done.append(("", "export", True, str(paths.model_cards)))
            continue
        model, target = rng.choice(names), rng.choice(TARGETS)
        try:
            moved = transition_model(
                store, state.scope, state.evaluation, state.board, model, target,
                actor=f"worker-{seed}", reason=f"random decision {seed}", override=True)
        except InvalidTransitionError:
            done.append((model, target, False, None))  # not allowed from its stage, or raced
            continue
        done.append((model, target, moved is not None, None))
    store.close()
    return done


def export_forever(models_dir: str, promoted: PromotedSet,
                   cards: list[ModelCard], conn: Connection) -> None:
    """Export the same cards again and again, reporting each complete cards file; the test
    kills this process at random points."""
    store = open_store(Path(models_dir))
    conn.send("ready")
    while True:
        paths = export_results(promoted, store, cards=cards)
        conn.send(paths.model_cards.name)


def decide_forever(models_dir: str, scope_name: str, seed: int, conn: Connection) -> None:
    """Random transitions without end, reporting each; the test kills this process."""
    root = Path(models_dir)
    store = open_store(root)
    state = scope_state(root, scope_name, store, n_jobs=1)
    names = [row.model_name for row in state.board.ranked]
    rng = random.Random(seed)
    conn.send("ready")
    while True:
        model, target = rng.choice(names), rng.choice(TARGETS)
        try:
            transition_model(store, state.scope, state.evaluation, state.board,
                                       model, target, actor=f"crash-{seed}",
                                       reason="decided before a crash", override=True)
        except InvalidTransitionError:
            pass
        conn.send(target)


def serve_forever(models_dir: str, scope_name: str) -> None:
    """Serve holdout batches in a loop; after each answered batch print its request ids.

    The parent reads the ids from the pipe and kills this process at a moment of its choice:
    every id it has read was answered, so it must be in the log.
    """
    import sys

    import pandas as pd

    root = Path(models_dir)
    frame = pd.read_csv(root / scope_name / "holdout.csv").drop(columns="label")
    engine = promotion.engine.PredictionEngine.load(scope_name, root)
    batch = 0
    while True:
        ids = [f"b{batch}-r{i}" for i in range(len(frame))]
        engine.serve(frame, ids)
        sys.stdout.write(" ".join(ids) + "\n")
        sys.stdout.flush()
        batch += 1
