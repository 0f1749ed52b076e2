"""The export contract: model cards and the leaderboard file, as pydantic models.

Both files carry ``schema_version``; their JSON Schemas are generated from these models into
``schemas/`` so consumers in any language can validate them. This module imports only
pydantic: the prediction engine reads cards without pulling in the store or the app.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from .vocabulary import Mode, Task, WeightsMethod

SCHEMA_VERSION = 5
#: Versions this module still reads (version 1 cards predate deployment modes: ensemble;
#: versions 1 and 2 predate ``decisions``: such a file counts as older than any that has them;
#: versions 1 to 3 predate the preprocessor, positive class and decision threshold fields
#: and compiled members: every member is served from its own file; versions 1 to 4 predate
#: regression scopes, and every card of them lists at least two classes).
READABLE_VERSIONS = (1, 2, 3, 4, 5)
WEIGHT_TOLERANCE = 1e-9

#: Where exports live under the models root, and how their files are named.
EXPORT_AREA = "advanced"
LEADERBOARDS = "leaderboards"
MODEL_CARDS = "model_cards"
FEATURE_STATS = "feature_stats"
_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_STAMPED = re.compile(r"^(?P<kind>leaderboard|model_cards|feature_stats)_(?P<scope>.+)_"
                      r"(?P<stamp>\d{8}T\d{12}Z)\.json$")


def export_paths(models_dir: Path, scope: str, when: datetime) -> tuple[Path, Path]:
    """The leaderboard and model-cards paths of one export of ``scope`` made at ``when``."""
    stamp = when.strftime(_STAMP_FORMAT)
    area = Path(models_dir) / EXPORT_AREA
    return (area / LEADERBOARDS / f"leaderboard_{scope}_{stamp}.json",
            area / MODEL_CARDS / f"model_cards_{scope}_{stamp}.json")


def feature_stats_path(cards_path: Path) -> Path:
    """The feature statistics written with the export whose cards file is ``cards_path``.

    Both names carry the same scope and timestamp, so a cards file is always paired with the
    statistics of its own export, never with a newer or older one.
    """
    cards_path = Path(cards_path)
    name = cards_path.name.removeprefix("model_cards_")
    return cards_path.parent.parent / FEATURE_STATS / f"feature_stats_{name}"


def cards_files(models_dir: Path, scope: str) -> list[Path]:
    """The model-cards files of exactly ``scope`` (not of a scope whose name starts the same),
    oldest first in decision order (see ``export_order``): the last one is the export of the
    scope's newest decisions, the one the engine serves."""
    folder = Path(models_dir) / EXPORT_AREA / MODEL_CARDS
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _STAMPED.match(path.name)
        if match and match["kind"] == "model_cards" and match["scope"] == scope:
            found.append((export_order(path, match["stamp"]), path))
    return [path for _, path in sorted(found)]


#: Where a cards file without decisions (versions 1 and 2, or written by hand) sorts: before
#: every export that records its decisions.
_UNDECIDED = (-1, -1)
#: Where a cards file that cannot be read sorts: last, so the engine reads it and names the
#: problem rather than silently serving an older export.
_UNREADABLE = (math.inf, math.inf)


def export_order(path: Path, stamp: str = "") -> tuple:
    """Sort key of a cards file: the decisions it was built from (the newest stage move's id,
    then the newest deployment record's id), then, for exports of the same decisions, the
    one written last (modification time), then the time in its name.

    The name alone is not trusted: an export that started before a decision but finished
    after it, or a file named with a far-future time, would otherwise be served forever.
    """
    try:
        written = path.stat().st_mtime_ns
        cards = json.loads(path.read_text(encoding="utf-8"))
        first = cards[0] if isinstance(cards, list) and cards else None
        mark = first.get("decisions", None) if isinstance(first, dict) else None
        decided = _UNDECIDED if mark is None else (
            int(mark.get("transition_id") or 0), int(mark.get("deployment_id") or 0))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError):
        return (*_UNREADABLE, 0, stamp)
    return (*decided, written, stamp)


Role = Literal["member", "champion", "challenger", "canary"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class MetricValue(_Strict):
    """A measured metric with its bootstrap 95% interval (null where not sampled)."""

    value: float | None
    low: float | None = None
    high: float | None = None


class DecisionMark(_Strict):
    """The scope's newest decisions an export was built from, as the store numbers them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transition_id: int | None = Field(
        ge=1, description="Id of the scope's newest stage move (null: none yet).")
    deployment_id: int | None = Field(
        ge=1, description="Id of the scope's newest deployment record (null: none yet).")


class HoldoutInfo(_Strict):
    """The rows the metrics were measured on."""

    path: str = Field(description="Holdout CSV, relative to the folder holding the models root.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=1)


class ModelCard(_Strict):
    """One promoted model as the prediction engine and people read it."""

    schema_version: Literal[1, 2, 3, 4, 5] = SCHEMA_VERSION
    model_name: str = Field(min_length=1)
    model_type: str
    game: str = Field(description="The scope (the seed's name for it).")
    scope: str
    phase: str = Field(description="2A tree, 2B neural, 2C variant, baseline linear.")
    group: str
    stage: str
    is_champion: bool = False
    task: Task
    composite_score: float = Field(ge=0, le=1)
    composite_interval: tuple[float, float]
    health_score: float = Field(ge=0, le=1, description="Lower bound of the composite interval.")
    ensemble_weight: float = Field(ge=0, le=1)
    weights_method: WeightsMethod
    top_5_accuracy: float | None = Field(description="Multiclass only; null otherwise.")
    roc_auc: float | None = Field(default=None, description="Binary only; null otherwise.")
    rmse: float | None = Field(
        default=None, description="Regression only (its interval under metrics); null "
                                  "otherwise, and in files before version 5.")
    metrics: dict[str, MetricValue]
    strength: str
    known_bias: str
    recommended_use: str
    model_path: str = Field(
        min_length=1,
        description="Relative to the folder that holds the models root, "
                    "e.g. models/digits/xgboost/model.joblib.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the model file.")
    feature_names: list[str] = Field(min_length=1)
    classes: list[int] | list[str] = Field(
        description="The answer's columns, in the order of the models' predict_proba columns "
                    "(scikit-learn's sorted classes_); at least two. Empty for regression: "
                    "the answer is one predicted value per row.")
    positive_class: int | str | None = Field(
        default=None, description="Binary only: the class the scope calls positive; null "
                                  "otherwise, and in files before version 4 (then the last "
                                  "of classes).")
    decision_threshold: float | None = Field(
        default=None, gt=0, lt=1,
        description="Binary only: the prediction is positive_class when its probability is at "
                    "least this; null otherwise (0.5 in files before version 4).")
    preprocessor_path: str | None = Field(
        default=None, min_length=1,
        description="The scope's shared preprocessor, applied to feature_names before every "
                    "model, relative like model_path; null without one.")
    preprocessor_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the preprocessor file; null without one.")
    holdout: HoldoutInfo
    generated_at: datetime
    deployment_mode: Mode = Field(
        default="ensemble",
        description="How the engine serves the export: `ensemble` (weighted), `champion` "
                    "(the champion answers, challengers in shadow) or `canary` (a challenger "
                    "answers traffic_share of requests). Version 1 files: ensemble.")
    role: Role = Field(
        default="member",
        description="This model's part: `member` of the ensemble, `champion`, `challenger` "
                    "(scored in shadow) or `canary`.")
    traffic_share: float = Field(
        default=1.0, ge=0, le=1,
        description="Share of requests whose answer this model decides (ensemble members: 1, "
                    "each takes part in every answer; shadow challengers: 0).")
    decisions: DecisionMark | None = Field(
        default=None,
        description="The scope's newest decisions this export was built from; the engine "
                    "serves the export of the newest decisions. The same on every card of a "
                    "file. Null in version 1 and 2 files and cards written by hand: such a "
                    "file counts as older than any export that records its decisions.")
    compiled_path: str | None = Field(
        default=None,
        description="The member compiled to ONNX, verified on the holdout, relative to the "
                    "folder that holds the models root; the engine serves it with onnxruntime "
                    "instead of model_path. Null: served from model_path (see compiled_note).")
    compiled_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                        description="sha256 of the compiled file.")
    compiled_max_delta: float | None = Field(
        default=None, ge=0,
        description="Largest |difference| between the compiled and the native outputs "
                    "(probabilities; predicted values for regression) over every holdout row.")
    compiled_note: str | None = Field(
        default=None,
        description="How the member was compiled, or why it stays native. Null in version "
                    "1 to 3 files.")

    @model_validator(mode="after")
    def _compiled_pair(self) -> ModelCard:
        if (self.compiled_path is None) != (self.compiled_sha256 is None):
            raise ValueError("compiled_path and compiled_sha256 go together")
        return self

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, value: list) -> list:
        seen: set = set()
        for label in value:
            if label in seen:
                raise ValueError(f"repeats class {label!r}; each class is listed once")
            seen.add(label)
        return value

    @model_validator(mode="after")
    def _classes_fit_the_task(self) -> ModelCard:
        if self.task == "regression":
            if self.classes:
                raise ValueError("a regression card lists no classes (field 'classes' must be "
                                 "empty)")
            for name in ("top_5_accuracy", "roc_auc", "positive_class", "decision_threshold"):
                if getattr(self, name) is not None:
                    raise ValueError(f"field '{name}' is for classification; null on a "
                                     "regression card")
        elif len(self.classes) < 2:
            raise ValueError("field 'classes' lists at least two classes")
        return self

    @model_validator(mode="after")
    def _preprocessor_with_its_hash(self) -> ModelCard:
        if (self.preprocessor_path is None) != (self.preprocessor_sha256 is None):
            raise ValueError("preprocessor_path and preprocessor_sha256 come together")
        if self.positive_class is not None and self.positive_class not in self.classes:
            raise ValueError(f"positive_class {self.positive_class!r} is not one of the classes")
        return self

    @field_validator("ensemble_weight", "composite_score", "health_score")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class ModelCards(RootModel[list[ModelCard]]):
    """A model-cards file: a JSON array of the promoted models' cards of one scope."""

    @model_validator(mode="after")
    def _one_scope_weights_sum_to_one(self) -> ModelCards:
        cards = self.root
        if not cards:
            raise ValueError("holds no cards; export at least one promoted model")
        scopes = {card.scope for card in cards}
        if len(scopes) != 1:
            raise ValueError(f"mixes scopes {sorted(scopes)}; a cards file is for one scope")
        names = [card.model_name for card in cards]
        if len(set(names)) != len(names):
            raise ValueError("names a model twice")
        total = math.fsum(card.ensemble_weight for card in cards)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise ValueError(f"ensemble weights sum to {total:.12g}, not 1")
        if sum(card.is_champion for card in cards) > 1:
            raise ValueError("marks more than one champion")
        _check_same_across_cards(cards)
        _check_deployment(cards)
        return self


def _check_same_across_cards(cards: list[ModelCard]) -> None:
    """Every card of a file serves the same classes, in the same order (the engine's answer
    has one column per class), and was built from the same decisions."""
    first = cards[0]
    for k, card in enumerate(cards[1:], start=1):
        if list(card.classes) != list(first.classes):
            raise ValueError(
                f"card {k} ('{card.model_name}') field 'classes' is {list(card.classes)}, "
                f"which differs from card 0 ('{first.model_name}'): {list(first.classes)}; "
                "every card of a file lists the same classes in the same order")
        for field in ("positive_class", "decision_threshold", "preprocessor_path",
                      "preprocessor_sha256"):
            if getattr(card, field) != getattr(first, field):
                raise ValueError(f"card {k} ('{card.model_name}') field '{field}' differs from "
                                 f"card 0 ('{first.model_name}'); the export serves one scope")
        if card.decisions != first.decisions:
            raise ValueError(f"card {k} ('{card.model_name}') field 'decisions' differs from "
                             f"card 0 ('{first.model_name}'); a file is built from one set "
                             "of decisions")


def _check_deployment(cards: list[ModelCard]) -> None:
    """One mode per file; the roles and traffic shares that mode needs."""
    modes = {card.deployment_mode for card in cards}
    if len(modes) != 1:
        raise ValueError(f"mixes deployment modes {sorted(modes)}; a cards file has one")
    mode = modes.pop()
    roles = [card.role for card in cards]
    if mode == "ensemble":
        if set(roles) != {"member"}:
            raise ValueError("ensemble mode: every card's role must be 'member'")
        return
    if roles.count("champion") != 1:
        raise ValueError(f"{mode} mode needs exactly one card with role 'champion'")
    if "member" in roles:
        raise ValueError(f"{mode} mode: role 'member' is for ensemble mode only")
    if roles.count("canary") != (1 if mode == "canary" else 0):
        raise ValueError("canary mode needs exactly one card with role 'canary'"
                         if mode == "canary" else "champion mode has no canary")
    serving = math.fsum(card.traffic_share for card in cards
                        if card.role in ("champion", "canary"))
    if abs(serving - 1.0) > WEIGHT_TOLERANCE or any(
            card.traffic_share for card in cards if card.role == "challenger"):
        raise ValueError("traffic shares must sum to 1 over champion and canary, 0 for "
                         "shadow challengers")


class LeaderboardEntry(_Strict):
    """One ranked (or failed) model in an exported leaderboard."""

    rank: int | None
    model_name: str
    model_type: str
    group: str
    phase: str
    stage: str
    status: Literal["ok", "failed"]
    reason: str | None
    composite_score: float | None
    composite_interval: tuple[float, float] | None
    health_score: float | None
    tied_with_leader: bool
    metrics: dict[str, MetricValue]
    sha256: str | None


class LeaderboardExport(_Strict):
    """A leaderboard file: every model of a scope, ranked, with what it was measured on."""

    schema_version: Literal[1, 2, 3, 4, 5] = SCHEMA_VERSION
    scope: str
    task: Task
    generated_at: datetime
    composite_weights: dict[str, float]
    chance_levels: dict[str, float]
    holdout: HoldoutInfo
    models: list[LeaderboardEntry]


def json_schemas() -> dict[str, dict]:
    """The JSON Schemas of both export files, by file name."""
    return {
        "model_cards.schema.json": ModelCards.model_json_schema(),
        "leaderboard.schema.json": LeaderboardExport.model_json_schema(),
    }
