"""The store's tables. ``_migrations`` creates and upgrades them; a test checks that the
upgraded schema is exactly ``metadata``."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

evaluation = Table(
    "evaluation", metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("model_sha256", String(64), nullable=False),
    Column("holdout_sha256", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("replicates", LargeBinary, nullable=True),
    Column("rows", LargeBinary, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

model_stage = Table(
    "model_stage", metadata,
    Column("scope", String(200), primary_key=True),
    Column("model_name", String(400), primary_key=True),
    Column("stage", String(20), nullable=False),
    Column("model_sha256", String(64), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    # The database itself keeps at most one champion per scope: the last line of defence
    # behind the lifecycle's own rule.
    Index("one_champion_per_scope", "scope", unique=True,
          sqlite_where=text("stage = 'champion'"), postgresql_where=text("stage = 'champion'")),
)

#: The stage history, append-only (triggers from ``_migrations``).
transition = Table(
    "transition", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(200), nullable=False, index=True),
    Column("model_name", String(400), nullable=False),
    Column("model_sha256", String(64), nullable=True),
    Column("from_stage", String(20), nullable=False),
    Column("to_stage", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("overridden", Boolean, nullable=False, default=False),
    Column("action", String(20), nullable=False, default="move"),
    Column("at", DateTime(timezone=True), nullable=False),
)

weights = Table(
    "weights", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("weights", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("scope", "version", name="one_weights_version"),
)

annotation = Table(
    "annotation", metadata,
    Column("scope", String(200), primary_key=True),
    Column("model_name", String(400), primary_key=True),
    Column("field", String(40), primary_key=True),
    Column("text", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

#: The last attempt to mirror a scope's stages to MLflow; ``pending`` until one succeeds.
mlflow_sync = Table(
    "mlflow_sync", metadata,
    Column("scope", String(200), primary_key=True),
    Column("pending", Boolean, nullable=False),
    Column("detail", Text, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("pending_since", DateTime(timezone=True), nullable=True),
)

#: Deployment settings of a scope (mode, canary, share), append-only: the newest row is in
#: force, the older ones are its history.
deployment = Table(
    "deployment", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(200), nullable=False, index=True),
    Column("mode", String(20), nullable=False),
    Column("canary_model", String(400), nullable=True),
    Column("canary_share", Float, nullable=True),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

#: Roles of team mode, by email, email domain (``@example.com``) or ``cli:<account>``.
role_grant = Table(
    "role_grant", metadata,
    Column("subject", String(320), primary_key=True),
    Column("role", String(20), nullable=False),
    Column("granted_by", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

#: Changes that wait for a second person's approval (four eyes), and how they were decided.
change_request = Table(
    "change_request", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(200), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("model_name", String(400), nullable=True),
    Column("to_stage", String(20), nullable=True),
    Column("override", Boolean, nullable=False),
    Column("mode", String(20), nullable=True),
    Column("canary_model", String(400), nullable=True),
    Column("canary_share", Float, nullable=True),
    Column("requested_by", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("business_impact", Text, nullable=False),
    Column("risk_assessment", Text, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("status", String(20), nullable=False),
    Column("decided_by", String(200), nullable=True),
    Column("decision_reason", Text, nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
)
