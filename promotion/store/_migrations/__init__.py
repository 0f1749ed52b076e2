"""The store's schema history: every database, SQLite or PostgreSQL, is created and upgraded here.

Revisions live in ``versions/``; each is frozen once released. To add one, write
``versions/NNNN_what.py`` by hand (next number, ``down_revision`` = the previous one) and run
the store tests: ``tests/store/test_migrations.py`` checks that the upgraded schema matches the
tables in ``promotion/store/_tables.py``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ._guards import append_only

#: The newest revision in ``versions/``; a test keeps the two in step. Knowing it here lets an
#: up-to-date database open without importing Alembic.
HEAD = "0004"
#: The schema that ``create_all`` made before migrations existed: revision 0001 exactly.
_PRE_MIGRATION_TABLES = {"evaluation", "model_stage", "transition", "weights", "annotation"}


def current_revision(conn: Connection) -> str | None:
    """The revision a database is at (None for an empty one)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at, read without changing anything."""
    with engine.connect() as conn:
        return current_revision(conn)


def known_revisions() -> set[str]:
    """Every revision this release has in ``versions/``."""
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory(str(Path(__file__).parent))
            .walk_revisions()}


def unknown_revision_message(revision: str) -> str:
    return (f"the store's schema is at revision {revision}, which this release does not know "
            f"(it knows up to {HEAD}): a newer release upgraded it. Hint: upgrade promotion")


def upgrade_schema(engine: Engine) -> None:
    """Bring the database to ``HEAD``; safe when several processes open it at once.

    Failing to connect is left to the caller, who names the database; failing to change it
    (e.g. a role without the right to create tables) is one message here."""
    if schema_revision(engine) == HEAD:
        return
    try:
        with engine.connect() as conn:
            # SQLite: BEGIN IMMEDIATE (see the store's engine); PostgreSQL: an advisory lock.
            # The second process to get here finds the work done.
            conn.execution_options(promotion_write=True)
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(hashtextextended("
                                      "'promotion schema', 0))"))
                _upgrade(conn)
    except DBAPIError as err:
        from ...errors import InvalidInputError
        raise InvalidInputError("cannot bring the store's schema up to date: "
                                + " ".join(str(err.orig).split())) from None


def _upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    config.attributes["connection"] = conn
    revision = current_revision(conn)
    if revision == HEAD:
        return
    if revision is not None and revision not in known_revisions():
        from ...errors import InvalidInputError
        raise InvalidInputError(unknown_revision_message(revision))
    if revision is None and _PRE_MIGRATION_TABLES <= set(inspect(conn).get_table_names()):
        command.stamp(config, "0001")
        # The first releases guarded the history with triggers on SQLite only.
        for statement in append_only(conn.dialect.name, "transition", "the transition history"):
            conn.exec_driver_sql(statement)
    command.upgrade(config, "head")
