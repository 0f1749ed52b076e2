"""Commands about what production serves: ``export``, ``predict``, ``outcomes``, ``simulate``
and ``monitor``."""

from __future__ import annotations

import argparse
import sys

from ..scopes._discovery import load_scope
from ..store._sql import open_store
from ._common import read_rows, say


def cmd_export(args: argparse.Namespace) -> int:
    from ..usecases import export_scope

    store = open_store(args.models_dir)
    try:
        paths = export_scope(args.models_dir, args.scope, store, args.weights)
    finally:
        store.close()
    for card in paths.cards:
        say(f"{card.model_name}: weight {card.ensemble_weight:.4f} ({card.weights_method})")
    print(paths.leaderboard)
    print(paths.model_cards)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..engine._engine import PredictionEngine

    engine = PredictionEngine.load(args.scope, args.models_dir, log=not args.no_log)
    frame = read_rows(args.input)
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
        say(f"{len(out)} rows -> {args.output} (export {engine.source.name})")
    else:
        out.to_csv(sys.stdout, index=False)
    return 0


def cmd_outcomes(args: argparse.Namespace) -> int:
    from ..monitoring import read_labels, record_outcomes

    load_scope(args.models_dir, args.scope)
    report = record_outcomes(args.models_dir, args.scope, read_labels(args.file),
                             source=str(args.file))
    print(report.summary())
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from ..monitoring import parse_drift, simulate

    drift = parse_drift(args.drift) if args.drift else None
    report = simulate(args.models_dir, args.scope, args.requests, drift=drift, seed=args.seed,
                      days=args.days)
    print(f"{report.requests} requests served and logged, {report.first_at:%Y-%m-%d %H:%M} to "
          f"{report.last_at:%Y-%m-%d %H:%M} UTC"
          + (f", feature {report.drifted} drifted" if report.drifted else ""))
    print(report.outcomes.summary())
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from ..engine._engine import newest_cards_file, read_cards
    from ..monitoring import drift, load_live, recommend

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

