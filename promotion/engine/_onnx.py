"""ONNX models run with onnxruntime, with the face the rest of the project expects.

One wrapper serves both uses: a scope member stored as ``model.onnx``, and a member the
export compiled to ONNX. ``OnnxModel`` exposes ``classes_``, ``feature_names_in_`` (when the
file says which columns it takes), ``n_features_in_`` and ``predict_proba``, so evaluation,
the engine and the checks treat it like any fitted classifier. Loading it parses a protobuf
graph of built-in operators: nothing is unpickled and no code from the file runs.

A file takes either one float tensor of every feature, in order (the compiled members' and
the converters' default), or one input per feature column named after it. Its class labels
come from the metadata key ``classes`` (a JSON list, written by ``compile_model``), else from
the classifier operator's own labels. Its probabilities are the output that holds a
(rows, classes) tensor, or a ZipMap's list of label→probability maps.

``compile_model`` (at export only) converts a fitted scikit-learn estimator, pipeline,
XGBoost or LightGBM classifier with skl2onnx and onnxmltools; they are imported only there.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import InvalidInputError

ONNX_FILE = "model.onnx"
#: metadata_props keys written by ``compile_model`` and read by ``load_onnx``.
CLASSES_KEY = "classes"
FEATURES_KEY = "feature_names"
#: The input name of compiled members: one float32 tensor (rows, features).
INPUT_NAME = "input"
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
           "tensor(int64)": np.int64, "tensor(int32)": np.int32}
_LABEL_ATTRIBUTES = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")


class OnnxModelError(InvalidInputError):
    """An ONNX file that cannot serve as a classifier; the message says why."""


class OnnxModel:
    """An ONNX classifier: ``predict_proba`` on a frame or an array, one thread per call."""

    def __init__(self, session: Any, classes: list, feature_names: list[str] | None) -> None:
        self._session = session
        inputs = session.get_inputs()
        self._per_column = len(inputs) > 1
        self._inputs = [(i.name, _DTYPES.get(i.type, np.float32)) for i in inputs]
        if self._per_column:
            feature_names = [name for name, _ in self._inputs]
        self.classes_ = np.asarray(classes)
        self.feature_names_in_ = None if feature_names is None else np.asarray(
            feature_names, dtype=object)
        width = inputs[0].shape[-1] if inputs[0].shape else None
        self.n_features_in_ = len(inputs) if self._per_column else (
            width if isinstance(width, int) else None)
        self._output, self._zipmap = _probability_output(session)

    @property
    def takes_array(self) -> bool:
        """Whether it takes one float32 array of every feature (not one input per column)."""
        return not self._per_column and self._inputs[0][1] is np.float32

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (rows, classes) in ``classes_`` order."""
        if self._per_column:
            feed = {name: np.asarray(X[name]).astype(dtype, copy=False).reshape(-1, 1)
                    for name, dtype in self._inputs}
        else:
            name, dtype = self._inputs[0]
            values = X.to_numpy(dtype=dtype) if hasattr(X, "to_numpy") else np.asarray(
                X, dtype=dtype)
            feed = {name: values}
        out = self._session.run([self._output], feed)[0]
        if self._zipmap:  # a list of {label: probability}, one per row
            return np.array([[row[c] for c in self.classes_.tolist()] for row in out])
        return out

    def __getstate__(self) -> dict:  # sessions do not pickle; a worker never needs to
        raise TypeError("an ONNX model is loaded from its file, not pickled")


def load_onnx(payload: bytes, shown: str) -> OnnxModel:
    """An ``OnnxModel`` from verified bytes; a file that is not an ONNX classifier raises
    ``OnnxModelError`` naming ``shown``."""
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - a pinned dependency
        raise OnnxModelError(f"{shown}: needs onnxruntime (pip install onnxruntime)") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one row is served fastest without a thread pool
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    except Exception as err:
        raise OnnxModelError(f"{shown}: cannot be loaded: not a usable ONNX model "
                             f"({type(err).__name__}: {str(err).strip()[:200]})") from None
    meta = session.get_modelmeta().custom_metadata_map
    classes = _json_list(meta.get(CLASSES_KEY), shown, CLASSES_KEY)
    if classes is None:
        classes = _graph_labels(payload)
    if not classes:
        raise OnnxModelError(
            f"{shown}: holds no class labels. Hint: add metadata_props key '{CLASSES_KEY}' "
            "(a JSON list of the labels in the order of the probability columns)")
    features = _json_list(meta.get(FEATURES_KEY), shown, FEATURES_KEY)
    try:
        return OnnxModel(session, classes, features)
    except OnnxModelError as err:
        raise OnnxModelError(f"{shown}: {err}") from None


def _json_list(text: str | None, shown: str, key: str) -> list | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list):
        raise OnnxModelError(f"{shown}: metadata_props '{key}' is not a JSON list")
    return value


def _graph_labels(payload: bytes) -> list | None:
    """The labels of the graph's classifier operator (ZipMap, TreeEnsembleClassifier, ...)."""
    import onnx

    graph = onnx.load_from_string(payload).graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name in _LABEL_ATTRIBUTES:
                values = onnx.helper.get_attribute_value(attribute)
                return [v.decode() if isinstance(v, bytes) else int(v) for v in values]
    return None


def _probability_output(session: Any) -> tuple[str, bool]:
    """The output holding the probabilities, and whether it is a ZipMap's list of maps."""
    outputs = session.get_outputs()
    for output in outputs:
        if output.type in ("tensor(float)", "tensor(double)") and len(output.shape or ()) == 2:
            return output.name, False
    for output in outputs:
        if output.type.startswith("seq(map("):
            return output.name, True
    raise OnnxModelError("has no probability output (a float tensor of rows × classes, or a "
                         f"ZipMap); outputs: {', '.join(f'{o.name} {o.type}' for o in outputs)}")


def compile_model(model: Any, columns: list[str], classes: list) -> bytes:
    """The fitted ``model`` as ONNX bytes taking one float32 tensor of ``columns`` in order,
    with ``classes`` (the model's own ``classes_``) and ``columns`` in its metadata.

    Raises ``OnnxModelError`` when no converter handles the model.
    """
    import copy

    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    _register_boosters()
    model = _plain_feature_names(copy.deepcopy(model))
    types = [(INPUT_NAME, FloatTensorType([None, len(columns)]))]
    try:
        onx = convert_sklearn(model, initial_types=types,
                              options={"zipmap": False}, target_opset={"": 17, "ai.onnx.ml": 3})
    except Exception as err:
        raise OnnxModelError(f"no ONNX converter for {type(model).__name__} "
                             f"({type(err).__name__}: {str(err).strip().splitlines()[0][:200]})"
                             ) from None
    for key, value in ((CLASSES_KEY, [_plain(c) for c in classes]), (FEATURES_KEY, columns)):
        entry = onx.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    return onx.SerializeToString()


def _plain(label: Any) -> Any:
    return label.item() if isinstance(label, np.generic) else label


def _plain_feature_names(model: Any) -> Any:
    """XGBoost boosters fitted on a frame keep its column names, which onnxmltools' parser
    cannot read (it expects f0, f1, ...): the copy being converted forgets them."""
    steps = [step for _, step in model.steps] if hasattr(model, "steps") else [model]
    for step in steps:
        booster = getattr(step, "get_booster", None)
        if callable(booster):
            booster().feature_names = None
    return model


_registered = False


def _register_boosters() -> None:
    """Teach skl2onnx XGBoost's and LightGBM's classifiers (onnxmltools' converters), so a
    pipeline ending in one converts like any scikit-learn pipeline."""
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier

        update_registered_converter(XGBClassifier, "XGBoostXGBClassifier",
                                    calculate_linear_classifier_output_shapes, convert_xgboost,
                                    options=options)
    except ImportError:  # pragma: no cover - xgboost is optional for users
        pass
    try:
        from lightgbm import LGBMClassifier
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier",
                                    calculate_linear_classifier_output_shapes, convert_lightgbm,
                                    options=options)
    except ImportError:  # pragma: no cover
        pass
    _registered = True
