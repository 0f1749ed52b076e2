"""What every command shares: messages, the deciding user, the store, printed moves."""

from __future__ import annotations

import argparse
import math
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
    pass

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
    """Who decides: ``--user``, else the ``PROMOTION_USER`` setting, else the account name;
    in team mode always ``cli:<account>`` (a name typed on the command line proves nothing)."""
    import getpass

    from ..auth import cli_actor, team_mode

    if team_mode():
        if getattr(args, "user", None) is not None:
            raise InvalidInputError("team mode: the command line records decisions as "
                                    f"{cli_actor()}; --user is not accepted")
        return cli_actor()
    if args.user is not None:  # given: as given (the parser refused a blank one already)
        try:
            return user_name(args.user)
        except argparse.ArgumentTypeError as err:
            raise InvalidInputError(str(err)) from None
    chosen = setting("PROMOTION_USER")
    if chosen:
        return chosen
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no account name in this environment
        raise InvalidInputError("who is deciding? Hint: pass --user NAME") from None


# argument types: a bad value is one line naming the argument (argparse ``type=``) ----------

def user_name(text: str) -> str:
    """``--user``: who decides, as recorded; a blank name is refused (not replaced)."""
    name = text.strip()
    if not name:
        raise argparse.ArgumentTypeError(
            f"--user {text!r}: a blank name cannot be recorded. Hint: give your name, or leave "
            "--user out to record $PROMOTION_USER or your account name")
    return name


def whole_number(flag: str, low: int, high: int) -> Callable[[str], int]:
    """The ``type`` of an argument that is a whole number from ``low`` to ``high``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{flag} {text}: must be a whole number from {low:,} to {high:,}")
        return value
    return parse


def positive_number(flag: str, high: float, unit: str) -> Callable[[str], float]:
    """The ``type`` of an argument that is a number more than 0 and at most ``high``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 < value <= high):
            raise argparse.ArgumentTypeError(
                f"{flag} {text}: must be more than 0 and at most {high:,g} {unit}")
        return value
    return parse


#: ``simulate --seed``: numpy takes a seed of 0 or more; 32 bits are plenty to replay a run.
seed_number = whole_number("--seed", 0, 2**32 - 1)
#: ``simulate --requests``: each request is a row in memory and in the log.
request_count = whole_number("--requests", 1, 10_000_000)
#: ``simulate --days``: the requests' times are spread over the past this many days.
day_span = positive_number("--days", 36_500, "days (100 years)")


def existing_models_root(root: Path, command: str) -> Path:
    """The models root of a command that reads it: it must exist (a mistyped --models-dir
    would otherwise become a new, empty models root with an empty store)."""
    if root.is_dir():
        return root
    what = "is not a folder" if root.exists() else "does not exist"
    raise InvalidInputError(
        f"models root '{root}' {what} (--models-dir or PROMOTION_MODELS_DIR). Hint: check the "
        f"path; `python -m promotion demo --models-dir {root}` builds a new one "
        f"({command} does not)")


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


