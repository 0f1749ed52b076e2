"""Commands that decide and show decisions: ``promote``, ``demote``, ``rollback``, ``deploy``,
``list`` and ``history``. In a scope that asks for approval, ``promote``, ``rollback`` and
``deploy`` given the manual gates' answers file a request when the change needs one."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from .._jsonio import dumps
from ..lifecycle._transitions import rollback_plan
from ..scopes._discovery import load_scope
from ..store._abstract import Store
from ..store._entities import Change
from ..usecases import change_stage, demote_model, roll_back
from ..vocabulary import stage_of
from ._common import print_move, print_sync, user, with_store
from ._team import or_request, request_line


def cmd_promote(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        started = datetime.now(UTC)
        moved = change_stage(args.models_dir, args.scope, store, args.model, args.stage,
                             actor=user(args), reason=args.reason,
                             override=args.override_gates)
        print_move(moved, args.model, stage_of(store.stages(args.scope), args.model))
        print_sync(args, store, started)
        return 0
    change = Change("move", args.model, args.stage, args.override_gates)
    return with_store(args, lambda store: or_request(args, store, change,
                                                     lambda: run(store)))


def cmd_demote(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        started = datetime.now(UTC)
        moved = demote_model(args.models_dir, args.scope, store, args.model,
                             actor=user(args), reason=args.reason)
        print_move(moved, args.model, stage_of(store.stages(args.scope), args.model))
        print_sync(args, store, started)
        return 0
    return with_store(args, run)


def cmd_rollback(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        started = datetime.now(UTC)
        plan = rollback_plan(store, load_scope(args.models_dir, args.scope))
        moved = roll_back(args.models_dir, args.scope, store, actor=user(args),
                          reason=args.reason)
        print_move(moved, moved.model_name, "champion")
        print(f"rolled back: {plan.describe()}")
        print_sync(args, store, started)
        return 0
    return with_store(args, lambda store: or_request(args, store, Change("rollback"),
                                                     lambda: run(store)))


def cmd_deploy(args: argparse.Namespace) -> int:
    from ..usecases import deploy

    def run(store: Store) -> int:
        record, paths = deploy(args.models_dir, args.scope, store, args.mode, actor=user(args),
                               reason=args.reason, canary=args.canary,
                               canary_share=args.share)
        print("nothing changed" if record is None else
              f"{args.scope}: {record.mode} mode"
              + (f", canary {record.canary_model} at {record.canary_share:.0%}"
                 if record.mode == "canary" else "") + f", by {record.actor}")
        print(paths.model_cards)
        return 0
    change = Change("deployment", mode=args.mode, canary_model=args.canary,
                    canary_share=args.share)
    return with_store(args, lambda store: or_request(args, store, change,
                                                     lambda: run(store)))


def cmd_list(args: argparse.Namespace) -> int:
    def run(store: Store) -> int:
        scope = load_scope(args.models_dir, args.scope)
        stages = store.stages(scope.name)
        for entry in scope.models:
            stage = stage_of(stages, entry.name)
            if args.stage and stage != args.stage:
                continue
            record = stages.get(entry.name)
            since = f"\t{record.updated_at:%Y-%m-%d %H:%M} by {record.updated_by}" if record \
                else ""
            print(f"{entry.name}\t{stage}{since}")
        return 0
    return with_store(args, run)


def cmd_history(args: argparse.Namespace) -> int:
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
        for r in store.requests(args.scope):
            lines.append((r.requested_at, f"{r.requested_at:%Y-%m-%d %H:%M:%S}  request "
                                          f"{request_line(r, when=False)}"))
        # One story in time order (stable: a move and the decision it caused stay in order).
        for _, line in sorted(lines, key=lambda entry: entry[0]):
            print(line)
        return 0
    return with_store(args, run)

