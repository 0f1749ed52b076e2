"""A scope's shared preprocessor, and feeding models what they were fitted with.

A scope may keep one fitted transformer (``scope.json`` ``preprocessor``) beside its models:
it is loaded with the checks a model file gets (inside the models root, sha256 of the very
bytes loaded) and applied to the raw feature columns once per evaluation and once per served
batch; every model of the scope then takes its output.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInputError
from ._loading import LoadedFile, load_model_file

if TYPE_CHECKING:
    import pandas as pd

#: The file kinds a preprocessor may be kept in.
PREPROCESSOR_SUFFIXES = (".joblib", ".skops")


def fitted_input(model: Any, X: pd.DataFrame) -> pd.DataFrame | np.ndarray:
    """``X`` as ``model`` was fitted: a frame for a model that knows its feature names, the
    bare values for a scikit-learn model fitted without them (given a frame, scikit-learn
    warns "X has feature names, but ... was fitted without feature names" on every call)."""
    if hasattr(model, "n_features_in_") and not hasattr(model, "feature_names_in_"):
        return X.to_numpy()
    return X


def take_rows(X: pd.DataFrame | np.ndarray, rows: Any) -> pd.DataFrame | np.ndarray:
    """Rows of a frame or an array, by position."""
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


def load_preprocessor(path: Path, models_dir: Path, shown: str, *,
                      expected_sha256: str | None = None, what: str = "expected",
                      trusted_types: tuple[str, ...] | list[str] = ()) -> LoadedFile:
    """The verified preprocessor (a fitted object with ``transform``)."""
    if Path(path).suffix not in PREPROCESSOR_SUFFIXES:
        raise InvalidInputError(f"{shown}: a preprocessor is a .joblib or .skops file")
    return load_model_file(path, models_dir, shown, expected_sha256=expected_sha256, what=what,
                           trusted_types=trusted_types, needs="transform")


def transform_features(preprocessor: Any, X: pd.DataFrame, shown: str) -> pd.DataFrame:
    """The preprocessor's output for the raw rows ``X``, as a frame with its output names
    (``get_feature_names_out``, else x0, x1, ...) and ``X``'s index."""
    import pandas as pd

    try:
        out = preprocessor.transform(fitted_input(preprocessor, X))
    except Exception as err:  # the preprocessor's own failure: one message naming it
        text = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        raise InvalidInputError(f"{shown}: transform failed ({text})") from None
    if isinstance(out, pd.DataFrame):
        return out.set_axis(X.index, axis=0)
    if hasattr(out, "toarray"):  # a sparse matrix (e.g. one-hot encoding)
        out = out.toarray()
    out = np.asarray(out)
    try:
        names = [str(n) for n in preprocessor.get_feature_names_out()]
    except Exception:  # not every transformer can name its output
        names = []
    if len(names) != out.shape[1]:
        names = [f"x{i}" for i in range(out.shape[1])]
    # copy=False: the frame's values are the transform's own array, so a model fitted
    # without names gets exactly it (same memory layout: the consumer loop's numbers).
    return pd.DataFrame(out, columns=names, index=X.index, copy=False)
