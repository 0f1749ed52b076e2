"""Shared fixtures: real tiny scopes on tmp_path and a real store beside them.

The ``store`` fixture is SQLite; a test module that sets ``STORE_BACKENDS = ("sqlite",
"postgresql")`` runs each of its store tests on both, the PostgreSQL one on a private cluster.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from factories import make_scope  # noqa: E402
from postgres import Cluster  # noqa: E402

import promotion  # noqa: E402


@pytest.fixture
def models_root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    return root


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    chosen = any("backend" in str(m.args[0]) for m in metafunc.definition.iter_markers(
        "parametrize"))  # a test that names its backends itself
    if not chosen and ("store" in metafunc.fixturenames or "store_url" in metafunc.fixturenames):
        backends = getattr(metafunc.module, "STORE_BACKENDS", ("sqlite",))
        metafunc.parametrize("backend", backends, scope="function")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    cluster = Cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def store_url(request: pytest.FixtureRequest, backend: str, models_root: Path) -> str:
    """The database URL of this test's store: the models root's SQLite file, or a fresh
    PostgreSQL database."""
    if backend == "postgresql":
        return request.getfixturevalue("postgres").database()
    return promotion.default_db_url(models_root)


@pytest.fixture
def store(models_root: Path, store_url: str) -> Iterator[promotion.SqlStore]:
    opened = promotion.open_store(models_root, store_url)
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
