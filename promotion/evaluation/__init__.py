"""Measuring every model of a scope on its holdout, in parallel, cached in the store."""

from ._cache import load_row_predictions
from ._results import ModelEvaluation, Progress, RowPredictions, ScopeEvaluation
from ._runner import evaluate_scope

__all__ = ["ModelEvaluation", "Progress", "RowPredictions", "ScopeEvaluation", "evaluate_scope",
           "load_row_predictions"]
