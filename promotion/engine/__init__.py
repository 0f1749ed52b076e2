"""The prediction engine: serves a scope's newest export (cards and the model files they name).

It reads only the export, the model files and the scope's prediction log: it never imports the
store, the app or the training side, so ``import promotion.engine`` stays light.
"""

from ._cards import newest_cards_file, read_cards
from ._checks import SUM_TOLERANCE, MemberNote
from ._engine import PredictionEngine, Served, canary_bucket
from ._loading import (
           MODEL_FILES,
           SHIPPED_TRUSTED_TYPES,
           LoadedFile,
           ModelLoadError,
           load_model_file,
)
from ._members import LoadedModel
from ._predlog import log_fingerprint, log_path
from ._requests import BATCH_ROWS, RequestBatch, RequestsCsv

__all__ = ["BATCH_ROWS", "MODEL_FILES", "SHIPPED_TRUSTED_TYPES", "SUM_TOLERANCE", "LoadedFile",
           "LoadedModel", "MemberNote", "ModelLoadError", "PredictionEngine", "RequestBatch",
           "RequestsCsv", "Served", "canary_bucket", "load_model_file", "log_fingerprint",
           "log_path", "newest_cards_file", "read_cards"]
