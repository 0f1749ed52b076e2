"""Loading a model file safely: the one place where model bytes become objects.

Loading a joblib file is unpickling it, which runs whatever code the file names. So before
anything is loaded the file must stay inside the models root (no ``..``, no symlink out) and
its bytes must hash to the sha256 the caller expects; the very bytes hashed are the ones
loaded. ``model.skops`` files are loaded with ``skops.io`` instead, which builds only types on
an explicit trusted list and refuses the rest, naming them. Native booster files (LightGBM,
XGBoost, CatBoost) are parsed by their own libraries (``_native``). The loader is chosen by
the file name's suffix.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ._native import NATIVE_LOADERS, NativeFormatError, not_installed
from ._onnx import ONNX_FILE

JOBLIB_FILE = "model.joblib"
SKOPS_FILE = "model.skops"
#: Native booster files, each parsed by its own library (see ``_native``), never unpickled.
NATIVE_FILES: tuple[str, ...] = ("model.txt", "model.ubj", "model.json", "model.cbm")
MODEL_FILES: tuple[str, ...] = (JOBLIB_FILE, SKOPS_FILE, ONNX_FILE, *NATIVE_FILES)
#: Files that hold no class labels: meta.json ``classes`` names their output columns.
LABELLED_BY_META: frozenset[str] = frozenset({".txt", ".ubj", ".json"})

#: Types beyond skops' own defaults (scikit-learn estimators, numpy, scipy) that the models
#: this project ships need. Each is plain fitted state of a scikit-learn estimator.
#: HistGradientBoosting's TreePredictor is left out on purpose: scikit-learn indexes its node
#: arrays without bounds checks, so a crafted file could crash the process; a scope that
#: accepts that risk lists it in scope.json ``trusted_types``.
SHIPPED_TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.tree._tree.Tree",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
)
#: What xgboost's scikit-learn wrappers need through skops (not trusted unless listed).
XGBOOST_TYPES: tuple[str, ...] = ("xgboost.core.Booster", "xgboost.sklearn.XGBClassifier")


class ModelLoadError(InvalidInputError):
    """A model file refused or not loadable; ``detail`` is the reason without the path."""

    def __init__(self, shown: str, detail: str) -> None:
        super().__init__(f"{shown}: {detail}")
        self.shown = shown
        self.detail = detail


@dataclass(frozen=True)
class LoadedFile:
    """A verified model object with the sha256 of the bytes it was built from."""

    model: Any
    sha256: str


def inside_root(path: Path, models_dir: Path, shown: str, *,
                resolved_root: Path | None = None) -> Path:
    """``path`` resolved, refused when it (through ``..`` or a symlink) leaves the models root.

    A caller checking many paths passes the root already resolved (``resolved_root``).
    """
    root = resolved_root or Path(models_dir).resolve()
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(root):
        plain = Path(os.path.normpath(Path(path).absolute()))
        why = " through a symlink" if resolved != plain else ""
        raise ModelLoadError(shown, f"leaves the models root {root}{why}; refused")
    return resolved


def read_model_bytes(path: Path, models_dir: Path, shown: str,
                     expected_sha256: str | None = None, what: str = "expected") -> bytes:
    """The file's bytes, after the root check and (when given) the sha256 check."""
    resolved = inside_root(path, models_dir, shown)
    try:
        payload = resolved.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(shown, "is missing") from None
    except OSError as err:
        raise ModelLoadError(shown, f"cannot be read ({err.strerror or err})") from None
    if expected_sha256 is not None:
        digest = hashlib.sha256(payload).hexdigest()
        if digest != expected_sha256:
            raise ModelLoadError(
                shown, f"does not match the {what} sha256 ({what} {expected_sha256[:12]}, "
                       f"file {digest[:12]}); refused before loading")
    return payload


def load_model_bytes(payload: bytes, file_name: str, shown: str,
                     trusted_types: tuple[str, ...] | list[str] = (),
                     classes: list | None = None, *, needs: str = "predict_proba") -> Any:
    """Build the model from verified bytes; it must have the method ``needs`` (a classifier
    ``predict_proba``, a regressor ``predict``, a preprocessor ``transform``).

    ``classes`` (meta.json's) names the output columns of a LightGBM or XGBoost booster. ONNX
    and native booster files are built as the kind ``needs`` asks for (a regressor for
    ``predict``), and a file of the other kind is refused, saying which it is.
    """
    kind = "predict" if needs == "predict" else "predict_proba"
    suffix = Path(file_name).suffix
    if classes is not None and suffix not in LABELLED_BY_META:
        raise ModelLoadError(shown, "keeps its own class labels (classes_): meta.json field "
                                    "'classes' is for LightGBM and XGBoost boosters only. "
                                    "Hint: remove it")
    if suffix == ".onnx":  # a graph of built-in operators: nothing is unpickled
        from ._onnx import OnnxModelError, load_onnx

        try:
            return load_onnx(payload, shown, needs=kind)
        except OnnxModelError as err:
            raise ModelLoadError(shown, str(err).removeprefix(f"{shown}: ")) from None
    if suffix in NATIVE_LOADERS:
        try:
            return NATIVE_LOADERS[suffix](payload, classes, kind)
        except NativeFormatError as err:
            raise ModelLoadError(shown, str(err)) from None
        except Exception as err:  # the library's own parser failing is a clear message too
            raise ModelLoadError(shown, f"cannot be loaded: {type(err).__name__}: "
                                        f"{str(err)[:200]}") from None
    if suffix == ".skops":
        model = _load_skops(payload, shown, tuple(trusted_types))
    else:
        import joblib

        try:
            model = joblib.load(io.BytesIO(payload))
        except ModuleNotFoundError as err:  # e.g. a CatBoost pickle without catboost
            package = (err.name or "?").split(".")[0]
            raise ModelLoadError(shown, not_installed(package, f"holds a model of {package}")
                                 ) from None
        except Exception as err:  # a broken file is a clear message, never a crash
            raise ModelLoadError(shown, f"cannot be loaded: {type(err).__name__}: "
                                        f"{str(err)[:200]}") from None
    if not callable(getattr(model, needs, None)):
        hint = (" (only decision_function, whose scores are not probabilities). Hint: wrap "
                "it in sklearn.calibration.CalibratedClassifierCV, fitted on training data, "
                "and save that" if needs == "predict_proba"
                and callable(getattr(model, "decision_function", None)) else "")
        raise ModelLoadError(shown, f"holds a {type(model).__name__}, which has no "
                                    f"{needs}{hint}")
    return model


def load_model_file(path: Path, models_dir: Path, shown: str, *,
                    expected_sha256: str | None = None, what: str = "expected",
                    trusted_types: tuple[str, ...] | list[str] = (),
                    classes: list | None = None, needs: str = "predict_proba") -> LoadedFile:
    """Check, hash and load one model (or preprocessor) file (see the module doc)."""
    payload = read_model_bytes(path, models_dir, shown, expected_sha256, what)
    model = load_model_bytes(payload, Path(path).name, shown, trusted_types, classes,
                             needs=needs)
    return LoadedFile(model, hashlib.sha256(payload).hexdigest())


def _load_skops(payload: bytes, shown: str, extra: tuple[str, ...]) -> Any:
    try:
        import skops.io as sio
    except ImportError:  # pragma: no cover - skops is a pinned dependency
        raise ModelLoadError(shown, "needs skops to be loaded (pip install skops)") from None
    allowed = set(SHIPPED_TRUSTED_TYPES) | set(extra)
    try:
        untrusted = sio.get_untrusted_types(data=payload)
    except Exception as err:
        raise ModelLoadError(shown, f"cannot be loaded: not a skops file ({type(err).__name__}: "
                                    f"{str(err)[:200]})") from None
    refused = sorted(set(untrusted) - allowed)
    if refused:
        hint = (" xgboost models load through skops only when scope.json trusts "
                f"{', '.join(XGBOOST_TYPES)}; or save them as model.joblib"
                if any(t.startswith("xgboost.") for t in refused) else "")
        raise ModelLoadError(
            shown, f"holds types that are not trusted: {', '.join(refused)}; refused. Hint: "
                   "if you trust them, list them in scope.json field 'trusted_types'." + hint)
    try:
        return sio.loads(payload, trusted=sorted(set(untrusted)))
    except Exception as err:
        raise ModelLoadError(shown, f"cannot be loaded: {type(err).__name__}: "
                                    f"{str(err)[:200]}") from None


def pick_model_file(folder: Path, named: str | None, shown_folder: str) -> str:
    """Which model file a folder holds: the one meta.json names, else the only one present."""
    if named is not None:
        return named
    present = [name for name in MODEL_FILES if (folder / name).exists()
               or (folder / name).is_symlink()]
    if len(present) > 1:
        raise InvalidInputError(
            f"{shown_folder}: holds both {' and '.join(present)}. Hint: keep one, or name it "
            "in meta.json field 'model_file'")
    return present[0] if present else JOBLIB_FILE


def scope_trusted_types(models_dir: Path, scope: str) -> tuple[str, ...]:
    """The scope's extra skops trusted types (scope.json ``trusted_types``), read narrowly.

    The engine reads this one field rather than the whole settings model, so it stays free of
    the evaluation code; a bad value trusts nothing extra.
    """
    try:
        data = json.loads((Path(models_dir) / scope / "scope.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    value = data.get("trusted_types") if isinstance(data, dict) else None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return ()
    return tuple(value)


def meta_classes(model_path: Path) -> list | None:
    """meta.json's ``classes`` beside a model file, read narrowly (the engine reads this one
    field, as it reads ``trusted_types``); None when it has none."""
    try:
        data = json.loads((Path(model_path).parent / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = data.get("classes") if isinstance(data, dict) else None
    return list(value) if isinstance(value, list) else None
