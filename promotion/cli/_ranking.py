"""Commands that evaluate and rank: ``scopes``, ``leaderboard`` and ``gates``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from .._jsonio import dumps
from ..export._build import leaderboard_export
from ..lifecycle._stages import champion_of
from ..scoring._composite import Leaderboard
from ..scoring._gates import gate_report
from ..store._abstract import Store
from ..usecases import scope_state
from ..vocabulary import key_metric
from ._common import progress_printer, say, with_store


def cmd_scopes(args: argparse.Namespace) -> int:
    from ..scopes._discovery import ScopeProblem, discover_scopes

    found = discover_scopes(args.models_dir)
    if not found:
        say(f"no scopes under {args.models_dir}; build the demo: python -m promotion demo")
    for item in found:
        if isinstance(item, ScopeProblem):
            print(f"{item.name}\tBROKEN\t{item.error}")
        else:
            print(f"{item.name}\t{item.task}\t{len(item.models)} models")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        state = scope_state(args.models_dir, args.scope, store,
                            progress=progress_printer(args.scope))
        evaluation = state.evaluation
        say(f"{args.scope}: {evaluation.evaluated} model(s) evaluated, "
            f"{len(evaluation.models) - evaluation.evaluated} from cache, "
            f"{evaluation.seconds:.1f}s")
        if args.json:  # the exported leaderboard file's document, by the export's own builder
            document = leaderboard_export(state.scope, evaluation, state.board,
                                          store.stages(args.scope), datetime.now(UTC))
            print(dumps(document.model_dump(mode="json")))
        else:
            print(format_leaderboard(state.board))
        return 0
    return with_store(args, run)


def format_leaderboard(board: Leaderboard) -> str:
    """A fixed-width text table of the leaderboard."""
    key = key_metric(board.task)
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


def cmd_gates(args: argparse.Namespace) -> int:
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
    return with_store(args, run)

