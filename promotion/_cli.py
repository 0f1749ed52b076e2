"""``python -m promotion <command>``: the app's actions for operators and scripts.

Bad input exits with status 2 and one line on stderr; no traceback for a user error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._errors import InvalidInputError, PromotionError
from ._evaluation import Progress
from ._jsonio import dumps, write_atomic
from ._scoring import Leaderboard
from ._service import build_leaderboard, default_models_dir
from ._store import open_store

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
    predict.set_defaults(run=_cmd_predict)

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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import build_demo_zoo  # heavy imports only for this command

    started = time.perf_counter()
    build_demo_zoo(args.models_dir, force=args.force, progress=_say)
    _say(f"demo zoo ready in {args.models_dir} ({time.perf_counter() - started:.1f}s)")
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

    engine = PredictionEngine.load(args.scope, args.models_dir)
    frame = _read_rows(args.input)
    proba = engine.predict_proba(frame)
    out = pd.DataFrame(proba, columns=[f"proba_{c}" for c in engine.classes], index=frame.index)
    out.insert(0, "prediction", engine.predict(frame))
    if args.output:
        out.to_csv(args.output, index=False)
        _say(f"{len(out)} rows -> {args.output} (export {engine.source.name})")
    else:
        out.to_csv(sys.stdout, index=False)
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
