"""``python -m promotion <command>``: the app's actions for operators and scripts.

Bad input exits with status 2 and one line on stderr; no traceback for a user error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ._config import GROUPS
from ._discovery import load_scope
from ._errors import InvalidInputError, PromotionError
from ._evaluation import Progress
from ._gates import gate_report
from ._jsonio import dumps, write_atomic
from ._lifecycle import champion_of, demote, rollback, stage_of
from ._scoring import Leaderboard
from ._service import build_leaderboard, change_stage, default_models_dir, scope_state
from ._store import STAGES, Store, Transition, open_store

if TYPE_CHECKING:
    import pandas as pd

USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        self.exit(USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
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
    demo.set_defaults(run=_cmd_demo)

    board = commands.add_parser("leaderboard", parents=[common],
                                help="rank a scope's models (evaluating what changed)")
    board.add_argument("--scope", required=True)
    board.add_argument("--json", action="store_true", help="print JSON instead of a table")
    board.set_defaults(run=_cmd_leaderboard)

    scopes = commands.add_parser("scopes", parents=[common], help="list the scopes")
    scopes.set_defaults(run=_cmd_scopes)

    export = commands.add_parser("export", parents=[common],
                                 help="write the leaderboard and the promoted models' cards")
    export.add_argument("--scope", required=True)
    export.add_argument("--weights", choices=("score", "equal", "greedy"), default="score",
                        help="ensemble weighting method (default: score)")
    export.set_defaults(run=_cmd_export)

    predict = commands.add_parser("predict", parents=[common],
                                  help="ensemble predictions from the newest export")
    predict.add_argument("--scope", required=True)
    predict.add_argument("--input", required=True, type=Path, help="CSV of feature rows")
    predict.add_argument("--output", type=Path, help="CSV to write (default: stdout)")
    predict.add_argument("--no-log", action="store_true",
                         help="do not write the prediction log (default: logged)")
    predict.set_defaults(run=_cmd_predict)

    deploy = commands.add_parser("deploy", parents=[common],
                                 help="choose the serving mode (recorded) and export it")
    deploy.add_argument("--scope", required=True)
    deploy.add_argument("--mode", required=True, choices=("ensemble", "champion", "canary"))
    deploy.add_argument("--canary", help="canary mode: the challenger")
    deploy.add_argument("--share", type=float, help="canary mode: share of requests (0-1)")
    deploy.add_argument("--reason", required=True)
    deploy.add_argument("--user", default=None)
    deploy.set_defaults(run=_cmd_deploy)

    outcomes = commands.add_parser("outcomes", parents=[common],
                                   help="join true labels (request_id,label CSV) to the log")
    outcomes.add_argument("--scope", required=True)
    outcomes.add_argument("--file", required=True, type=Path)
    outcomes.set_defaults(run=_cmd_outcomes)

    simulate = commands.add_parser("simulate", parents=[common],
                                   help="replay holdout rows through the engine, with outcomes")
    simulate.add_argument("--scope", required=True)
    simulate.add_argument("--requests", required=True, type=int)
    simulate.add_argument("--drift", help="FEATURE:SHIFT, shift in standard deviations")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--days", type=float, default=8.0,
                          help="spread the requests' times over this many days (default 8)")
    simulate.set_defaults(run=_cmd_simulate)

    monitor = commands.add_parser("monitor", parents=[common],
                                  help="the live recommendation and drift of a scope")
    monitor.add_argument("--scope", required=True)
    monitor.set_defaults(run=_cmd_monitor)

    promote = commands.add_parser("promote", parents=[common],
                                  help="move a model to a stage (gated, with a reason)")
    promote.add_argument("--scope", required=True)
    promote.add_argument("--model", required=True)
    promote.add_argument("--stage", choices=("production", "champion", "candidate"),
                         default="production")
    promote.add_argument("--reason", required=True, help="why (recorded; required)")
    promote.add_argument("--user", default=None, help="who decides (default: $USER)")
    promote.add_argument("--override-gates", action="store_true",
                         help="move even if gates fail (recorded as an override)")
    promote.set_defaults(run=_cmd_promote)

    demote = commands.add_parser("demote", parents=[common],
                                 help="archive a model (out of the promoted set)")
    demote.add_argument("--scope", required=True)
    demote.add_argument("--model", required=True)
    demote.add_argument("--reason", required=True)
    demote.add_argument("--user", default=None)
    demote.set_defaults(run=_cmd_demote)

    listing = commands.add_parser("list", parents=[common], help="models by stage")
    listing.add_argument("--scope", required=True)
    listing.add_argument("--stage", choices=STAGES)
    listing.set_defaults(run=_cmd_list)

    history = commands.add_parser("history", parents=[common], help="every transition")
    history.add_argument("--scope", required=True)
    history.add_argument("--json", action="store_true")
    history.set_defaults(run=_cmd_history)

    rollback = commands.add_parser("rollback", parents=[common],
                                   help="restore the previous champion")
    rollback.add_argument("--scope", required=True)
    rollback.add_argument("--reason", required=True)
    rollback.add_argument("--user", default=None)
    rollback.set_defaults(run=_cmd_rollback)

    mlflow_import = commands.add_parser(
        "mlflow-import", parents=[common],
        help="bring registered MLflow model versions into a scope (needs requirements-mlflow.txt)")
    mlflow_import.add_argument("--scope", required=True)
    mlflow_import.add_argument("--tracking-uri", default=None,
                               help="MLflow tracking URI (default: scope.json field 'mlflow')")
    mlflow_import.add_argument("--model", default=None,
                               help="registered model name (default: scope.json field 'mlflow')")
    which = mlflow_import.add_mutually_exclusive_group(required=True)
    which.add_argument("--versions", type=_version_list, help="e.g. 3,4,5")
    which.add_argument("--all", action="store_true", help="every version that is READY")
    mlflow_import.add_argument("--group", choices=GROUPS, default=None,
                               help="group when neither a 'group' tag nor the estimator tells")
    mlflow_import.add_argument("--trust-pickle", action="store_true",
                               help="also import versions stored as pickle/cloudpickle (loading "
                                    "runs any code they hold; only for a source you trust)")
    mlflow_import.set_defaults(run=_cmd_mlflow_import)

    mlflow_sync = commands.add_parser(
        "mlflow-sync", parents=[common],
        help="set the scope's champion alias and stage tags in MLflow (retries a pending sync)")
    mlflow_sync.add_argument("--scope", required=True)
    mlflow_sync.set_defaults(run=_cmd_mlflow_sync)

    gates = commands.add_parser("gates", parents=[common],
                                help="gate report of a model against the champion")
    gates.add_argument("--scope", required=True)
    gates.add_argument("--model", required=True)
    gates.add_argument("--stage", choices=("production", "champion"), default="champion")
    gates.set_defaults(run=_cmd_gates)

    migrate = commands.add_parser(
        "migrate", parents=[common],
        help="bring the store's schema to the newest revision (opening the store does this "
             "too; run it ahead when the app's database role may not change tables)")
    migrate.add_argument("--check", action="store_true",
                         help="only report; exit 1 when an upgrade is due")
    migrate.set_defaults(run=_cmd_migrate)

    schemas = commands.add_parser("schemas", help="write the export files' JSON Schemas")
    schemas.add_argument("--out", type=Path, default=Path("schemas"))
    schemas.set_defaults(run=_cmd_schemas, models_dir=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.models_dir is None:
        args.models_dir = default_models_dir()
    run: Callable[[argparse.Namespace], int] = args.run
    try:
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


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import build_demo_zoo  # heavy imports only for this command

    started = time.perf_counter()
    build_demo_zoo(args.models_dir, force=args.force, progress=_say)
    _say(f"demo zoo ready in {args.models_dir} ({time.perf_counter() - started:.1f}s)")
    if args.monitoring:
        from ._demo import build_demo_monitoring

        _with_store(args, lambda store: build_demo_monitoring(args.models_dir, store,
                                                              progress=_say))
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    store = open_store(args.models_dir)
    try:
        board, evaluation = build_leaderboard(args.models_dir, args.scope, store,
                                              progress=_progress_printer(args.scope))
    finally:
        store.close()
    _say(f"{args.scope}: {evaluation.evaluated} model(s) evaluated, "
         f"{len(evaluation.models) - evaluation.evaluated} from cache, "
         f"{evaluation.seconds:.1f}s")
    if args.json:
        print(dumps(board.to_dict()))
    else:
        print(format_leaderboard(board))
    return 0


def _cmd_scopes(args: argparse.Namespace) -> int:
    from ._discovery import ScopeProblem, discover_scopes

    found = discover_scopes(args.models_dir)
    if not found:
        _say(f"no scopes under {args.models_dir}; build the demo: python -m promotion demo")
    for item in found:
        if isinstance(item, ScopeProblem):
            print(f"{item.name}\tBROKEN\t{item.error}")
        else:
            print(f"{item.name}\t{item.task}\t{len(item.models)} models")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ._service import export_scope

    store = open_store(args.models_dir)
    try:
        paths = export_scope(args.models_dir, args.scope, store, args.weights)
    finally:
        store.close()
    for card in paths.cards:
        _say(f"{card.model_name}: weight {card.ensemble_weight:.4f} ({card.weights_method})")
    print(paths.leaderboard)
    print(paths.model_cards)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from .engine import PredictionEngine

    engine = PredictionEngine.load(args.scope, args.models_dir, log=not args.no_log)
    frame = _read_rows(args.input)
    ids = frame["request_id"].astype(str).tolist() if "request_id" in frame.columns else None
    try:
        served = engine.serve(frame, ids)
    finally:
        engine.close()
    proba = served.proba
    out = pd.DataFrame(proba, columns=[f"proba_{c}" for c in engine.classes], index=frame.index)
    out.insert(0, "prediction", [engine.classes[i] for i in proba.argmax(axis=1)])
    out.insert(0, "served_by", served.served_by)
    out.insert(0, "request_id", served.request_ids)
    if args.output:
        out.to_csv(args.output, index=False)
        _say(f"{len(out)} rows -> {args.output} (export {engine.source.name})")
    else:
        out.to_csv(sys.stdout, index=False)
    return 0


def _cmd_deploy(args: argparse.Namespace) -> int:
    from ._service import deploy

    def run(store: Store) -> int:
        record, paths = deploy(args.models_dir, args.scope, store, args.mode, actor=_user(args),
                               reason=args.reason, canary=args.canary,
                               canary_share=args.share)
        print("nothing changed" if record is None else
              f"{args.scope}: {record.mode} mode"
              + (f", canary {record.canary_model} at {record.canary_share:.0%}"
                 if record.mode == "canary" else "") + f", by {record.actor}")
        print(paths.model_cards)
        return 0
    return _with_store(args, run)


def _cmd_outcomes(args: argparse.Namespace) -> int:
    from ._monitoring import read_labels, record_outcomes

    load_scope(args.models_dir, args.scope)
    report = record_outcomes(args.models_dir, args.scope, read_labels(args.file),
                             source=str(args.file))
    print(report.summary())
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ._monitoring import parse_drift, simulate

    drift = parse_drift(args.drift) if args.drift else None
    report = simulate(args.models_dir, args.scope, args.requests, drift=drift, seed=args.seed,
                      days=args.days)
    print(f"{report.requests} requests served and logged, {report.first_at:%Y-%m-%d %H:%M} to "
          f"{report.last_at:%Y-%m-%d %H:%M} UTC"
          + (f", feature {report.drifted} drifted" if report.drifted else ""))
    print(report.outcomes.summary())
    return 0


def _cmd_monitor(args: argparse.Namespace) -> int:
    from ._monitoring import drift, load_live, recommend
    from .engine import newest_cards_file, read_cards

    scope = load_scope(args.models_dir, args.scope)
    live = load_live(args.models_dir, args.scope)
    # The cards are all the advice needs: no model is loaded (nor unpickled) to read them.
    cards = read_cards(newest_cards_file(args.scope, args.models_dir))
    advice = recommend(live, cards, scope.task)
    print(f"{args.scope}: {len(live.requests)} requests logged, {(live.y >= 0).sum()} outcomes")
    print(f"recommendation: {advice.action} ({advice.rule})"
          + (f"; apply: {advice.plan}" if advice.plan else ""))
    for row in drift(args.models_dir, args.scope, live).itertuples():
        print(f"  {row.feature:<24} PSI {row.psi:.3f}{'  DRIFT' if row.flagged else ''}")
    return 0


def _user(args: argparse.Namespace) -> str:
    import getpass
    import os

    if args.user or os.environ.get("PROMOTION_USER"):
        return args.user or os.environ["PROMOTION_USER"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no account name in this environment
        raise InvalidInputError("who is deciding? Hint: pass --user NAME") from None


def _with_store(args: argparse.Namespace, action: Callable[[Store], int]) -> int:
    store = open_store(args.models_dir)
    try:
        return action(store)
    finally:
        store.close()


def _cmd_promote(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        started = datetime.now(UTC)
        moved = change_stage(args.models_dir, args.scope, store, args.model, args.stage,
                             actor=_user(args), reason=args.reason,
                             override=args.override_gates)
        _print_move(moved, args.model, stage_of(store.stages(args.scope), args.model))
        _print_sync(args, store, started)
        return 0
    return _with_store(args, run)


def _cmd_demote(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        started = datetime.now(UTC)
        state = scope_state(args.models_dir, args.scope, store)
        moved = demote(store, state.scope, state.evaluation, state.board, args.model,
                       actor=_user(args), reason=args.reason)
        _print_move(moved, args.model, stage_of(store.stages(args.scope), args.model))
        _print_sync(args, store, started)
        return 0
    return _with_store(args, run)


def _print_sync(args: argparse.Namespace, store: Store, started: datetime) -> None:
    """After a move: what the MLflow mirror did, or a warning that it is behind."""
    if load_scope(args.models_dir, args.scope).config.mlflow is None:
        return
    state = store.sync_state(args.scope)
    if state is None:
        return
    if state.pending:
        _say(f"warning: MLflow mirror pending since {state.pending_since:%Y-%m-%d %H:%M:%S} "
             f"UTC ({state.detail}); the decision above is saved. Retried on the next "
             f"transition or by: python -m promotion mlflow-sync --scope {args.scope}")
    elif state.attempted_at >= started:
        _say(f"mlflow: {state.detail}")


def _version_list(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of version numbers like "
                                         "3,4,5") from None
    if not numbers or min(numbers) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of version numbers like "
                                         "3,4,5")
    return numbers


def _cmd_mlflow_import(args: argparse.Namespace) -> int:
    from ._mlflow import import_mlflow_versions

    done = import_mlflow_versions(args.models_dir, args.scope, registered_model=args.model,
                                  tracking_uri=args.tracking_uri,
                                  versions=None if args.all else args.versions,
                                  group=args.group, trust_pickle=args.trust_pickle)
    for item in done:
        if item.action == "refused":
            print(f"error: {item.reason}", file=sys.stderr)
        else:
            print(item.describe())
    if any(item.action in ("imported", "replaced") for item in done):
        _say(f"evaluate them: python -m promotion leaderboard --scope {args.scope}")
    return USER_ERROR if any(item.action == "refused" for item in done) else 0


def _cmd_mlflow_sync(args: argparse.Namespace) -> int:
    from ._mlflow import sync_mlflow

    def run(store: Store) -> int:
        report = sync_mlflow(store, load_scope(args.models_dir, args.scope))
        if report.pending:
            _say(f"error: {report.detail} (still pending; retry later)")
            return 1
        print(report.detail)
        return 0
    return _with_store(args, run)


def _print_move(moved: Transition | None, model: str, stage_now: str) -> None:
    if moved is None:
        print(f"{model} is {stage_now}: nothing changed")
        return
    flag = " (gates overridden)" if moved.overridden else ""
    print(f"{moved.model_name}: {moved.from_stage} -> {moved.to_stage}{flag}, by {moved.actor} "
          f"at {moved.at:%Y-%m-%d %H:%M:%S} UTC, version {str(moved.model_sha256)[:12]}")


def _cmd_list(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        scope = load_scope(args.models_dir, args.scope)
        stages = store.stages(scope.name)
        for entry in scope.models:
            record = stages.get(entry.name)
            stage = record.stage if record else "development"
            if args.stage and stage != args.stage:
                continue
            since = f"\t{record.updated_at:%Y-%m-%d %H:%M} by {record.updated_by}" if record \
                else ""
            print(f"{entry.name}\t{stage}{since}")
        return 0
    return _with_store(args, run)


def _cmd_history(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        load_scope(args.models_dir, args.scope)
        entries = store.history(args.scope)
        if args.json:
            print(dumps([vars(t) | {"at": t.at.isoformat()} for t in entries]))
            return 0
        lines: list[tuple[datetime, str]] = []
        for t in entries:
            flag = " [gates overridden]" if t.overridden else ""
            lines.append((t.at, f"{t.at:%Y-%m-%d %H:%M:%S}  {t.model_name}: {t.from_stage} -> "
                          f"{t.to_stage}  by {t.actor}  ({t.action}{flag}) "
                          f"{str(t.model_sha256)[:12]}  {t.reason}"))
        for d in store.deployments(args.scope):
            canary = f" canary {d.canary_model} at {d.canary_share:.0%}" if d.canary_model \
                else ""
            lines.append((d.at, f"{d.at:%Y-%m-%d %H:%M:%S}  deployment: {d.mode} mode{canary}"
                          f"  by {d.actor}  {d.reason}"))
        # One story in time order (stable: a move and the decision it caused stay in order).
        for _, line in sorted(lines, key=lambda entry: entry[0]):
            print(line)
        return 0
    return _with_store(args, run)


def _cmd_rollback(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        started = datetime.now(UTC)
        moved = rollback(store, load_scope(args.models_dir, args.scope), actor=_user(args),
                         reason=args.reason)
        _print_move(moved, moved.model_name, "champion")
        _print_sync(args, store, started)
        return 0
    return _with_store(args, run)


def _cmd_gates(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        state = scope_state(args.models_dir, args.scope, store)
        state.scope.model(args.model)
        report = gate_report(args.model, args.stage, state.board, state.evaluation,
                             state.scope.config.gates, champion_of(store.stages(args.scope)))
        print(f"{args.model} -> {args.stage}, against {report.baseline}:")
        for gate in report.gates:
            print(f"  {'PASS' if gate.passed else 'FAIL'}  {gate.name:<14} {gate.detail}")
        print("all gates pass" if report.passed else "blocked unless overridden with a reason")
        return 0 if report.passed else 1
    return _with_store(args, run)


def _cmd_migrate(args: argparse.Namespace) -> int:
    from ._store import schema_status

    before = schema_status(args.models_dir)
    shown = before.revision or "no tables"
    if not before.known:
        from ._migrations import unknown_revision_message

        print(f"error: {before.where}: {unknown_revision_message(shown)}", file=sys.stderr)
        return USER_ERROR
    if before.current:
        print(f"{before.where}: at revision {before.head}, nothing to do")
        return 0
    if args.check:
        print(f"{before.where}: at {shown}; revision {before.head} is due "
              "(python -m promotion migrate)")
        return 1
    open_store(args.models_dir).close()
    after = schema_status(args.models_dir)
    print(f"{after.where}: {shown} -> revision {after.revision}")
    return 0


def _cmd_schemas(args: argparse.Namespace) -> int:
    from ._cards import json_schemas

    args.out.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        write_atomic(args.out / name, json.dumps(schema, indent=2, sort_keys=True) + "\n")
        print(args.out / name)
    return 0


def _read_rows(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file is missing (argument --input)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{path}: not a readable CSV ({err})") from None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _progress_printer(scope: str) -> Progress:
    def report(done: int, total: int, name: str, cached: bool) -> None:
        if not cached:
            _say(f"{scope}: evaluated {done}/{total} {name}")
    return report


def format_leaderboard(board: Leaderboard) -> str:
    """A fixed-width text table of the leaderboard."""
    key = "top_5_accuracy" if board.task == "multiclass" else "roc_auc"
    header = (f"{'rank':>4}  {'model':<28} {'group':<8} {'composite':>9}  {'95% interval':<15} "
              f"{'health':>6}  {key:>14}  {'p95 ms':>7}  note")
    lines = [f"scope {board.scope} ({board.task}, {board.n_rows} holdout rows)", header]
    for row in board.rows:
        if not row.ok:
            lines.append(f"{'-':>4}  {row.model_name[:28]:<28} {row.group:<8} {'FAILED':>9}  "
                         f"{row.reason}")
            continue
        low, high = row.composite_interval or (0.0, 0.0)
        note = "tied with leader" if row.tied_with_leader else ("leader" if row.rank == 1 else "")
        lines.append(
            f"{row.rank:>4}  {row.model_name[:28]:<28} {row.group:<8} "
            f"{row.composite_score:>9.4f}  [{low:.3f}, {high:.3f}]  {row.health_score:>6.3f}  "
            f"{row.metrics.get(key, float('nan')):>14.4f}  "
            f"{row.metrics.get('latency_p95_ms', float('nan')):>7.2f}  {note}"
        )
    return "\n".join(lines)
