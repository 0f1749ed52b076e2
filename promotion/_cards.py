"""The export contract: model cards and the leaderboard file, as pydantic models.

Both files carry ``schema_version``; their JSON Schemas are generated from these models into
``schemas/`` so consumers in any language can validate them. This module imports only
pydantic: the prediction engine reads cards without pulling in the store or the app.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

SCHEMA_VERSION = 1
WEIGHT_TOLERANCE = 1e-9

#: Where exports live under the models root, and how their files are named.
EXPORT_AREA = "advanced"
LEADERBOARDS = "leaderboards"
MODEL_CARDS = "model_cards"
_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"
_STAMPED = re.compile(r"^(?P<kind>leaderboard|model_cards)_(?P<scope>.+)_"
                      r"(?P<stamp>\d{8}T\d{12}Z)\.json$")


def export_paths(models_dir: Path, scope: str, when: datetime) -> tuple[Path, Path]:
    """The leaderboard and model-cards paths of one export of ``scope`` made at ``when``."""
    stamp = when.strftime(_STAMP_FORMAT)
    area = Path(models_dir) / EXPORT_AREA
    return (area / LEADERBOARDS / f"leaderboard_{scope}_{stamp}.json",
            area / MODEL_CARDS / f"model_cards_{scope}_{stamp}.json")


def cards_files(models_dir: Path, scope: str) -> list[Path]:
    """The model-cards files of exactly ``scope`` (not of a scope whose name starts the same),
    oldest first: the timestamps in the names sort in time order."""
    folder = Path(models_dir) / EXPORT_AREA / MODEL_CARDS
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _STAMPED.match(path.name)
        if match and match["kind"] == "model_cards" and match["scope"] == scope:
            found.append((match["stamp"], path))
    return [path for _, path in sorted(found)]

WeightsMethod = Literal["score", "equal", "greedy"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class MetricValue(_Strict):
    """A measured metric with its bootstrap 95% interval (null where not sampled)."""

    value: float | None
    low: float | None = None
    high: float | None = None


class HoldoutInfo(_Strict):
    """The rows the metrics were measured on."""

    path: str = Field(description="Holdout CSV, relative to the folder holding the models root.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=1)


class ModelCard(_Strict):
    """One promoted model as the prediction engine and people read it."""

    schema_version: Literal[1] = SCHEMA_VERSION
    model_name: str = Field(min_length=1)
    model_type: str
    game: str = Field(description="The scope (the seed's name for it).")
    scope: str
    phase: str = Field(description="2A tree, 2B neural, 2C variant, baseline linear.")
    group: str
    stage: str
    is_champion: bool = False
    task: Literal["multiclass", "binary"]
    composite_score: float = Field(ge=0, le=1)
    composite_interval: tuple[float, float]
    health_score: float = Field(ge=0, le=1, description="Lower bound of the composite interval.")
    ensemble_weight: float = Field(ge=0, le=1)
    weights_method: WeightsMethod
    top_5_accuracy: float | None = Field(description="Multiclass only; null otherwise.")
    roc_auc: float | None = Field(default=None, description="Binary only; null otherwise.")
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
    classes: list[int] | list[str] = Field(min_length=2)
    holdout: HoldoutInfo
    generated_at: datetime

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
        return self


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

    schema_version: Literal[1] = SCHEMA_VERSION
    scope: str
    task: Literal["multiclass", "binary"]
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
