"""Serving a scope over HTTP (ASGI on uvicorn), following its exports as decisions land."""

from ._app import PredictRequest, create_app, request_input, served_app
from ._follow import POLL_S, FollowedEngine

__all__ = ["POLL_S", "FollowedEngine", "PredictRequest", "create_app", "request_input",
           "served_app"]
