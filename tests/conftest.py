"""Shared fixtures: real tiny scopes on tmp_path and a real store beside them.

The ``store`` fixture is SQLite; a test module that sets ``STORE_BACKENDS = ("sqlite",
"postgresql")`` runs each of its store tests on both, the PostgreSQL one on a private cluster.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(Path(__file__).parent))
APP = Path(__file__).resolve().parent.parent / "app.py"

from factories import make_regression_scope, make_scope  # noqa: E402
from postgres import Cluster  # noqa: E402

from promotion.store import SqlStore, default_db_url, open_store  # noqa: E402
from views._common import DEMO_BUILD_THREAD  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def local_mode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test runs in local mode unless it sets up team mode itself: a developer's own
    .streamlit/secrets.toml never switches the suite to sign-in. The fork server every
    isolated process comes from is started now, in that environment: started later by a
    test that had set team mode, it would hand that setting to every process forked after."""
    import multiprocessing
    import multiprocessing.forkserver
    import os

    absent = tmp_path_factory.mktemp("local-mode") / "no-secrets.toml"
    saved = os.environ.get("PROMOTION_SECRETS_FILE")
    os.environ["PROMOTION_SECRETS_FILE"] = str(absent)
    if "forkserver" in multiprocessing.get_all_start_methods():
        from promotion.evaluation._isolation import _PRELOAD

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([*_PRELOAD, "promotion.usecases", "promotion.engine",
                                        "workers"])
        multiprocessing.forkserver.ensure_running()
    yield
    if saved is None:
        os.environ.pop("PROMOTION_SECRETS_FILE", None)
    else:
        os.environ["PROMOTION_SECRETS_FILE"] = saved


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
    return default_db_url(models_root)


@pytest.fixture
def store(models_root: Path, store_url: str) -> Iterator[SqlStore]:
    opened = open_store(models_root, store_url)
    yield opened
    opened.close()


@pytest.fixture
def tiny_scope(models_root: Path) -> Path:
    """A multiclass scope with four fitted models."""
    return make_scope(models_root, "tiny")


@pytest.fixture
def regression_scope(models_root: Path) -> Path:
    """scikit-learn's diabetes data as a regression scope (see ``make_regression_scope``)."""
    return make_regression_scope(models_root)


@pytest.fixture
def binary_scope(models_root: Path) -> Path:
    """A binary scope with four fitted models."""
    return make_scope(models_root, "bin", task="binary")


@dataclass(frozen=True)
class FirstStart:
    """The app's first start on an empty models root, and the demo zoo it built there."""

    root: Path
    app: AppTest


@pytest.fixture(scope="session")
def first_start(tmp_path_factory: pytest.TempPathFactory) -> FirstStart:
    """The app started on an empty models root: it builds and ranks the first demo scope
    before its first page, then the others in a thread, which this waits for. Built once per
    session and shared by every test that needs the demo (a build takes about a minute)."""
    root = tmp_path_factory.mktemp("demo") / "models"
    root.mkdir()
    patch = pytest.MonkeyPatch()
    patch.setenv("PROMOTION_MODELS_DIR", str(root))
    patch.delenv("PROMOTION_DB_URL", raising=False)
    try:
        app = AppTest.from_file(str(APP), default_timeout=900)
        app.run()
        for thread in threading.enumerate():
            if thread.name == DEMO_BUILD_THREAD:
                thread.join()
    finally:
        patch.undo()
    return FirstStart(root, app)


@pytest.fixture(scope="session")
def demo_zoo(first_start: FirstStart) -> Path:
    """The models root of the demo zoo (shared: a test that changes it puts it back)."""
    return first_start.root
