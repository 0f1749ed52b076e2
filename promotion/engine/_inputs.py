"""One served batch in each form the engine's members take, each form built once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._align import input_numbers
from ._preprocess import fitted_input

if TYPE_CHECKING:  # the caller brings its frame, so pandas is loaded by then
    import pandas as pd

    from ._members import LoadedModel


class BatchInputs:
    """One batch in each form its members take, each built once: the caller's frame (or a
    frame of the caller's array, for models that take frames) and float32 arrays (for
    compiled members, and the log)."""

    def __init__(self, X: pd.DataFrame | np.ndarray, feature_names: list[str]) -> None:
        self.X = X
        self.rows = len(X)
        self.feature_names = feature_names
        self._frame: pd.DataFrame | None = None
        self._arrays: dict[tuple[str, ...] | None, np.ndarray] = {}

    def of(self, member: LoadedModel) -> pd.DataFrame | np.ndarray:
        """The rows as ``member`` takes them."""
        if member.takes_array:
            try:
                return self.array(member.columns)
            except (TypeError, ValueError):  # cells that are no numbers: the model says so
                pass
        frame = self.frame()
        return fitted_input(member.model, frame if member.columns is None
                            else frame[member.columns])

    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            if isinstance(self.X, np.ndarray):
                import pandas as pd

                self._frame = pd.DataFrame(self.X, columns=self.feature_names)
            else:
                self._frame = self.X
        return self._frame

    def array(self, columns: list[str] | None) -> np.ndarray:
        """float32 rows of ``columns`` (None: the cards' feature order)."""
        key = None if columns is None else tuple(columns)
        if key not in self._arrays:
            if isinstance(self.X, np.ndarray):
                chosen = self.X if key is None else self.X[
                    :, [self.feature_names.index(c) for c in key]]
                self._arrays[key] = np.asarray(chosen, dtype=np.float32)
            else:
                self._arrays[key] = (self.X if key is None else self.X[list(key)]
                                     ).to_numpy(dtype=np.float32)
        return self._arrays[key]

    def logged(self) -> np.ndarray:
        """The rows as the log keeps them: float32, cells that are no numbers NaN."""
        try:
            return self.array(None)
        except (TypeError, ValueError):
            return numeric_rows(self.frame())


def numeric_rows(X: pd.DataFrame) -> np.ndarray:
    """The input rows as float32 for the log (drift): text by its category code."""
    import pandas as pd

    if all(pd.api.types.is_numeric_dtype(dtype) for dtype in X.dtypes):
        return X.to_numpy(dtype=np.float32, na_value=np.nan)
    return input_numbers(X).astype(np.float32)
