"""Commands about what production serves: ``export``, ``predict``, ``outcomes``, ``simulate``
and ``monitor``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .._jsonio import temporary_beside
from ..scopes._discovery import load_scope
from ..store._sql import open_store
from ._common import say

if TYPE_CHECKING:
    from ..engine._checks import MemberNote
    from ..engine._engine import PredictionEngine
    from ..engine._requests import RequestsCsv


def cmd_export(args: argparse.Namespace) -> int:
    from ..usecases import export_scope

    store = open_store(args.models_dir)
    try:
        paths = export_scope(args.models_dir, args.scope, store, args.weights)
    finally:
        store.close()
    for card in paths.cards:
        say(f"{card.model_name}: weight {card.ensemble_weight:.4f} ({card.weights_method})"
            + (f"; {card.compiled_note}" if card.compiled_note else ""))
    print(paths.leaderboard)
    print(paths.model_cards)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from ..engine._engine import PredictionEngine
    from ..engine._requests import RequestsCsv

    engine = PredictionEngine.load(args.scope, args.models_dir, log=not args.no_log)
    try:
        # The whole file's shape first: a ragged row or a repeated id fails before any row
        # is served or logged.
        requests = RequestsCsv.check(args.input, engine.feature_names,
                                       engine.text_features)
        with _output(args.output) as out:
            notes = _serve_in_batches(engine, requests, out)
    finally:
        engine.close()
    for note in notes:
        say(f"warning: {note.message}")
    if args.output:
        say(f"{requests.rows} rows -> {args.output} (export {engine.source.name})")
    return 0


def _serve_in_batches(engine: PredictionEngine, requests: RequestsCsv, out: IO[str]
                      ) -> list[MemberNote]:
    """Serve the file batch by batch, writing each batch's answers as soon as it is served:
    memory holds one batch, whatever the file's size. Returns the members' notes, added up
    over the batches."""
    import pandas as pd

    # A regression export's prediction is the served value; it has no probability columns.
    columns = ["request_id", "served_by", "prediction",
               *[f"proba_{c}" for c in engine.classes], "failed_models"]
    pd.DataFrame(columns=columns).to_csv(out, index=False)
    notes: dict[tuple[str, str], MemberNote] = {}
    for batch in requests.batches():
        served = engine.serve(batch.features, batch.request_ids)
        if engine.regression:
            answer = pd.DataFrame({"prediction": served.predicted})
        else:
            answer = pd.DataFrame(served.proba, columns=columns[3:-1])
            answer.insert(0, "prediction", engine.decide(served.proba))
        answer.insert(0, "served_by", served.served_by)
        answer.insert(0, "request_id", served.request_ids)
        answer["failed_models"] = [";".join(names) for names in served.failed_models]
        answer.to_csv(out, index=False, header=False)
        for note in served.notes:
            key = (note.model_name, note.kind)
            notes[key] = notes[key].plus(note) if key in notes else note
    # Each note counts the rows of every batch served, not only of the batches it was in.
    return [replace(note, total=requests.rows) for note in notes.values()]


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """Where ``predict`` writes: stdout, or ``path`` through a temporary file renamed into
    place once every row is written (a failed run leaves no partial file)."""
    if path is None:
        yield sys.stdout
        return
    try:
        fd, tmp = temporary_beside(path)
    except OSError as err:  # e.g. the folder does not exist: name the output, not the temp
        raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
    print(report.summary())
    print(report.outcomes.summary())
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from ..engine._cards import newest_cards_file, read_cards
    from ..monitoring import drift, load_live, recommend

    scope = load_scope(args.models_dir, args.scope)
    live = load_live(args.models_dir, args.scope)
    # The cards are all the advice needs: no model is loaded (nor unpickled) to read them.
    cards = read_cards(newest_cards_file(args.scope, args.models_dir))
    advice = recommend(live, cards, scope.task)
    print(f"{args.scope}: {len(live.requests)} requests logged, {live.labelled.sum()} outcomes")
    print(f"recommendation: {advice.action} ({advice.rule})"
          + (f"; apply: {advice.plan}" if advice.plan else ""))
    for row in drift(args.models_dir, args.scope, live).itertuples():
        shown = f"PSI {row.psi:.3f}" if row.psi == row.psi else row.verdict  # NaN: no verdict
        print(f"  {row.feature:<24} {shown}{'  DRIFT' if row.flagged else ''}")
    return 0



def cmd_serve(args: argparse.Namespace) -> int:
    import socket

    try:
        import uvicorn

        from ..serving import served_app
    except ImportError as err:  # pragma: no cover - pinned in requirements.txt
        from ..errors import MissingDependencyError

        raise MissingDependencyError(f"serve needs {err.name} (pip install -r "
                                     "requirements.txt)") from None
    load_scope(args.models_dir, args.scope)
    # The export first (a scope never exported is one line), then the port (one in use is
    # one line too, not uvicorn's own report).
    app, followed = served_app(args.scope, args.models_dir, replica=args.replica,
                               log=not args.no_log)
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY on accepted connections only then, and
    # without it a response's headers and body wait ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
        sock.listen(2048)  # connections wait from now on, while uvicorn starts
    except OSError as err:
        followed.stop()
        sock.close()
        raise OSError(err.errno, err.strerror, f"{args.host}:{args.port}") from None
    say(f"serving {args.scope} (export {followed.current.source.name}) on "
        f"http://{args.host}:{sock.getsockname()[1]}")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        followed.stop()
        followed.current.close()
    return 0
