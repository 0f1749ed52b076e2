"""A scope folder's fingerprint: changes whenever any file that decides its evaluation does."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..engine._loading import MODEL_FILES
from ._discovery import META_FILE, SCOPE_FILE

_FINGERPRINTED = frozenset({META_FILE, *MODEL_FILES})


def folder_fingerprint(folder: Path) -> str:
    """Cheap fingerprint (names, sizes, mtimes) of a scope folder's files, of each model
    folder's meta.json and model files, and of the holdout and the preprocessor wherever
    scope.json puts them. Any file added, removed, replaced or rewritten changes it.

    A digest, not the listing itself: a cache that takes it as a key (Streamlit hashes
    arguments element by element in Python on every call) stays cheap on 1,000 models."""
    signature: list[tuple[str, str, int, int]] = []
    try:
        with os.scandir(folder) as listing:
            children = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        return ""
    for child in children:
        try:
            if not child.is_dir():
                stat = child.stat()
                signature.append((child.name, child.name, stat.st_size, stat.st_mtime_ns))
                continue
            with os.scandir(child.path) as inner:
                files = sorted((f for f in inner if f.name in _FINGERPRINTED),
                               key=lambda entry: entry.name)
            for file in files:
                stat = file.stat()
                signature.append((file.name, child.name, stat.st_size, stat.st_mtime_ns))
        except OSError:  # vanished or unreadable meanwhile: that is a change too
            signature.append(("", child.name, -1, -1))
    signature += [_named_stat(folder, "holdout"), _named_stat(folder, "preprocessor")]
    return hashlib.blake2b(repr(signature).encode(), digest_size=16).hexdigest()


def _named_stat(folder: Path, key: str) -> tuple[str, str, int, int]:
    """The size and mtime of the file scope.json names under ``key`` (the holdout, the
    preprocessor), also when it lies outside the folder's top level (``data/holdout.csv``): a
    cached evaluation, which hashes the holdout but may not read it, and the rows the pages
    read must come from the same file."""
    try:
        named = json.loads((folder / SCOPE_FILE).read_bytes()).get(key)
        if named is None:
            return (key, "", 0, 0)
        stat = (folder / str(named)).stat()
    except (OSError, ValueError, AttributeError):  # missing or bad: loading says so
        return (key, "", -1, -1)
    return (key, str(named), stat.st_size, stat.st_mtime_ns)
