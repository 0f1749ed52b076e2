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


class MissingDependencyError(PromotionError, ImportError):
    """An optional package a command needs is not installed."""
