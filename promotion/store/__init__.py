"""Where decisions and measurements live: a documented abstract store, its SQLAlchemy
implementation, the tables and the records it hands out."""

from ._abstract import Decision, Store
from ._entities import (
    CachedEvaluation,
    Change,
    ChangeRequest,
    DeploymentRecord,
    RoleGrant,
    SchemaStatus,
    StageRecord,
    SyncState,
    Transition,
    WeightsVersion,
)
from ._faults import on_lock_wait
from ._sql import SqlStore, default_db_url, open_store, public_url, schema_status

__all__ = ["CachedEvaluation", "Change", "ChangeRequest", "Decision", "DeploymentRecord",
           "RoleGrant", "SchemaStatus", "SqlStore", "StageRecord", "Store", "SyncState",
           "Transition", "WeightsVersion", "default_db_url", "on_lock_wait", "open_store",
           "public_url", "schema_status"]
