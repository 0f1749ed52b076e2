"""An export's members and its preprocessor, each verified (root, symlink, sha256) and loaded
once; a compiled member is loaded from its ONNX file, never unpickled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import ModelCard
from ..errors import InvalidInputError
from ..vocabulary import is_regression
from ._align import ClassMismatch, class_positions, model_columns
from ._loading import load_model_file, meta_classes
from ._onnx import OnnxModel
from ._preprocess import load_preprocessor


@dataclass(frozen=True)
class LoadedModel:
    """One card with its verified, loaded model."""

    card: ModelCard
    model: Any
    columns: list[str] | None  # None when the model takes the cards' feature order as is
    #: None when predict_proba already follows the card's classes (and for regression: the
    #: answer is one value per row)
    positions: np.ndarray | None
    #: Takes one float32 array (an ONNX model): the batch's array, built once for all of them.
    takes_array: bool = False


def member_method(task: str) -> str:
    """The method the engine calls on a member of ``task``: ``predict`` for regression (one
    value per row), else ``predict_proba``."""
    return "predict" if is_regression(task) else "predict_proba"


def load_preprocessor_of(card: ModelCard, models_dir: Path, source: Path,
                       trusted_types: tuple[str, ...]) -> Any:
    """The export's preprocessor, verified like a model (root, symlink, sha256), or None."""
    if card.preprocessor_path is None:
        return None
    where = f"{source}: card '{card.model_name}' field 'preprocessor_path'"
    return load_preprocessor(models_dir.parent / card.preprocessor_path, models_dir,
                             f"{where}: {card.preprocessor_path}",
                             expected_sha256=card.preprocessor_sha256, what="card's",
                             trusted_types=trusted_types).model


def output_names(preprocessor: Any) -> list[str] | None:
    """The preprocessor's output column names, or None when it cannot tell."""
    try:
        return [str(name) for name in preprocessor.get_feature_names_out()]
    except Exception:  # not every transformer names its output
        return None


def load_member(card: ModelCard, models_dir: Path, source: Path,
                 trusted_types: tuple[str, ...], available: list[str] | None) -> LoadedModel:
    # A compiled member is served from its ONNX file: nothing of it is unpickled.
    field = "compiled_path" if card.compiled_path else "model_path"
    path, sha256 = ((card.compiled_path, card.compiled_sha256) if card.compiled_path
                    else (card.model_path, card.sha256))
    where = f"{source}: card '{card.model_name}' field '{field}'"
    regression = is_regression(card.task)
    # Root, symlink and sha256 checks come before a byte is loaded (see promotion.engine._loading).
    file = models_dir.parent / path
    model = load_model_file(file, models_dir, f"{where}: {path}",
                            expected_sha256=sha256, what="card's", trusted_types=trusted_types,
                            classes=None if card.compiled_path else meta_classes(file),
                            needs=member_method(card.task)).model
    try:
        columns = None if available is None else model_columns(model, available)
        if regression:  # one value per row: no class columns to place
            return LoadedModel(card, model, None if columns in (None, available) else columns,
                               None, isinstance(model, OnnxModel) and model.takes_array)
        positions = class_positions(model, list(card.classes))
    except KeyError as err:
        lacks = "the card" if card.preprocessor_path is None else "the preprocessor's output"
        raise InvalidInputError(f"{where}: the model needs column(s) {lacks} lacks: "
                                f"{err.args[0]}") from None
    except ClassMismatch as err:
        raise InvalidInputError(f"{where}: {err}") from None
    in_order = np.array_equal(positions, np.arange(len(card.classes)))
    same_columns = columns is None or columns == available
    return LoadedModel(card, model, None if same_columns else columns,
                       None if in_order else positions, isinstance(model, OnnxModel)
                       and model.takes_array)
