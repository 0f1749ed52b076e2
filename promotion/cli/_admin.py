"""Commands that set things up: ``demo``, ``migrate``, ``schemas``, and the MLflow bridge
(``mlflow-import``, ``mlflow-sync``)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .._jsonio import write_atomic
from ..scopes._discovery import load_scope
from ..store._abstract import Store
from ..store._sql import open_store
from ._common import USER_ERROR, say, with_store


def cmd_demo(args: argparse.Namespace) -> int:
    from demo import build_demo_zoo  # heavy imports only for this command

    started = time.perf_counter()
    build_demo_zoo(args.models_dir, force=args.force, progress=say)
    say(f"demo zoo ready in {args.models_dir} ({time.perf_counter() - started:.1f}s)")
    if args.monitoring:
        from demo import build_demo_monitoring

        with_store(args, lambda store: build_demo_monitoring(args.models_dir, store,
                                                              progress=say))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from ..store._sql import schema_status

    before = schema_status(args.models_dir)
    shown = before.revision or "no tables"
    if not before.known:
        from ..store._migrations import unknown_revision_message

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


def cmd_schemas(args: argparse.Namespace) -> int:
    from ..contract import json_schemas

    args.out.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        write_atomic(args.out / name, json.dumps(schema, indent=2, sort_keys=True) + "\n")
        print(args.out / name)
    return 0


def cmd_mlflow_import(args: argparse.Namespace) -> int:
    from ..integrations.mlflow import import_mlflow_versions

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
        say(f"evaluate them: python -m promotion leaderboard --scope {args.scope}")
    return USER_ERROR if any(item.action == "refused" for item in done) else 0


def cmd_mlflow_sync(args: argparse.Namespace) -> int:
    from ..integrations.mlflow import sync_mlflow

    def run(store: Store) -> int:
        report = sync_mlflow(store, load_scope(args.models_dir, args.scope))
        if report.pending:
            say(f"error: {report.detail} (still pending; retry later)")
            return 1
        print(report.detail)
        return 0
    return with_store(args, run)

