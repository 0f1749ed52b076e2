"""One served batch in each form the engine's members take, each form built once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._align import input_numbers, require_columns
from ._preprocess import fitted_input

if TYPE_CHECKING:  # the caller brings its frame, so pandas is loaded by then
    import pandas as pd

    from ._members import LoadedModel


class FrameColumns:
    """Where the cards' features are among a frame's columns, found once per columns Index.

    An Index never changes, and ``Index.is_`` knows it through its views (every frame sliced
    from one frame shares its columns so), so a frame whose columns were checked before costs
    one comparison (about 0.5 µs); another Index is compared with the names as one array
    (``Index.equals``: about 5 µs for 64 names, 15-25 µs right after the members' calls)."""

    def __init__(self, feature_names: list[str]) -> None:
        self.feature_names = feature_names
        self._index: Any = None  # the names as an Index, made at the first frame
        # The last columns checked, and the features' positions in them (None: the columns
        # are the features, in order), in one tuple: threads serving at once see a pair.
        self._last: tuple[Any, np.ndarray | None] = (None, None)

    def batch(self, frame: pd.DataFrame) -> BatchInputs:
        """The frame's rows as the members take them; a missing feature column raises
        ``InvalidInputError`` naming it, extra columns are ignored."""
        seen, positions = self._last
        if not frame.columns.is_(seen):
            positions = self._positions(frame.columns)
            if positions is False:  # a name repeated among the columns: pandas selects
                return BatchInputs(frame[self.feature_names], self.feature_names)
            self._last = (frame.columns, positions)
        return BatchInputs(frame, self.feature_names, positions)

    def _positions(self, columns: pd.Index) -> np.ndarray | None | bool:
        """None when the columns are the features in order, False when a name repeats among
        them, else each feature's column position. One dict of the labels does what
        ``require_columns``, ``Index.is_unique`` and ``Index.get_indexer`` would (about 20 µs
        for 64 columns, not 170)."""
        if self._index is None:
            import pandas as pd

            self._index = pd.Index(self.feature_names)
        if columns.equals(self._index):
            return None
        labels = columns.tolist()
        where = {label: at for at, label in enumerate(labels)}
        try:
            positions = np.array([where[name] for name in self.feature_names], dtype=np.intp)
        except KeyError:
            require_columns(labels, self.feature_names)  # raises, naming the first missing
            raise
        return positions if len(where) == len(labels) else False


class BatchInputs:
    """One batch in each form its members take, each built once: the caller's frame (or a
    frame of the caller's array, for models that take frames) and float32 arrays (for
    compiled members, and the log).

    ``positions``: where the features are among the columns of the frame ``X`` when they
    are not its columns in order (``FrameColumns``). The float32 rows are then taken from
    the whole frame's array: pandas' selection of columns by name costs about 11 µs a column
    and a block, its array about 2 µs a block, so a frame in another order or with extra
    columns is turned into the frame of the features only for a member that takes a frame.
    """

    def __init__(self, X: pd.DataFrame | np.ndarray, feature_names: list[str],
                 positions: np.ndarray | None = None) -> None:
        self.X = X
        self.rows = len(X)
        self.feature_names = feature_names
        self._positions = positions
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
        """The features as a frame, in the cards' order."""
        if self._frame is None:
            if isinstance(self.X, np.ndarray):
                import pandas as pd

                self._frame = pd.DataFrame(self.X, columns=self.feature_names)
            elif self._positions is not None:
                self._frame = self.X[self.feature_names]
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
            elif key is None and self._positions is not None:
                self._arrays[key] = self._taken()
            else:
                self._arrays[key] = (self.X if key is None else self.X[list(key)]
                                     ).to_numpy(dtype=np.float32)
        return self._arrays[key]

    def _taken(self) -> np.ndarray:
        """The features' float32 rows out of the whole frame's array; when a column the
        cards do not need is no number (or overflows float32), out of the features' frame."""
        try:
            with np.errstate(over="raise"):
                return self.X.to_numpy(dtype=np.float32)[:, self._positions]
        except Exception:  # an extra column's own trouble: the features alone decide
            return self.frame().to_numpy(dtype=np.float32)

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
