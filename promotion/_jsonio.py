"""JSON in and out: finite numbers only, and atomic writes (a reader never sees half a file)."""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


def json_ready(value: Any) -> Any:
    """``value`` with NaN/inf floats replaced by None, tuples as lists, numpy scalars plain."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any) -> str:
    """Strict JSON text of ``value`` (NaN becomes null)."""
    return json.dumps(json_ready(value), indent=2, allow_nan=False, ensure_ascii=False)


#: How old a writer's temporary file must be to count as left by a killed writer: a write
#: takes well under a second, so an hour never catches one still running.
STALE_TEMP_SECONDS = 3600


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to ``path`` through a temporary file and a rename, durably.

    The file gets the permissions of any new file (0666 less the umask, typically 0644), so
    the other users of a shared models root can read it. A failed write (a full disk) is an
    OSError naming ``path``; nothing is left where readers look.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = temporary_beside(path)
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        with (os.fdopen(fd, "wb") if isinstance(text, bytes)
              else os.fdopen(fd, "w", encoding="utf-8")) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, err.strerror, str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: Create, never open an existing file (nor follow a link), and close on exec.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def temporary_beside(path: Path) -> tuple[int, Path]:
    """A new hidden file beside ``path`` (named for ``sweep_stale_temps``), open for writing,
    with the umask's permissions: ``tempfile.mkstemp`` would make it 0600, and the rename
    into place would keep that."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, _NEW_FILE, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))


def sweep_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder``; return them.

    Only ``write_atomic``'s own names (hidden, ending ``.tmp``) older than STALE_TEMP_SECONDS.
    """
    return sweep_stale((p for p in folder.glob(".*.tmp") if p.is_file()), Path.unlink)


def sweep_stale(candidates: Iterable[Path], remove: Callable[[Path], object]) -> list[Path]:
    """Remove with ``remove`` each candidate older than STALE_TEMP_SECONDS (left by a killed
    writer); return those removed. One swept by another process first, or not ours to remove,
    is left."""
    removed = []
    cutoff = time.time() - STALE_TEMP_SECONDS
    for candidate in candidates:
        try:
            if candidate.stat().st_mtime < cutoff:
                remove(candidate)
                removed.append(candidate)
        except OSError:
            continue
    return removed
