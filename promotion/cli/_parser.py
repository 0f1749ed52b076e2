"""``python -m promotion <command>``: the app's actions for operators and scripts.

Bad input exits with status 2 and one line on stderr; no traceback for a user error.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import PromotionError
from ..scoring._gates import GATED_STAGES
from ..settings import models_dir
from ..vocabulary import (
    DEFAULT_STAGE,
    DEFAULT_WEIGHTS_METHOD,
    GROUPS,
    MODES,
    STAGE_LADDER,
    STAGES,
    WEIGHTS_METHODS,
)
from ._admin import cmd_demo, cmd_migrate, cmd_mlflow_import, cmd_mlflow_sync, cmd_schemas
from ._common import (
    USER_ERROR,
    day_span,
    existing_models_root,
    request_count,
    seed_number,
    user_name,
)
from ._decisions import cmd_demote, cmd_deploy, cmd_history, cmd_list, cmd_promote, cmd_rollback
from ._ranking import cmd_gates, cmd_leaderboard, cmd_scopes
from ._serving import (
    cmd_export,
    cmd_monitor,
    cmd_outcomes,
    cmd_predict,
    cmd_serve,
    cmd_simulate,
)
from ._team import (
    add_request_answers,
    cmd_approve,
    cmd_reject,
    cmd_requests,
    cmd_roles,
    grant_pair,
)

#: The stages ``promote`` moves a model to: up the ladder from where a new model starts.
PROMOTE_TO = tuple(stage for stage in STAGE_LADDER if stage != DEFAULT_STAGE)
#: The commands that may start a models root that does not exist yet; every other one refuses
#: it (a mistyped --models-dir would become a new, empty root with an empty store).
MAKE_MODELS_ROOT = ("demo", "migrate")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        # A type check's message names its argument itself: "--days 0: ...", not twice.
        message = re.sub(r"^argument (\S+): (?=\1 )", "", message)
        self.exit(USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Every command with its arguments; each command's function is its ``run`` default."""
    parser = _Parser(prog="python -m promotion", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models-dir", type=Path, default=None,
                        help="models root (default: $PROMOTION_MODELS_DIR or ./models)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser("demo", parents=[common], help="build the demo model zoo")
    demo.add_argument("--force", action="store_true", help="rebuild scopes that exist")
    demo.add_argument("--monitoring", action="store_true",
                      help="also deploy a digits champion with a 10%% canary and replay 3,000 "
                           "requests with outcomes, so the Monitoring page has live data")
    demo.set_defaults(run=cmd_demo)

    board = commands.add_parser("leaderboard", parents=[common],
                                help="rank a scope's models (evaluating what changed)")
    board.add_argument("--scope", required=True)
    board.add_argument("--json", action="store_true", help="print JSON instead of a table")
    board.set_defaults(run=cmd_leaderboard)

    scopes = commands.add_parser("scopes", parents=[common], help="list the scopes")
    scopes.set_defaults(run=cmd_scopes)

    export = commands.add_parser("export", parents=[common],
                                 help="write the leaderboard and the promoted models' cards")
    export.add_argument("--scope", required=True)
    export.add_argument("--weights", choices=WEIGHTS_METHODS, default=DEFAULT_WEIGHTS_METHOD,
                        help="ensemble weighting method (default: score)")
    export.set_defaults(run=cmd_export)

    predict = commands.add_parser("predict", parents=[common],
                                  help="ensemble predictions from the newest export")
    predict.add_argument("--scope", required=True)
    predict.add_argument("--input", required=True, type=Path, help="CSV of feature rows")
    predict.add_argument("--output", type=Path, help="CSV to write (default: stdout)")
    predict.add_argument("--no-log", action="store_true",
                         help="do not write the prediction log (default: logged)")
    predict.set_defaults(run=cmd_predict)

    serve = commands.add_parser("serve", parents=[common],
                                help="answer predictions over HTTP, following new exports")
    serve.add_argument("--scope", required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--replica", type=replica_id, default=None,
                       help="this server's id when several serve one models root: its "
                            "prediction log is <scope>@<id>.sqlite (default: the scope's own)")
    serve.add_argument("--no-log", action="store_true",
                       help="do not write the prediction log (default: logged)")
    serve.set_defaults(run=cmd_serve)

    deploy = commands.add_parser("deploy", parents=[common],
                                 help="choose the serving mode (recorded) and export it")
    deploy.add_argument("--scope", required=True)
    deploy.add_argument("--mode", required=True, choices=MODES)
    deploy.add_argument("--canary", help="canary mode: the challenger")
    deploy.add_argument("--share", type=float, help="canary mode: share of requests (0-1)")
    deploy.add_argument("--reason", required=True)
    deploy.add_argument("--user", type=user_name, default=None)
    add_request_answers(deploy)
    deploy.set_defaults(run=cmd_deploy)

    outcomes = commands.add_parser("outcomes", parents=[common],
                                   help="join true labels (request_id,label CSV) to the log")
    outcomes.add_argument("--scope", required=True)
    outcomes.add_argument("--file", required=True, type=Path)
    outcomes.set_defaults(run=cmd_outcomes)

    simulate = commands.add_parser("simulate", parents=[common],
                                   help="replay holdout rows through the engine, with outcomes")
    simulate.add_argument("--scope", required=True)
    simulate.add_argument("--requests", required=True, type=request_count)
    simulate.add_argument("--drift", help="FEATURE:SHIFT, shift in standard deviations")
    simulate.add_argument("--seed", type=seed_number, default=0)
    simulate.add_argument("--days", type=day_span, default=8.0,
                          help="spread the requests' times over this many days (default 8)")
    simulate.set_defaults(run=cmd_simulate)

    monitor = commands.add_parser("monitor", parents=[common],
                                  help="the live recommendation and drift of a scope")
    monitor.add_argument("--scope", required=True)
    monitor.set_defaults(run=cmd_monitor)

    promote = commands.add_parser("promote", parents=[common],
                                  help="move a model to a stage (gated, with a reason)")
    promote.add_argument("--scope", required=True)
    promote.add_argument("--model", required=True)
    promote.add_argument("--stage", choices=PROMOTE_TO, default="production")
    promote.add_argument("--reason", required=True, help="why (recorded; required)")
    promote.add_argument("--user", type=user_name, default=None,
                         help="who decides (default: $PROMOTION_USER, else the account name)")
    promote.add_argument("--override-gates", action="store_true",
                         help="move even if gates fail (recorded as an override)")
    add_request_answers(promote)
    promote.set_defaults(run=cmd_promote)

    demote = commands.add_parser("demote", parents=[common],
                                 help="archive a model (out of the promoted set)")
    demote.add_argument("--scope", required=True)
    demote.add_argument("--model", required=True)
    demote.add_argument("--reason", required=True)
    demote.add_argument("--user", type=user_name, default=None)
    demote.set_defaults(run=cmd_demote)

    listing = commands.add_parser("list", parents=[common], help="models by stage")
    listing.add_argument("--scope", required=True)
    listing.add_argument("--stage", choices=STAGES)
    listing.set_defaults(run=cmd_list)

    history = commands.add_parser("history", parents=[common], help="every transition")
    history.add_argument("--scope", required=True)
    history.add_argument("--json", action="store_true")
    history.set_defaults(run=cmd_history)

    rollback = commands.add_parser("rollback", parents=[common],
                                   help="restore the previous champion")
    rollback.add_argument("--scope", required=True)
    rollback.add_argument("--reason", required=True)
    rollback.add_argument("--user", type=user_name, default=None)
    add_request_answers(rollback)
    rollback.set_defaults(run=cmd_rollback)

    requests = commands.add_parser("requests", parents=[common],
                                   help="changes waiting for a second person's approval")
    requests.add_argument("--scope", required=True)
    requests.add_argument("--all", action="store_true", help="decided ones too")
    requests.add_argument("--json", action="store_true")
    requests.set_defaults(run=cmd_requests)
    for name, run, verb in (("approve", cmd_approve, "approve and carry out"),
                            ("reject", cmd_reject, "reject")):
        decide = commands.add_parser(name, parents=[common],
                                     help=f"{verb} a pending request (another approver's)")
        decide.add_argument("--scope", required=True)
        decide.add_argument("--id", required=True, type=int, help="the request's number")
        decide.add_argument("--reason", required=True)
        decide.add_argument("--user", type=user_name, default=None)
        decide.set_defaults(run=run)

    roles = commands.add_parser("roles", parents=[common],
                                help="team mode: list roles, or change one (admins)")
    change = roles.add_mutually_exclusive_group()
    change.add_argument("--grant", type=grant_pair, metavar="SUBJECT=ROLE",
                        help="e.g. ana@example.com=analyst, @example.com=viewer, cli:ana=admin")
    change.add_argument("--revoke", metavar="SUBJECT")
    roles.add_argument("--user", type=user_name, default=None)
    roles.set_defaults(run=cmd_roles)

    mlflow_import = commands.add_parser(
        "mlflow-import", parents=[common],
        help="bring registered MLflow model versions into a scope (needs requirements-mlflow.txt)")
    mlflow_import.add_argument("--scope", required=True)
    mlflow_import.add_argument("--tracking-uri", default=None,
                               help="MLflow tracking URI (default: scope.json field 'mlflow')")
    mlflow_import.add_argument("--model", default=None,
                               help="registered model name (default: scope.json field 'mlflow')")
    which = mlflow_import.add_mutually_exclusive_group(required=True)
    which.add_argument("--versions", type=version_list, help="e.g. 3,4,5")
    which.add_argument("--all", action="store_true", help="every version that is READY")
    mlflow_import.add_argument("--group", choices=GROUPS, default=None,
                               help="group when neither a 'group' tag nor the estimator tells")
    mlflow_import.add_argument("--trust-pickle", action="store_true",
                               help="also import versions stored as pickle/cloudpickle (loading "
                                    "runs any code they hold; only for a source you trust)")
    mlflow_import.set_defaults(run=cmd_mlflow_import)

    mlflow_sync = commands.add_parser(
        "mlflow-sync", parents=[common],
        help="set the scope's champion alias and stage tags in MLflow (retries a pending sync)")
    mlflow_sync.add_argument("--scope", required=True)
    mlflow_sync.set_defaults(run=cmd_mlflow_sync)

    gates = commands.add_parser("gates", parents=[common],
                                help="gate report of a model against the champion")
    gates.add_argument("--scope", required=True)
    gates.add_argument("--model", required=True)
    gates.add_argument("--stage", choices=tuple(GATED_STAGES), default="champion")
    gates.set_defaults(run=cmd_gates)

    migrate = commands.add_parser(
        "migrate", parents=[common],
        help="bring the store's schema to the newest revision (opening the store does this "
             "too; run it ahead when the app's database role may not change tables)")
    migrate.add_argument("--check", action="store_true",
                         help="only report; exit 1 when an upgrade is due")
    migrate.set_defaults(run=cmd_migrate)

    schemas = commands.add_parser("schemas", help="write the export files' JSON Schemas")
    schemas.add_argument("--out", type=Path, default=Path("schemas"))
    schemas.set_defaults(run=cmd_schemas, models_dir=None)
    return parser


def replica_id(text: str) -> str:
    from ..engine._predlog import REPLICA_ID

    if not REPLICA_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"'{text}' is not a replica id (letters, digits, "
                                         "'.', '_' and '-', at most 64)")
    return text


def version_list(text: str) -> list[int]:
    """``--versions 3,4,5``: registered model version numbers."""
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of version numbers like "
                                         "3,4,5") from None
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of version numbers like "
                                         "3,4,5")
    return numbers


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status (a user error is one line on stderr, status 2)."""
    args = build_parser().parse_args(argv)
    if args.models_dir is None and args.command != "schemas":
        args.models_dir = models_dir()
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        if args.command not in (*MAKE_MODELS_ROOT, "schemas"):
            existing_models_root(args.models_dir, args.command)
        return run(args)
    except PromotionError as err:
        print(f"error: {err}", file=sys.stderr)
        return USER_ERROR
    except OSError as err:  # e.g. --output into a folder that does not exist
        where = f"{err.filename}: " if err.filename else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

