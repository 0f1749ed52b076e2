"""MLflow: import registered model versions as a scope's models, mirror decisions back.

MLflow is optional: it is imported inside the functions that need it (``_client``), never
when this package is imported, and by no module outside it.
"""

from ._importing import ImportedVersion, import_mlflow_versions
from ._mirroring import (
    MirrorPlan,
    SyncReport,
    mirror_committed_moves,
    mirror_decisions,
    mirror_plan,
    sync_mlflow,
)

__all__ = ["ImportedVersion", "MirrorPlan", "SyncReport", "import_mlflow_versions",
           "mirror_committed_moves", "mirror_decisions", "mirror_plan", "sync_mlflow"]
