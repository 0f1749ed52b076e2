"""The HTTP face of the engine: ``POST /predict``, ``GET /health``, ``GET /export``.

``POST /predict`` answers ``{"classes", "probabilities", "served_by", "request_ids",
"export"}``; for a regression export ``"predictions"`` (one value per row) replaces
``"probabilities"`` and ``"classes"`` is empty.

Answers come from ``PredictionEngine.serve`` (modes, shadow scoring, the prediction log), on
the engine of the scope's newest export (``FollowedEngine``). Requests are answered one at a
time on the server's event loop: the engine, its members and the log's connection are used
from one thread, and on two cores a second thread would only take turns with it. Bad input is
a 4xx whose body is ``{"error": "<one line>"}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from ..engine._engine import PredictionEngine
from ..errors import PromotionError
from ._follow import FollowedEngine


class PredictRequest(BaseModel):
    """Rows to answer, each a mapping of feature name to value; optional request ids."""

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Any]]
    request_ids: list[str] | None = None


def create_app(followed: FollowedEngine) -> FastAPI:
    """The ASGI application answering with ``followed``'s current engine."""
    app = FastAPI(title=f"promotion: {followed.scope}", docs_url=None, redoc_url=None,
                  openapi_url=None)

    @app.exception_handler(RequestValidationError)
    async def _bad_body(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        if first.get("type") == "json_invalid":
            return _error(422, "request body: not valid JSON "
                               f"({first.get('ctx', {}).get('error', 'cannot be parsed')})")
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return _error(422, f"field '{where}': {first.get('msg')}" if where
                      else f"request body: {first.get('msg')}")

    @app.exception_handler(PromotionError)
    async def _refused(_: Request, err: PromotionError) -> JSONResponse:
        return _error(400, str(err))

    @app.post("/predict")
    async def predict(body: PredictRequest) -> dict[str, Any]:
        engine = followed.current  # taken once: the whole request is answered by this set
        served = engine.serve(request_input(body.rows, engine), body.request_ids)
        # A regression export answers one value per row ("predictions"), and no classes.
        answer = ({"predictions": served.predicted.tolist()} if engine.regression
                  else {"probabilities": served.proba.tolist()})
        return {"classes": engine.classes, **answer, "served_by": served.served_by,
                "request_ids": served.request_ids, "export": engine.source.name}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        engine = followed.current
        return {"status": "ok" if followed.problem is None else "degraded",
                "scope": followed.scope, "export": engine.source.name, "mode": engine.mode,
                "models": [m.card.model_name for m in engine.members],
                "compiled": [m.card.model_name for m in engine.members if m.card.compiled_path],
                "problem": followed.problem}

    @app.get("/export")
    async def export() -> list[dict[str, Any]]:
        return [card.model_dump(mode="json") for card in followed.current.cards]

    return app


def request_input(rows: list[dict[str, Any]], engine: PredictionEngine) -> Any:
    """The rows as the engine takes them: a float array in the cards' feature order when
    every value is a number (or null: missing), else a frame (text values)."""
    from ..errors import InvalidInputError

    names = engine.feature_names
    for k, row in enumerate(rows):
        if len(row) < len(names) or any(name not in row for name in names):
            missing = next(name for name in names if name not in row)
            raise InvalidInputError(f"field 'rows.{k}': feature '{missing}' is missing; each "
                                    f"row needs the cards' {len(names)} features")
    if not rows:
        return np.zeros((0, len(names)))
    try:
        return np.array([[row[name] for name in names] for row in rows], dtype=float)
    except (TypeError, ValueError):
        import pandas as pd

        return pd.DataFrame.from_records(rows, columns=names)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status)


def served_app(scope: str, models_dir: Path, *, replica: str | None = None,
               log: bool = True) -> tuple[FastAPI, FollowedEngine]:
    """The application for ``scope`` and its follower (started), logging to the replica's
    own prediction-log file."""
    from ..engine._predlog import PredictionLog, log_path

    followed = FollowedEngine(scope, models_dir, PredictionLog(
        log_path(models_dir, scope, replica)) if log else None).start()
    return create_app(followed), followed
