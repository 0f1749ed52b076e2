"""What every command shares: messages, the deciding user, the store, printed moves."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..evaluation._results import Progress
from ..scopes._discovery import load_scope
from ..settings import setting
from ..store._abstract import Store
from ..store._entities import Transition
from ..store._sql import open_store

if TYPE_CHECKING:
    import pandas as pd

#: Exit status of a user error (bad input): one line on stderr, no traceback.
USER_ERROR = 2


def say(message: str) -> None:
    """A progress or status line, on stderr (stdout carries the command's output)."""
    print(message, file=sys.stderr, flush=True)


def progress_printer(scope: str) -> Progress:
    """Evaluation progress as lines on stderr, one per model measured now."""
    def report(done: int, total: int, name: str, cached: bool) -> None:
        if not cached:
            say(f"{scope}: evaluated {done}/{total} {name}")
    return report


def user(args: argparse.Namespace) -> str:
    """Who decides: ``--user``, else the ``PROMOTION_USER`` setting, else the account name."""
    import getpass

    chosen = args.user or setting("PROMOTION_USER")
    if chosen:
        return chosen
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no account name in this environment
        raise InvalidInputError("who is deciding? Hint: pass --user NAME") from None


def with_store(args: argparse.Namespace, action: Callable[[Store], int]) -> int:
    """Run ``action`` with the models root's store open, and close it after."""
    store = open_store(args.models_dir)
    try:
        return action(store)
    finally:
        store.close()


def print_move(moved: Transition | None, model: str, stage_now: str) -> None:
    """One line for a stage move, or for a move that changed nothing."""
    if moved is None:
        print(f"{model} is {stage_now}: nothing changed")
        return
    flag = " (gates overridden)" if moved.overridden else ""
    print(f"{moved.model_name}: {moved.from_stage} -> {moved.to_stage}{flag}, by {moved.actor} "
          f"at {moved.at:%Y-%m-%d %H:%M:%S} UTC, version {str(moved.model_sha256)[:12]}")


def print_sync(args: argparse.Namespace, store: Store, started: datetime) -> None:
    """After a move: what the MLflow mirror did, or a warning that it is behind."""
    if load_scope(args.models_dir, args.scope).config.mlflow is None:
        return
    state = store.sync_state(args.scope)
    if state is None:
        return
    if state.pending:
        say(f"warning: MLflow mirror pending since {state.pending_since:%Y-%m-%d %H:%M:%S} "
            f"UTC ({state.detail}); the decision above is saved. Retried on the next "
            f"transition or by: python -m promotion mlflow-sync --scope {args.scope}")
    elif state.attempted_at >= started:
        say(f"mlflow: {state.detail}")


def read_rows(path: Path) -> pd.DataFrame:
    """The CSV of ``--input``; a missing or unreadable file is one clear message."""
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file is missing (argument --input)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{path}: not a readable CSV ({err})") from None

