"""The exceptions the package raises for bad input and refused actions.

They inherit from built-ins so callers' existing ``except ValueError`` / ``except KeyError``
keep working. Every message names the file and field (or the value) and, where it helps, ends
with a hint.
"""

from __future__ import annotations


class PromotionError(Exception):
    """Base of every error the package raises on purpose (bad input, refused action)."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class InvalidInputError(PromotionError, ValueError):
    """A file or argument does not have the expected content."""


class ScopeNotFoundError(PromotionError, KeyError):
    """No scope of that name under the models root."""


class ModelNotFoundError(PromotionError, KeyError):
    """No model of that name in the scope."""


class UnknownMetricError(InvalidInputError):
    """A metric name that is not in the registry."""


class InvalidTransitionError(PromotionError, ValueError):
    """A promotion or demotion that the lifecycle does not allow."""


class PermissionDeniedError(PromotionError, PermissionError):
    """In team mode, the deciding person's role does not allow the action."""


class ApprovalRequiredError(InvalidTransitionError):
    """A change that reaches production needs a second person's approval: request it."""


class StoreBusyError(PromotionError):
    """Another process held the store's lock for longer than the lock wait; nothing changed."""


class StoreFaultError(PromotionError):
    """The database cannot take the change: the disk is full, it is read-only or damaged, the
    server does not answer, or its file was removed, replaced or truncated under this process."""


class WorkerStartError(PromotionError, RuntimeError):
    """An evaluation worker process could not be started (no model was measured)."""


class MissingDependencyError(PromotionError, ImportError):
    """An optional package a command needs is not installed."""
