"""Starting child processes from a test process that has run Streamlit's AppTest."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def plain_main() -> Iterator[None]:
    """Start children with no main module to prepare.

    Streamlit's AppTest, run earlier in the same test process, leaves app.py as ``__main__``;
    spawned children (a fork server, Dask's worker processes) would then import, and so run,
    the app on start.
    """
    saved = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = saved
