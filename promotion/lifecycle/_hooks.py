"""After-commit subscriptions: who hears of stage moves once they are committed.

Every stage move is decided through :func:`deciding`; when the decision commits with moves
in it, each subscriber is called with a :class:`Committed`. A subscriber runs after the
commit, so it cannot undo the decision; one that fails is logged and the others still run. It
runs in the deciding thread, so a slow one (an MLflow server timing out) delays the caller's
return, never the commit.

The built-in subscribers (``BUILT_IN``: the MLflow mirror) are imported on the first publish,
so every way of deciding mirrors, whatever the caller imported, and importing the lifecycle
imports no integration. Others subscribe with :func:`subscribe`.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..scopes._discovery import Scope
from ..store._abstract import Decision, Store
from ..store._entities import Transition

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Committed:
    """A decision just committed: the store it is in, its scope, and its moves in order."""

    store: Store
    scope: Scope
    moves: tuple[Transition, ...]


Subscriber = Callable[[Committed], object]

#: Subscribers every process has, as ``module:function``; each acts only where it applies
#: (the MLflow mirror: scopes with an ``mlflow`` setting) and imports its library only then.
BUILT_IN: tuple[str, ...] = ("promotion.integrations.mlflow._mirroring:mirror_committed_moves",)

_subscribers: list[Subscriber] = []
_built_in_loaded = False
_lock = threading.Lock()


def _load_built_in() -> None:
    """Subscribe the built-in subscribers (once per process)."""
    global _built_in_loaded
    with _lock:
        if _built_in_loaded:
            return
        _built_in_loaded = True
    for target in BUILT_IN:
        module, _, name = target.partition(":")
        subscribe(getattr(importlib.import_module(module), name))


def subscribe(callback: Subscriber) -> Callable[[], None]:
    """Call ``callback`` after every committed decision with moves; subscribing the same
    callback again changes nothing. Returns the function that unsubscribes it."""
    with _lock:
        if callback not in _subscribers:
            _subscribers.append(callback)
    return lambda: unsubscribe(callback)


def unsubscribe(callback: Subscriber) -> None:
    """Stop calling ``callback`` (nothing happens if it was not subscribed)."""
    with _lock:
        if callback in _subscribers:
            _subscribers.remove(callback)


def publish(committed: Committed) -> None:
    """Tell every subscriber about a committed decision; a failing one is logged only."""
    _load_built_in()
    with _lock:
        subscribers = tuple(_subscribers)
    for callback in subscribers:
        try:
            callback(committed)
        except Exception:  # the decision is committed: a subscriber's failure is its own
            _log.exception("after-commit subscriber %r failed on scope '%s'", callback,
                           committed.scope.name)


@contextmanager
def deciding(store: Store, scope: Scope) -> Iterator[Decision]:
    """One decision on ``scope`` (see ``Store.decision``); its moves are published after it
    commits, never when it rolls back."""
    with store.decision(scope.name) as tx:
        yield tx
    if tx.moves:
        publish(Committed(store, scope, tx.moves))
