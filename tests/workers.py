"""Code run in other processes by the concurrency tests (importable by a fresh interpreter)."""

from __future__ import annotations

import random
from pathlib import Path

import promotion


def random_decisions(models_dir: str, scope_name: str, seed: int, operations: int
                     ) -> list[tuple[str, str, bool]]:
    """Promote, demote and crown models at random; return (model, target, changed) per op."""
    root = Path(models_dir)
    store = promotion.open_store(root)
    state = promotion.scope_state(root, scope_name, store, n_jobs=1)
    names = [row.model_name for row in state.board.ranked]
    rng = random.Random(seed)
    done = []
    for _ in range(operations):
        model, target = rng.choice(names), rng.choice(["production", "champion", "archived"])
        try:
            moved = promotion.transition_model(
                store, state.scope, state.evaluation, state.board, model, target,
                actor=f"worker-{seed}", reason=f"random decision {seed}", override=True)
        except promotion.InvalidTransitionError:
            done.append((model, target, False))  # not allowed from its stage now, or raced
            continue
        done.append((model, target, moved is not None))
    store.close()
    return done


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
