"""Building what production reads: the promoted set's cards, ensemble weights, slices, files."""

from ._build import (
    TEXT_FIELDS,
    ExportPaths,
    PromotedSet,
    build_cards,
    compare_ensembles,
    derived_texts,
    ensemble_table,
    export_results,
    promoted_set,
)
from ._ensemble import ensemble_weights, normalize
from ._slices import INSUFFICIENT, SliceFinding, slice_findings

__all__ = ["INSUFFICIENT", "TEXT_FIELDS", "ExportPaths", "PromotedSet", "SliceFinding",
           "build_cards", "compare_ensembles", "derived_texts", "ensemble_table",
           "ensemble_weights", "export_results", "normalize", "promoted_set", "slice_findings"]
