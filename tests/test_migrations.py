"""One migration path for every backend: the upgraded schema is exactly the store's tables."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import DBAPIError

import promotion
from promotion import _migrations, _store

STORE_BACKENDS = ("sqlite", "postgresql")


def test_head_constant_matches_the_newest_revision():
    config = Config()
    config.set_main_option("script_location", str(_migrations.__path__[0]))
    assert ScriptDirectory.from_config(config).get_current_head() == _migrations.HEAD


def test_upgraded_schema_matches_the_store_tables(store, store_url):
    engine = create_engine(store_url)
    with engine.connect() as conn:
        assert _migrations.current_revision(conn) == _migrations.HEAD
        diff = compare_metadata(MigrationContext.configure(conn), _store._metadata)
    engine.dispose()
    assert diff == []


def test_reopening_a_current_store_changes_nothing(store, store_url, models_root):
    store.transition("s", "m", "production", actor="a", reason="kept", model_sha256=None)
    promotion.open_store(models_root, store_url).close()
    assert store.stages("s")["m"].reason == "kept"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_from_before_migrations_is_adopted_with_its_data(models_root, backend, request):
    """Databases made by ``create_all`` (the first releases) are revision 0001 as they are,
    and gain the append-only guard on the history where those releases had none."""
    url = (request.getfixturevalue("postgres").database() if backend == "postgresql"
           else f"sqlite:///{models_root / 'promotion.db'}")
    old = create_engine(url)
    first_release = [_store._metadata.tables[name] for name in _migrations._PRE_MIGRATION_TABLES]
    _store._metadata.create_all(old, tables=first_release)
    with old.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO model_stage VALUES ('s', 'm', 'champion', NULL, "
            "'2026-01-01 00:00:00', 'ana', 'before migrations')")
    old.dispose()
    store = promotion.open_store(models_root, url)
    assert store.stages("s")["m"].reason == "before migrations"
    assert "alembic_version" in inspect(store._engine).get_table_names()
    store.transition("s", "m", "archived", actor="a", reason="kept", model_sha256=None)
    with pytest.raises(DBAPIError, match="append-only"), store._session() as conn:
        conn.exec_driver_sql("UPDATE transition SET reason = 'rewritten'")
    assert [t.reason for t in store.history("s")] == ["kept"]
    store.close()
