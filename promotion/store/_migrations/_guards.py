"""Append-only guards in the database itself: triggers that refuse UPDATE and DELETE (and
TRUNCATE on PostgreSQL) on a history table. Used by the revisions and by adoption."""

from __future__ import annotations


def append_only(dialect: str, table: str, what: str) -> list[str]:
    """Statements that make ``table`` append-only; each is safe to run again."""
    message = f"{what} is append-only"
    if dialect == "sqlite":
        return [f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON "
                f"{table} BEGIN SELECT RAISE(ABORT, '{message}'); END"
                for verb in ("UPDATE", "DELETE")]
    if dialect == "postgresql":
        function = f"{table}_append_only"
        return [
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$",
            f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}",
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()",
            f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        ]
    return []
