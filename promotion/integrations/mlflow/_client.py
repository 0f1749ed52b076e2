"""MLflow itself: imported only here and only when asked for, with a client that fails fast.

MLflow is optional (``requirements-mlflow.txt``); the rest of the package works without it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from ...errors import InvalidInputError, MissingDependencyError
from ...store._sql import public_url

REQUIREMENTS_FILE = "requirements-mlflow.txt"
#: Applied for our calls unless set by the user: an unreachable server fails in one attempt
#: instead of MLflow's default of 7 retries with backoff (minutes), so a transition never hangs.
FAIL_FAST_ENV: dict[str, str] = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# One MLflow call sequence at a time per process: the fail-fast settings are process-wide
# environment variables, set and restored around each sequence.
_LOCK = threading.Lock()


def require_mlflow() -> ModuleType:
    """The ``mlflow`` module; when it is missing, one message saying how to install it."""
    # This tool sends no usage data on its users' behalf; MLFLOW_DISABLE_TELEMETRY=false
    # in the environment lets MLflow send its own.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        import mlflow
        import mlflow.artifacts
        import mlflow.models
        import mlflow.pyfunc
        import mlflow.sklearn
    except ImportError as err:
        raise missing_dependency(err) from None
    return mlflow


def missing_dependency(err: ImportError) -> MissingDependencyError:
    what = "MLflow is not installed" if err.name in (None, "mlflow") else \
        f"MLflow support is incomplete (no module '{err.name}')"
    return MissingDependencyError(f"{what}. Hint: pip install -r {REQUIREMENTS_FILE}")


@contextmanager
def mlflow_client(tracking_uri: str) -> Iterator[tuple[ModuleType, Any]]:
    """MLflow and a client for ``tracking_uri`` (also its registry), failing fast."""
    mlflow = require_mlflow()
    if tracking_uri.startswith("sqlite:///"):
        # MLflow would silently create an empty store at a mistyped path.
        path = Path(tracking_uri.removeprefix("sqlite:///"))
        if not path.is_file():
            raise InvalidInputError(f"no MLflow store at {path} (tracking URI "
                                    f"{public_url(tracking_uri)})")
    with _LOCK:
        added = [key for key in FAIL_FAST_ENV if key not in os.environ]
        os.environ.update({key: FAIL_FAST_ENV[key] for key in added})
        try:
            yield mlflow, mlflow.MlflowClient(tracking_uri=tracking_uri,
                                              registry_uri=tracking_uri)
        finally:
            for key in added:
                os.environ.pop(key, None)


def is_not_found(err: Exception) -> bool:
    return getattr(err, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def first_line(err: BaseException, limit: int = 300) -> str:
    """The gist of an error: the operating system's words for a failed connection, else
    the first line of the message."""
    text = str(err).strip()
    refused = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if refused:
        return f"cannot connect ({refused.group(1).strip()})"
    lines = text.splitlines()
    return (lines[0] if lines else type(err).__name__)[:limit]
