"""Scopes: finding them under a models root, reading ``scope.json``/``meta.json``, the holdout."""

from ._config import (
    DeploymentSettings,
    ErrorCosts,
    GateSettings,
    MlflowMirror,
    MlflowOrigin,
    ModelMeta,
    ScopeConfig,
)
from ._discovery import (
    Holdout,
    ModelEntry,
    Scope,
    ScopeProblem,
    discover_scopes,
    file_sha256,
    load_scope,
    scope_folders,
)
from ._fingerprint import folder_fingerprint

__all__ = ["DeploymentSettings", "ErrorCosts", "GateSettings", "Holdout", "MlflowMirror",
           "MlflowOrigin", "ModelEntry", "ModelMeta", "Scope", "ScopeConfig", "ScopeProblem",
           "discover_scopes", "file_sha256", "folder_fingerprint", "load_scope",
           "scope_folders"]
