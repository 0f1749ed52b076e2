"""One migration path for every backend: the upgraded schema is exactly the store's tables."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from browser import free_port
from sqlalchemy import create_engine, inspect
from sqlalchemy.exc import DBAPIError

from promotion import InvalidInputError
from promotion.cli import main
from promotion.store import _migrations, _tables, open_store, public_url, schema_status

STORE_BACKENDS = ("sqlite", "postgresql")


def test_head_constant_matches_the_newest_revision():
    config = Config()
    config.set_main_option("script_location", str(_migrations.__path__[0]))
    assert ScriptDirectory.from_config(config).get_current_head() == _migrations.HEAD


def test_upgraded_schema_matches_the_store_tables(store, store_url):
    engine = create_engine(store_url)
    with engine.connect() as conn:
        assert _migrations.current_revision(conn) == _migrations.HEAD
        diff = compare_metadata(MigrationContext.configure(conn), _tables.metadata)
    engine.dispose()
    assert diff == []


def test_reopening_a_current_store_changes_nothing(store, store_url, models_root):
    with store.decision("s") as tx:
        tx.record_move("m", "development", "production", actor="a", reason="kept",
                       model_sha256=None)
    open_store(models_root, store_url).close()
    assert store.stages("s")["m"].reason == "kept"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_from_before_migrations_is_adopted_with_its_data(models_root, backend, request):
    """Databases made by ``create_all`` (the first releases) are revision 0001 as they are,
    and gain the append-only guard on the history where those releases had none."""
    url = (request.getfixturevalue("postgres").database() if backend == "postgresql"
           else f"sqlite:///{models_root / 'promotion.db'}")
    old = create_engine(url)
    first_release = [_tables.metadata.tables[name] for name in _migrations._PRE_MIGRATION_TABLES]
    _tables.metadata.create_all(old, tables=first_release)
    with old.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO model_stage VALUES ('s', 'm', 'champion', NULL, "
            "'2026-01-01 00:00:00', 'ana', 'before migrations')")
    old.dispose()
    store = open_store(models_root, url)
    assert store.stages("s")["m"].reason == "before migrations"
    assert "alembic_version" in inspect(store._engine).get_table_names()
    with store.decision("s") as tx:
        tx.record_move("m", "champion", "archived", actor="a", reason="kept",
                       model_sha256=None)
    with pytest.raises(DBAPIError, match="append-only"), store._session() as conn:
        conn.exec_driver_sql("UPDATE transition SET reason = 'rewritten'")
    assert [t.reason for t in store.history("s")] == ["kept"]
    store.close()


def _at_revision(url: str, revision: str) -> None:
    """A database left at an older revision, as an older release would have left it."""
    engine = create_engine(url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(_migrations.__path__[0]))
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    engine.dispose()


def test_migrate_reports_upgrades_and_checks(store_url, models_root, monkeypatch, capsys):
    monkeypatch.setenv("PROMOTION_DB_URL", store_url)
    _at_revision(store_url, "0002")
    where = public_url(store_url)
    assert main(["migrate", "--check", "--models-dir", str(models_root)]) == 1
    assert capsys.readouterr().out == (
        f"{where}: at 0002; revision {_migrations.HEAD} is due (python -m promotion migrate)\n")
    assert schema_status(models_root).revision == "0002"  # --check changed nothing
    assert main(["migrate", "--models-dir", str(models_root)]) == 0
    assert capsys.readouterr().out == f"{where}: 0002 -> revision {_migrations.HEAD}\n"
    assert main(["migrate", "--check", "--models-dir", str(models_root)]) == 0
    assert capsys.readouterr().out == f"{where}: at revision {_migrations.HEAD}, nothing to do\n"
    assert schema_status(models_root).current


def test_migrate_creates_a_new_sqlite_store(models_root, capsys):
    assert main(["migrate", "--check", "--models-dir", str(models_root)]) == 1
    assert "at no tables; revision" in capsys.readouterr().out
    assert not (models_root / "promotion.db").exists()
    assert main(["migrate", "--models-dir", str(models_root)]) == 0
    assert capsys.readouterr().out.endswith(f"no tables -> revision {_migrations.HEAD}\n")


def test_an_unreachable_store_is_one_message_without_the_password(models_root, monkeypatch,
                                                                  capsys):
    url = f"postgresql+psycopg://ana:s3cret@127.0.0.1:{free_port()}/nothing"
    monkeypatch.setenv("PROMOTION_DB_URL", url)
    assert main(["migrate", "--models-dir", str(models_root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot open the store at "
                          "'postgresql+psycopg://127.0.0.1:") and "s3cret" not in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://ana:s3cret@db.invalid:5432/promo",
    "postgresql:/ana:s3cret@db.invalid/promo",  # malformed: one slash
    "postgresql//ana:s3cret@db.invalid/promo",
])
def test_shown_urls_never_hold_the_password(url):
    shown = public_url(url)
    assert "s3cret" not in shown and "ana" not in shown and "db.invalid" in shown


def test_a_sqlite_url_with_options_is_read_where_it_is(models_root):
    url = f"sqlite:///{models_root / 'promotion.db'}?timeout=10"
    open_store(models_root).close()
    assert schema_status(models_root, url).current
    fresh = models_root / "fresh.db"
    assert schema_status(models_root, f"sqlite+pysqlite:///{fresh}").revision is None
    assert not fresh.exists()  # reading the status created nothing


def test_a_store_upgraded_by_a_newer_release_is_one_message(store_url, models_root,
                                                            monkeypatch, capsys):
    monkeypatch.setenv("PROMOTION_DB_URL", store_url)
    open_store(models_root, store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    for args in (["migrate"], ["migrate", "--check"]):
        assert main([*args, "--models-dir", str(models_root)]) == 2
        err = capsys.readouterr().err
        assert "revision 0099, which this release does not know" in err and err.count("\n") == 1
    with pytest.raises(InvalidInputError, match="upgrade promotion"):
        open_store(models_root, store_url)
