"""What is read from disk: ``scope.json`` and ``meta.json``, validated with pydantic.

The pydantic models are the one table of settings: each field carries its default and its
help text, which the settings table in docs/models-root.md is generated from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..engine._preprocess import PREPROCESSOR_SUFFIXES
from ..errors import InvalidInputError
from ..metrics import validate_weights
from ..vocabulary import Group, Mode, Task


class GateSettings(BaseModel):
    """``scope.json`` field ``gates``: thresholds of the promotion gates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_composite: float = Field(default=0.1, ge=0, le=1,
                                 description="Lowest composite score a promoted model may have.")
    min_improvement: float = Field(
        default=0.02, ge=0,
        description="Champion only: relative gain over the current champion's composite "
                    "(absolute gain over chance, 0, when there is none).")
    alpha: float = Field(default=0.05, gt=0, lt=1,
                         description="Champion only: significance level of the paired test.")
    max_latency_p95_ms: float = Field(default=500.0, gt=0,
                                      description="Highest single-row latency p95.")
    max_resource_ratio: float = Field(
        default=1.2, gt=0,
        description="Champion only: artifact size and load memory at most this times the "
                    "current champion's, when both are files of the same format.")
    resource_floor_mb: float = Field(
        default=1.0, ge=0,
        description="Champion only: a size or memory no more than this many MB above the "
                    "champion's passes, whatever the ratio.")
    max_error_rate: float = Field(default=0.001, ge=0, le=1,
                                  description="Error rate must be below this.")


class MlflowMirror(BaseModel):
    """``scope.json`` field ``mlflow``: mirror this scope's stages to an MLflow registered model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracking_uri: str = Field(
        min_length=1, description="MLflow tracking (and registry) URI, e.g. "
                                  "`http://mlflow:5000` or `sqlite:///mlflow.db`.")
    registered_model: str = Field(
        min_length=1, description="Registered model whose versions were imported into this "
                                  "scope; its `champion` alias and `stage` tags follow the "
                                  "decisions made here.")


class ErrorCosts(BaseModel):
    """``scope.json`` field ``error_costs`` (binary): what each kind of wrong decision costs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    false_positive: float = Field(ge=0, description="Cost of calling a negative row positive.")
    false_negative: float = Field(ge=0, description="Cost of missing a positive row.")


class DeploymentSettings(BaseModel):
    """``scope.json`` field ``deployment``: how the engine serves the promoted set until a
    decision on the Lifecycle page (or ``python -m promotion deploy``) replaces it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Field(
        default="ensemble",
        description="`ensemble` (weighted), `champion` (challengers in shadow) or `canary`.")
    canary: str | None = Field(default=None, description="Canary mode: the challenger.")
    canary_share: float | None = Field(
        default=None, gt=0, le=1,
        description="Canary mode: share of requests it answers (start at most 0.1).")

    @model_validator(mode="after")
    def _canary_needs_its_model(self) -> DeploymentSettings:
        if self.mode == "canary" and (self.canary is None or self.canary_share is None):
            raise ValueError("canary mode needs 'canary' and 'canary_share'")
        if self.mode == "canary" and self.canary_share is not None and self.canary_share > 0.1:
            raise ValueError("a canary starts at a share of at most 0.1")
        return self


class ScopeConfig(BaseModel):
    """``models/<scope>/scope.json``: one prediction problem whose models compete."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), frozen=True)

    task: Task = Field(description="`multiclass`, `binary` or `regression`.")
    target: str = Field(min_length=1, description="Name of the target column in the holdout.")
    holdout: str = Field(
        min_length=1, description="Holdout CSV, relative to the scope folder."
    )
    description: str = Field(default="", description="One line shown in the app.")
    classes: list[int] | list[str] | None = Field(
        default=None,
        description="All class labels, in order; default: the labels found in the holdout.",
    )
    positive_class: int | str | None = Field(
        default=None, description="Binary only: the positive label; default: the larger label."
    )
    features: list[str] | None = Field(
        default=None, description="Feature columns; default: every holdout column but the target."
    )
    preprocessor: str | None = Field(
        default=None,
        description="A fitted transformer (`.joblib` or `.skops`, relative to the scope folder) "
                    "applied to the feature columns before every model; see *Real data*.")
    decision_threshold: float = Field(
        default=0.5, gt=0, lt=1,
        description="Binary only: `predict` says the positive class when its probability is "
                    "at least this.")
    error_costs: ErrorCosts | None = Field(
        default=None,
        description="Binary only: cost of a false positive and of a false negative (keys "
                    "`false_positive`, `false_negative`); the Explorer shows a threshold's "
                    "cost with them.")
    weights: dict[str, float] | None = Field(
        default=None,
        description="Composite-score weights by metric name; default: see *Composite score*.",
    )
    n_bootstrap: int = Field(
        default=500, ge=50, le=5000, description="Bootstrap resamples for the 95% intervals."
    )
    bootstrap_seed: int = Field(default=0, description="Seed of the shared bootstrap resamples.")
    latency_rows: int = Field(
        default=100, ge=10, le=10000, description="Single-row calls timed per model for latency."
    )
    model_timeout_s: float = Field(
        default=600, gt=0, le=86400,
        description="Seconds one model's measurement may take (loading it, predicting the "
                    "holdout, the timed single-row calls); a model still running then is "
                    "stopped and shown as failed. A timeout is kept in the cache until this "
                    "limit is raised.")
    gates: GateSettings = Field(
        default_factory=GateSettings,
        description="Promotion gate thresholds; see *Gates* (unknown keys refused).")
    mlflow: MlflowMirror | None = Field(
        default=None,
        description="Mirror stages to an MLflow registered model (keys `tracking_uri`, "
                    "`registered_model`); see *Working with MLflow*.")
    trusted_types: list[str] = Field(
        default=[],
        description="Extra types `model.skops` files may hold, by full name; see *Model files*.")
    deployment: DeploymentSettings = Field(
        default_factory=DeploymentSettings,
        description="Default serving mode; see *Production* (unknown keys refused).")
    approval: bool | None = Field(
        default=None,
        description="Four-eyes approval of changes that reach production (a new champion, "
                    "gates overridden, a rollback, a deployment mode change, a canary above "
                    "50%); default: on in team mode, off in local mode. See *Teams*.")
    compile_members: bool = Field(
        default=True,
        description="Compile each promoted member to ONNX at export, verified on the holdout, "
                    "and serve it with onnxruntime; `false` serves every member from its own "
                    "file. See *Compiled members*.")

    @field_validator("holdout")
    @classmethod
    def _holdout_stays_in_scope(cls, value: str) -> str:
        path = Path(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a path inside the scope folder, like 'holdout.csv'")
        return value

    @field_validator("preprocessor")
    @classmethod
    def _preprocessor_in_scope(cls, value: str | None) -> str | None:
        if value is None:
            return value
        path = Path(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a path inside the scope folder, like "
                             "'preprocessor.joblib'")
        if path.suffix not in PREPROCESSOR_SUFFIXES:
            raise ValueError("must be a .joblib or .skops file")
        return value

    @field_validator("classes", "positive_class", "decision_threshold", "error_costs")
    @classmethod
    def _only_for_classes(cls, value: Any, info: ValidationInfo) -> Any:
        # Only values given in the file are validated: the defaults never trip this.
        if info.data.get("task") == "regression" and value is not None:
            raise ValueError("applies to classification scopes only; this scope's task is "
                             "regression")
        return value

    @field_validator("weights")
    @classmethod
    def _weights_fit_the_task(cls, value: dict[str, float] | None, info: ValidationInfo
                              ) -> dict[str, float] | None:
        # A field validator (not a model one), so the message names the field 'weights'.
        if value is not None:
            validate_weights(value, info.data.get("task"))
        return value


class MlflowOrigin(BaseModel):
    """``meta.json`` field ``mlflow``: the registered model version a model was imported from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registered_model: str = Field(min_length=1, description="MLflow registered model name.")
    version: int = Field(ge=1, description="Its version number.")
    run_id: str | None = Field(default=None, description="Run that logged the version.")
    source: str = Field(default="", description="The version's source URI in MLflow.")
    tracking_uri: str = Field(default="", description="Where it was imported from (no "
                                                      "credentials).")
    created_ms: int | None = Field(default=None, description="The version's creation time "
                                                             "(ms since the epoch).")


class ModelMeta(BaseModel):
    """``models/<scope>/<model>/meta.json``: describes a model; never holds its metrics."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), frozen=True)

    model_type: str = Field(min_length=1, description="Estimator family, e.g. `xgboost`.")
    group: Group = Field(description="`tree`, `neural`, `variant` or `linear`.")
    description: str = Field(default="", description="Free text.")
    seed: int | None = Field(default=None, description="Training seed.")
    params: dict[str, Any] = Field(default_factory=dict, description="Hyperparameters.")
    training: dict[str, Any] = Field(default_factory=dict, description="Training facts.")
    tags: dict[str, str] = Field(default_factory=dict, description="Free key/value labels.")
    mlflow: MlflowOrigin | None = Field(
        default=None, description="Where an imported model came from (written by "
                                  "`mlflow-import`).")
    model_file: Literal["model.joblib", "model.skops", "model.onnx", "model.txt", "model.ubj",
                        "model.json", "model.cbm"] | None = Field(
        default=None,
        description="Which file holds the model; default: the only model file present.")
    classes: list[str | int] | None = Field(
        default=None,
        description="LightGBM (`model.txt`) and XGBoost (`model.ubj`, `model.json`) files: the "
                    "label of each output column, in order; default: 0, 1, ...")


def read_json_model(path: Path, model: type[BaseModel], shown: str) -> Any:
    """Read ``path`` and validate it as ``model``; bad content raises one clear message."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{shown}: file is missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{shown}: cannot be read ({err})") from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise InvalidInputError(
            f"{shown}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{shown}: must hold a JSON object, not {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise InvalidInputError(describe_validation_error(shown, err, model)) from None


def _nested_model(model: type[BaseModel], loc: tuple) -> type[BaseModel]:
    """The settings model that ``loc`` (a path of field names) points into, e.g. gates."""
    for part in loc:
        field = model.model_fields.get(str(part))
        inner = field.annotation if field is not None else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            break
        model = inner
    return model


def describe_validation_error(shown: str, err: ValidationError, model: type[BaseModel]) -> str:
    """One line naming the file, the first bad field and what is wrong with it."""
    errors = err.errors(include_url=False)
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or "(root)"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    if first["type"] == "extra_forbidden":
        valid = ", ".join(_nested_model(model, first["loc"][:-1]).model_fields)
        return f"{shown}: unknown key '{field}'{more}. Hint: valid keys are {valid}"
    if first["type"] == "missing":
        return f"{shown}: field '{field}' is missing{more}"
    message = str(first["msg"]).removeprefix("Value error, ")
    got = first.get("input")
    shown_input = "" if isinstance(got, dict | list) else f" (got {got!r:.80})"
    return f"{shown}: field '{field}': {message}{shown_input}{more}"
