"""Shared fixtures: real tiny scopes on tmp_path and a real SQLite store beside them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from factories import make_scope  # noqa: E402

import promotion  # noqa: E402


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    return root


@pytest.fixture
def store(models_root: Path) -> Iterator[promotion.SqlStore]:
    opened = promotion.open_store(models_root)
    yield opened
    opened.close()


@pytest.fixture
def tiny_scope(models_root: Path) -> Path:
    """A multiclass scope with four fitted models."""
    return make_scope(models_root, "tiny")


@pytest.fixture
def binary_scope(models_root: Path) -> Path:
    """A binary scope with four fitted models."""
    return make_scope(models_root, "bin", task="binary")
