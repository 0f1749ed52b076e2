"""The domain's words, declared once: tasks, stages, deployment modes, weighting methods, groups.

Pages, the command line, the store and the lifecycle import these; none re-declares a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

Task = Literal["multiclass", "binary", "regression"]
TASKS: tuple[Task, ...] = get_args(Task)
#: The tasks whose models give class probabilities (``predict_proba``); a regression model
#: gives one number per row (``predict``).
CLASSIFICATION_TASKS: frozenset[Task] = frozenset({"multiclass", "binary"})


def is_regression(task: str) -> bool:
    """Whether ``task``'s models predict a number (``predict``), not class probabilities."""
    return task == "regression"

Stage = Literal["development", "candidate", "production", "champion", "archived"]
STAGES: tuple[Stage, ...] = get_args(Stage)
#: The way up, from a newly found model to the scope's one champion (``archived`` is off it).
STAGE_LADDER: tuple[Stage, ...] = ("development", "candidate", "production", "champion")
#: The stage of a model that has no record in the store.
DEFAULT_STAGE: Stage = "development"
#: The promoted set, which the seed calls "promoted": models in production or champion.
PROMOTED_STAGES: frozenset[Stage] = frozenset({"production", "champion"})

#: What kind of decision a recorded stage move was: an ordinary move, or a rollback.
MoveKind = Literal["move", "rollback"]

#: Who may do what in team mode, each role including the ones before it: viewers read,
#: analysts move models and edit weights and notes, approvers approve requests, admins edit
#: roles and deployment settings.
Role = Literal["viewer", "analyst", "approver", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
#: A request for a change that reaches production (four-eyes approval): a stage move (a new
#: champion, or gates overridden), a rollback, or a deployment change.
RequestKind = Literal["move", "rollback", "deployment"]
RequestStatus = Literal["pending", "approved", "rejected"]

Mode = Literal["ensemble", "champion", "canary"]
MODES: tuple[Mode, ...] = get_args(Mode)
#: How each mode is named to people, and one line on what it does. Champion mode is the
#: seed's "shadow" deployment: the other promoted models are scored on every request, logged,
#: never served.
MODE_LABELS: dict[Mode, str] = {"ensemble": "Ensemble", "champion": "Champion + shadow",
                                "canary": "Canary"}
MODE_HELP: dict[Mode, str] = {
    "ensemble": "Every promoted model answers, weighted by its ensemble weight.",
    "champion": "The champion answers every request; the other promoted models run in "
                "shadow (scored and logged, never served).",
    "canary": "One challenger answers a share of requests, the champion the rest; the others "
              "run in shadow."}
#: How each stage is named to people: the seed's "promoted" set is the production stage.
STAGE_LABELS: dict[Stage, str] = {"development": "development", "candidate": "candidate",
                                  "production": "production (promoted)",
                                  "champion": "champion", "archived": "archived"}

WeightsMethod = Literal["score", "equal", "greedy"]
WEIGHTS_METHODS: tuple[WeightsMethod, ...] = get_args(WeightsMethod)
#: The seed's rule (composite / sum of composites), used when nothing else was chosen.
DEFAULT_WEIGHTS_METHOD: WeightsMethod = "score"
#: How each method is named to people.
WEIGHTS_METHOD_LABELS: dict[WeightsMethod, str] = {
    "score": "score (composite / sum)", "equal": "equal", "greedy": "greedy (Caruana)"}

Group = Literal["tree", "neural", "variant", "linear"]
#: How each group is shown: the seed's phases.
GROUP_PHASE: dict[Group, str] = {"tree": "2A", "neural": "2B", "variant": "2C",
                                 "linear": "baseline"}
GROUPS: tuple[Group, ...] = get_args(Group)

SliceLoss = Literal["error", "log_loss", "residual"]


@dataclass(frozen=True)
class TaskRules:
    """Everything a task decides, in one place: which metric judges a model on its own (on
    the Leaderboard, the cards and live), the composite's default weights, and how a holdout
    slice's loss is measured and tested."""

    key_metric: str
    key_label: str
    default_weights: Mapping[str, float]
    #: ``error``: a row is right or wrong, tested with Fisher's exact test;
    #: ``log_loss``: each row's log loss, tested with Welch's t-test;
    #: ``residual``: each row's residual (predicted − actual), its mean tested against the
    #: other rows' with Welch's t-test: a slice the model over- or under-predicts.
    slice_loss: SliceLoss


#: The seed's top-5 accuracy judges multiclass models, ROC AUC binary ones (top-5 of two
#: classes is always 1), RMSE regression ones. Default weights are quality only: on a scope
#: where no model has skill (a fair lottery, a random walk) the composite must say so, not
#: reward the fastest guesser.
TASK_RULES: dict[Task, TaskRules] = {
    "multiclass": TaskRules(
        key_metric="top_5_accuracy", key_label="Top-5",
        default_weights={"top_5_accuracy": 0.4, "accuracy": 0.2, "balanced_accuracy": 0.1,
                         "log_loss": 0.3},
        slice_loss="error"),
    "binary": TaskRules(
        key_metric="roc_auc", key_label="AUC",
        default_weights={"roc_auc": 0.6, "log_loss": 0.3, "balanced_accuracy": 0.1},
        slice_loss="log_loss"),
    # RMSE leads (large misses cost most); MAE adds the typical miss; R² is RMSE's square
    # on another scale, so it gets the smallest share.
    "regression": TaskRules(
        key_metric="rmse", key_label="RMSE",
        default_weights={"rmse": 0.5, "mae": 0.3, "r2": 0.2},
        slice_loss="residual"),
}


def task_rules(task: str) -> TaskRules:
    """What ``task`` decides (see ``TaskRules``)."""
    return TASK_RULES[task]  # type: ignore[index]


def key_metric(task: str) -> str:
    """The metric that judges a model of ``task`` on its own."""
    return task_rules(task).key_metric


class _HasStage(Protocol):
    stage: str


def stage_of(stages: Mapping[str, _HasStage], model_name: str) -> str:
    """A model's stage among a scope's records; ``DEFAULT_STAGE`` when it has none."""
    record = stages.get(model_name)
    return record.stage if record is not None else DEFAULT_STAGE
