"""Team mode: roles by email or domain, and change requests waiting for approval.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "role_grant",
        sa.Column("subject", sa.String(320), primary_key=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "change_request",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("model_name", sa.String(400), nullable=True),
        sa.Column("to_stage", sa.String(20), nullable=True),
        sa.Column("override", sa.Boolean, nullable=False),
        sa.Column("mode", sa.String(20), nullable=True),
        sa.Column("canary_model", sa.String(400), nullable=True),
        sa.Column("canary_share", sa.Float, nullable=True),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("business_impact", sa.Text, nullable=False),
        sa.Column("risk_assessment", sa.Text, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decision_reason", sa.Text, nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_change_request_scope", "change_request", ["scope"])


def downgrade() -> None:
    op.drop_table("change_request")
    op.drop_table("role_grant")
