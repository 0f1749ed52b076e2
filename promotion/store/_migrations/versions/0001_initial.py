"""The first schema: evaluation cache, stages, append-only history, weights, annotations.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from promotion.store._migrations._guards import append_only

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

def upgrade() -> None:
    op.create_table(
        "evaluation",
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("holdout_sha256", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("replicates", sa.LargeBinary, nullable=True),
        sa.Column("rows", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "model_stage",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("model_name", sa.String(400), primary_key=True),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    # The database itself keeps at most one champion per scope.
    op.create_index("one_champion_per_scope", "model_stage", ["scope"], unique=True,
                    sqlite_where=sa.text("stage = 'champion'"),
                    postgresql_where=sa.text("stage = 'champion'"))
    op.create_table(
        "transition",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("model_name", sa.String(400), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=True),
        sa.Column("from_stage", sa.String(20), nullable=False),
        sa.Column("to_stage", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("overridden", sa.Boolean, nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_transition_scope", "transition", ["scope"])
    op.create_table(
        "weights",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("weights", sa.Text, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("scope", "version", name="one_weights_version"),
    )
    op.create_table(
        "annotation",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("model_name", sa.String(400), primary_key=True),
        sa.Column("field", sa.String(40), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    for statement in append_only(op.get_bind().dialect.name, "transition",
                                 "the transition history"):
        op.execute(statement)


def downgrade() -> None:
    for table in ("annotation", "weights", "transition", "model_stage", "evaluation"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS transition_append_only()")
