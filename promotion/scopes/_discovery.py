"""Finding scopes and models under a models root and reading them with validation.

A broken model is an entry with an ``error`` (the scope still ranks the others); a broken
scope is a :class:`ScopeProblem` (the other scopes still load).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..contract import EXPORT_AREA
from ..engine._loading import JOBLIB_FILE, ModelLoadError, inside_root, pick_model_file
from ..errors import (
    InvalidInputError,
    ModelNotFoundError,
    PromotionError,
    ScopeNotFoundError,
)
from ..vocabulary import GROUP_PHASE, is_regression
from ._config import ModelMeta, ScopeConfig, read_json_model

if TYPE_CHECKING:  # pandas loads where a frame is read or built; a cached board needs none
    import pandas as pd

MODEL_FILE = JOBLIB_FILE
META_FILE = "meta.json"
SCOPE_FILE = "scope.json"


def shown_path(path: Path, models_dir: Path) -> str:
    """``path`` as users see it: relative to the folder that holds the models root."""
    try:
        return path.relative_to(models_dir.parent).as_posix()
    except ValueError:
        return path.as_posix()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_version(path: Path, shown: str) -> str:
    """The sha256 of a model file; an unreadable or missing file is one clear message."""
    try:
        return file_sha256(path)
    except OSError as err:
        raise InvalidInputError(f"{shown}: cannot be read ({err.strerror or err})") from None


@dataclass(frozen=True)
class ModelEntry:
    """One model folder of a scope, read but not loaded."""

    name: str
    folder: Path
    meta: ModelMeta | None
    error: str | None = None
    model_file: str = MODEL_FILE  # model.joblib or model.skops

    @property
    def model_path(self) -> Path:
        return self.folder / self.model_file

    @property
    def model_type(self) -> str:
        return self.meta.model_type if self.meta else "unknown"

    @property
    def group(self) -> str:
        return self.meta.group if self.meta else "unknown"

    @property
    def phase(self) -> str:
        return GROUP_PHASE.get(self.group, "?")


@dataclass(frozen=True)
class Holdout:
    """The validated evaluation rows of a scope: for a classification task, ``y`` holds class
    labels (each one of ``classes``); for regression, numbers (float64) and ``classes`` is
    empty."""

    features: pd.DataFrame
    y: np.ndarray
    classes: list
    sha256: str

    @property
    def is_regression(self) -> bool:
        return not self.classes

    @cached_property
    def y_index(self) -> np.ndarray:
        """Each row's class as an index into ``classes`` (classification only)."""
        if self.is_regression:
            raise TypeError("a regression holdout has no classes")
        lookup = {label: i for i, label in enumerate(self.classes)}
        return np.fromiter((lookup[v] for v in self.y), dtype=np.int64, count=len(self.y))

    @cached_property
    def counts(self) -> np.ndarray:
        """Rows of each class in the holdout, in class order; for regression, one count (all
        the rows)."""
        if self.is_regression:
            return np.array([len(self.y)], dtype=np.int64)
        return np.bincount(self.y_index, minlength=len(self.classes))


@dataclass(frozen=True)
class Scope:
    """A prediction problem: its settings, holdout and model folders."""

    name: str
    folder: Path
    models_dir: Path
    config: ScopeConfig
    models: list[ModelEntry] = field(default_factory=list)

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def holdout_path(self) -> Path:
        return self.folder / self.config.holdout

    @property
    def preprocessor_path(self) -> Path | None:
        """The shared preprocessor's file (scope.json ``preprocessor``), if any."""
        named = self.config.preprocessor
        return None if named is None else self.folder / named

    def shown(self, path: Path) -> str:
        return shown_path(path, self.models_dir)

    def model(self, name: str) -> ModelEntry:
        for entry in self.models:
            if entry.name == name:
                return entry
        valid = ", ".join(e.name for e in self.models) or "(none)"
        raise ModelNotFoundError(
            f"scope '{self.name}' has no model '{name}'. Hint: models are {valid}"
        )

    def load_holdout(self) -> Holdout:
        """Read and validate the holdout rows; bad content raises one clear message."""
        return read_holdout(self.holdout_path, self.config, self.shown(self.holdout_path))


@dataclass(frozen=True)
class ScopeProblem:
    """A scope folder that could not be read, with the reason."""

    name: str
    folder: Path
    error: str


def scope_folders(models_dir: Path) -> list[Path]:
    """The folders under ``models_dir`` that are scopes (not the export area), by name."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(p for p in models_dir.iterdir() if _is_scope_folder(p))


def discover_scopes(models_dir: Path) -> list[Scope | ScopeProblem]:
    """Every scope under ``models_dir``, sorted by name; broken ones as :class:`ScopeProblem`."""
    models_dir = Path(models_dir)
    found: list[Scope | ScopeProblem] = []
    for folder in scope_folders(models_dir):
        try:
            found.append(_read_scope(folder, models_dir))
        except PromotionError as err:
            found.append(ScopeProblem(folder.name, folder, str(err)))
    return found


def load_scope(models_dir: Path, name: str) -> Scope:
    """The scope ``name``; unknown or broken scopes raise a :class:`PromotionError`."""
    models_dir = Path(models_dir)
    folder = models_dir / name
    if name in ("", ".", "..") or "/" in name or not _is_scope_folder(folder):
        known = [s.name for s in discover_scopes(models_dir)]
        hint = ", ".join(known) if known else "none (build the demo: python -m promotion demo)"
        raise ScopeNotFoundError(
            f"no scope '{name}' under {models_dir}. Hint: scopes are {hint}"
        )
    return _read_scope(folder, models_dir)


def _is_scope_folder(path: Path) -> bool:
    return path.is_dir() and not path.name.startswith(".") and path.name != EXPORT_AREA


def _read_scope(folder: Path, models_dir: Path) -> Scope:
    config = read_json_model(
        folder / SCOPE_FILE, ScopeConfig, shown_path(folder / SCOPE_FILE, models_dir)
    )
    root = models_dir.resolve()
    models = [
        _read_model_entry(child, models_dir, root)
        for child in sorted(folder.iterdir())
        if child.is_dir() and not child.name.startswith(".")
    ]
    return Scope(folder.name, folder, models_dir, config, models)


def _read_model_entry(folder: Path, models_dir: Path, resolved_root: Path) -> ModelEntry:
    shown_folder = shown_path(folder, models_dir)
    if any(not ch.isprintable() for ch in folder.name):
        return ModelEntry(folder.name, folder, None,
                          f"{shown_folder!r}: the folder name (the model name) holds control "
                          "characters. Hint: rename the folder")
    try:
        meta = read_json_model(
            folder / META_FILE, ModelMeta, shown_path(folder / META_FILE, models_dir)
        )
        file_name = pick_model_file(folder, meta.model_file, shown_folder)
    except InvalidInputError as err:
        return ModelEntry(folder.name, folder, None, str(err))
    shown = shown_path(folder / file_name, models_dir)
    try:  # nothing outside the models root is ever hashed or loaded
        inside_root(folder / file_name, models_dir, shown, resolved_root=resolved_root)
    except ModelLoadError as err:
        return ModelEntry(folder.name, folder, meta, str(err), file_name)
    if not (folder / file_name).is_file():
        return ModelEntry(folder.name, folder, meta, f"{shown}: file is missing", file_name)
    return ModelEntry(folder.name, folder, meta, None, file_name)


def read_holdout(path: Path, config: ScopeConfig, shown: str) -> Holdout:
    """Read a holdout CSV and check it against the scope's settings."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"{shown}: file is missing (scope.json field 'holdout')") \
            from None
    import pandas as pd

    try:  # the bytes hashed are the bytes parsed, even if the file is replaced meanwhile
        frame = pd.read_csv(io.BytesIO(raw))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{shown}: not a readable CSV ({err})") from None
    target = config.target
    if target not in frame.columns:
        raise InvalidInputError(
            f"{shown}: target column '{target}' (scope.json field 'target') is missing. "
            f"Hint: columns are {', '.join(map(str, frame.columns[:20]))}"
        )
    if len(frame) == 0:
        raise InvalidInputError(f"{shown}: has no rows")
    features = _feature_frame(frame, config, shown)
    y = frame[target]
    if y.isna().any():
        raise InvalidInputError(
            f"{shown}: column '{target}' has {int(y.isna().sum())} empty value(s)"
        )
    digest = hashlib.sha256(raw).hexdigest()
    if is_regression(config.task):
        return Holdout(features, _numeric_target(y, config, shown), [], digest)
    classes = _classes(y, config, shown)
    return Holdout(features, y.to_numpy(), classes, digest)


def _numeric_target(y: pd.Series, config: ScopeConfig, shown: str) -> np.ndarray:
    """A regression target: finite numbers that vary (a metric against a constant has no
    scale)."""
    import pandas as pd

    values = pd.to_numeric(y, errors="coerce")
    bad = values.isna()
    if bad.any():
        raise InvalidInputError(
            f"{shown}: column '{config.target}' holds {y[bad].iloc[0]!r}, not a number; "
            "scope.json field 'task' says regression")
    numbers = values.to_numpy(dtype=float)
    if not np.isfinite(numbers).all():
        raise InvalidInputError(f"{shown}: column '{config.target}' has "
                                f"{int((~np.isfinite(numbers)).sum())} infinite value(s)")
    if np.ptp(numbers) == 0:
        raise InvalidInputError(f"{shown}: column '{config.target}' has one value only "
                                f"({numbers[0]!r}); metrics need it to vary")
    return numbers


def _feature_frame(frame: pd.DataFrame, config: ScopeConfig, shown: str) -> pd.DataFrame:
    if config.features is not None:
        missing = [c for c in config.features if c not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"{shown}: feature column '{missing[0]}' (scope.json field 'features') is missing"
            )
        names = list(config.features)
    else:
        names = [c for c in frame.columns if c != config.target]
    if not names:
        raise InvalidInputError(f"{shown}: has no feature columns besides '{config.target}'")
    # Real data as pandas reads it: numbers, text categories, missing values. Whether a
    # model copes with them is the model's business (a failed row naming the column).
    # Infinity is no value a team records: it is a bug upstream, named here.
    features = frame[names]
    for column in features.select_dtypes("number").columns:
        bad = int(np.isinf(features[column].to_numpy(dtype=float)).sum())
        if bad:
            raise InvalidInputError(f"{shown}: column '{column}' has {bad} infinite value(s). "
                                    "Hint: leave a value empty when it is missing")
    return features


def _classes(y: pd.Series, config: ScopeConfig, shown: str) -> list:
    found = sorted(y.unique().tolist())
    if config.classes is not None:
        declared = list(config.classes)
        unknown = [v for v in found if v not in set(declared)]
        if unknown:
            raise InvalidInputError(
                f"{shown}: column '{config.target}' holds {unknown[0]!r}, which scope.json "
                f"field 'classes' does not list"
            )
        classes = declared
    else:
        classes = found
    if len(found) < 2:
        raise InvalidInputError(
            f"{shown}: column '{config.target}' has one class only ({found[0]!r}); "
            "metrics need at least two"
        )
    if config.task == "binary":
        if len(classes) != 2:
            raise InvalidInputError(
                f"{shown}: column '{config.target}' has {len(classes)} classes; "
                "scope.json field 'task' says binary"
            )
        if config.positive_class is not None:
            if config.positive_class not in classes:
                raise InvalidInputError(
                    f"{shown}: scope.json field 'positive_class' ({config.positive_class!r}) "
                    f"is not one of the classes {classes}"
                )
            classes = [c for c in classes if c != config.positive_class] + [
                config.positive_class
            ]
    return classes
