"""Deployment decisions (mode, canary, share), append-only like the stage history.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_MESSAGE = "deployment decisions are append-only"

_SQLITE_TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS deployment_no_update BEFORE UPDATE ON deployment "
    f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END",
    "CREATE TRIGGER IF NOT EXISTS deployment_no_delete BEFORE DELETE ON deployment "
    f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END",
]

_POSTGRESQL_TRIGGERS = [
    "CREATE OR REPLACE FUNCTION deployment_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN RAISE EXCEPTION '{_MESSAGE}'; END $$",
    "CREATE TRIGGER deployment_no_change BEFORE UPDATE OR DELETE ON deployment "
    "FOR EACH ROW EXECUTE FUNCTION deployment_append_only()",
    "CREATE TRIGGER deployment_no_truncate BEFORE TRUNCATE ON deployment "
    "FOR EACH STATEMENT EXECUTE FUNCTION deployment_append_only()",
]


def upgrade() -> None:
    op.create_table(
        "deployment",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("canary_model", sa.String(400), nullable=True),
        sa.Column("canary_share", sa.Float, nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_deployment_scope", "deployment", ["scope"])
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": _SQLITE_TRIGGERS, "postgresql": _POSTGRESQL_TRIGGERS}.get(
            dialect, []):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("deployment")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS deployment_append_only()")
