"""ONNX models run with onnxruntime, with the face the rest of the project expects.

One wrapper serves both uses: a scope member stored as ``model.onnx``, and a member the
export compiled to ONNX. Every ONNX model is an ``OnnxModel``, which exposes
``feature_names_in_`` (when the file says which columns it takes) and ``n_features_in_``. A
classifier loads as ``OnnxClassifier``, with ``classes_`` and ``predict_proba``, so evaluation,
the engine and the checks treat it like any fitted classifier; a regressor (asked for
``predict``) loads as ``OnnxRegressor``, whose ``predict`` gives one value per row and which has
no ``predict_proba``. Loading either parses a protobuf graph of
built-in operators: nothing is unpickled and no code from the file runs.

A file takes either one float tensor of every feature, in order (the compiled members' and
the converters' default), or one input per feature column named after it. A classifier's
labels come from the metadata key ``classes`` (a JSON list, written by ``compile_model``),
else from the classifier operator's own labels; its probabilities are the output that holds a
(rows, classes) tensor, or a ZipMap's list of label→probability maps. A regressor has no
labels; its values are the float output of one column (skl2onnx names it ``variable``, shape
(rows, 1)).

``compile_model`` (at export only) converts a fitted scikit-learn estimator, pipeline,
XGBoost or LightGBM classifier or regressor with skl2onnx and onnxmltools; they are imported
only there.
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
    """An ONNX file that cannot serve as the model asked for; the message says why."""


class OnnxModel:
    """An ONNX model: an onnxruntime session fed from a frame or an array, one thread per
    call."""

    def __init__(self, session: Any, feature_names: list[str] | None) -> None:
        self._session = session
        inputs = session.get_inputs()
        self._per_column = len(inputs) > 1
        self._inputs = [(i.name, _DTYPES.get(i.type, np.float32)) for i in inputs]
        if self._per_column:
            feature_names = [name for name, _ in self._inputs]
        self.feature_names_in_ = None if feature_names is None else np.asarray(
            feature_names, dtype=object)
        width = inputs[0].shape[-1] if inputs[0].shape else None
        self.n_features_in_ = len(inputs) if self._per_column else (
            width if isinstance(width, int) else None)

    @property
    def takes_array(self) -> bool:
        """Whether it takes one float32 array of every feature (not one input per column)."""
        return not self._per_column and self._inputs[0][1] is np.float32

    def _run(self, output: str, X: Any) -> Any:
        if self._per_column:
            feed = {name: np.asarray(X[name]).astype(dtype, copy=False).reshape(-1, 1)
                    for name, dtype in self._inputs}
        else:
            name, dtype = self._inputs[0]
            values = X.to_numpy(dtype=dtype) if hasattr(X, "to_numpy") else np.asarray(
                X, dtype=dtype)
            feed = {name: values}
        return self._session.run([output], feed)[0]

    def __getstate__(self) -> dict:  # sessions do not pickle; a worker never needs to
        raise TypeError("an ONNX model is loaded from its file, not pickled")


class OnnxClassifier(OnnxModel):
    """An ONNX classifier: ``predict_proba`` on a frame or an array."""

    def __init__(self, session: Any, classes: list, feature_names: list[str] | None) -> None:
        super().__init__(session, feature_names)
        self.classes_ = np.asarray(classes)
        self._output, self._zipmap = _probability_output(session)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (rows, classes) in ``classes_`` order."""
        out = self._run(self._output, X)
        if self._zipmap:  # a list of {label: probability}, one per row
            return np.array([[row[c] for c in self.classes_.tolist()] for row in out])
        return out


class OnnxRegressor(OnnxModel):
    """An ONNX regressor: ``predict`` gives one value per row; it has no class
    probabilities."""

    def __init__(self, session: Any, feature_names: list[str] | None) -> None:
        super().__init__(session, feature_names)
        output = _value_output(session)
        if output is None:
            outputs = ", ".join(f"{o.name} {o.type} {o.shape}" for o in session.get_outputs())
            raise OnnxModelError("has no value output (a float tensor of one column, rows × "
                                 f"1); outputs: {outputs}")
        self._output = output

    def predict(self, X: Any) -> np.ndarray:
        """The predicted value of each row (rows,)."""
        return np.asarray(self._run(self._output, X)).reshape(-1)

    @property
    def predict_proba(self) -> Any:
        # AttributeError: hasattr() is False, so loaders asking for predict_proba refuse it,
        # and a direct call reads why.
        raise AttributeError("an ONNX regressor predicts values, not class probabilities: "
                             "call predict")


def load_onnx(payload: bytes, shown: str, *, needs: str = "predict_proba"
              ) -> OnnxClassifier | OnnxRegressor:
    """An ``OnnxClassifier`` (``needs`` ``predict_proba``) or an ``OnnxRegressor`` (``needs``
    ``predict``) from verified bytes; a file that is not of that kind raises
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
    features = _json_list(meta.get(FEATURES_KEY), shown, FEATURES_KEY)
    try:
        if needs == "predict":
            if classes:
                raise OnnxModelError(f"is a classifier (it names class labels "
                                     f"{_shown_labels(classes)}), not a regressor: it has no "
                                     "predict for values")
            return OnnxRegressor(session, features)
        if not classes:
            if _value_output(session) is not None and len(session.get_outputs()) == 1:
                raise OnnxModelError("is a regressor (one value per row, no class labels), "
                                     "not a classifier: it has no predict_proba")
            raise OnnxModelError(
                "holds no class labels. Hint: add metadata_props key "
                f"'{CLASSES_KEY}' (a JSON list of the labels in the order of the probability "
                "columns)")
        return OnnxClassifier(session, classes, features)
    except OnnxModelError as err:
        raise OnnxModelError(f"{shown}: {err}") from None


def _shown_labels(classes: list) -> str:
    shown = ", ".join(repr(c) for c in classes[:5])
    return f"[{shown}{', ...' if len(classes) > 5 else ''}]"


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


def _value_output(session: Any) -> str | None:
    """The output holding a regressor's values: a float tensor of one column (rows × 1), or
    of rows only; None when there is none."""
    for output in session.get_outputs():
        shape = list(output.shape or ())
        if output.type in ("tensor(float)", "tensor(double)") and (
                len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            return output.name
    return None


def compile_model(model: Any, columns: list[str], classes: list | None) -> bytes:
    """The fitted ``model`` as ONNX bytes taking one float32 tensor of ``columns`` in order,
    with ``classes`` (a classifier's own ``classes_``; None for a regressor) and ``columns`` in
    its metadata.

    Raises ``OnnxModelError`` when no converter handles the model.
    """
    import copy

    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    _register_boosters()
    model = _plain_feature_names(copy.deepcopy(model))
    types = [(INPUT_NAME, FloatTensorType([None, len(columns)]))]
    # A classifier's probabilities as one tensor (no ZipMap); a regressor takes no options.
    options = None if classes is None else {"zipmap": False}
    try:
        onx = convert_sklearn(model, initial_types=types,
                              options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    except Exception as err:
        raise OnnxModelError(f"no ONNX converter for {type(model).__name__} "
                             f"({type(err).__name__}: {str(err).strip().splitlines()[0][:200]})"
                             ) from None
    metadata: list[tuple[str, list]] = [(FEATURES_KEY, columns)]
    if classes is not None:
        metadata.insert(0, (CLASSES_KEY, [_plain(c) for c in classes]))
    for key, value in metadata:
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
    """Teach skl2onnx XGBoost's and LightGBM's classifiers and regressors (onnxmltools'
    converters), so a pipeline ending in one converts like any scikit-learn pipeline."""
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(XGBClassifier, "XGBoostXGBClassifier",
                                    calculate_linear_classifier_output_shapes, convert_xgboost,
                                    options=options)
        update_registered_converter(XGBRegressor, "XGBoostXGBRegressor",
                                    calculate_linear_regressor_output_shapes, convert_xgboost)
    except ImportError:  # pragma: no cover - xgboost is optional for users
        pass
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier",
                                    calculate_linear_classifier_output_shapes, convert_lightgbm,
                                    options=options)
        update_registered_converter(LGBMRegressor, "LightGbmLGBMRegressor",
                                    calculate_linear_regressor_output_shapes, convert_lightgbm,
                                    options={"split": None})
    except ImportError:  # pragma: no cover
        pass
    _registered = True
