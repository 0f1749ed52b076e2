"""Deployment decisions (mode, canary, share), append-only like the stage history.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from promotion.store._migrations._guards import append_only

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

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
    for statement in append_only(op.get_bind().dialect.name, "deployment",
                                 "the deployment history"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("deployment")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS deployment_append_only()")
