"""The prediction engine: serves a scope's exported model cards as a weighted ensemble.

It reads only the exported cards file, the model files the cards name and the scope's
``trusted_types`` setting for skops files; it imports neither the app nor the store. Before
loading a model it checks that the file stays inside the models root and that its sha256
matches the card, hashing the very bytes it then loads.

    from promotion.engine import PredictionEngine
    engine = PredictionEngine.load("digits", models_dir="models")
    proba = engine.predict_proba(frame)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from ._align import ClassMismatch, class_positions, model_columns
from ._cards import EXPORT_AREA, MODEL_CARDS, ModelCard, ModelCards, cards_files
from ._errors import InvalidInputError
from ._loading import load_model_file, scope_trusted_types

__all__ = ["LoadedModel", "PredictionEngine", "newest_cards_file", "read_cards"]


def newest_cards_file(scope: str, models_dir: Path | str) -> Path:
    """The newest model-cards file of ``scope`` (export names sort in time order)."""
    found = cards_files(Path(models_dir), scope)
    if not found:
        folder = Path(models_dir) / EXPORT_AREA / MODEL_CARDS
        raise InvalidInputError(f"no model cards exported for scope '{scope}' in {folder}. "
                                f"Hint: python -m promotion export --scope {scope}")
    return found[-1]


def read_cards(path: Path) -> list[ModelCard]:
    """Read and validate a model-cards file; bad content raises one clear message."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: file is missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{path}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise InvalidInputError(f"{path}: not valid JSON (line {err.lineno}, column "
                                f"{err.colno}: {err.msg})") from None
    try:
        return ModelCards.model_validate(data).root
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        loc = list(first["loc"])
        where = (f"card {loc[0]} field '{'.'.join(map(str, loc[1:]))}'" if len(loc) > 1
                 else "the file")
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInputError(f"{path}: {where}: {message}") from None


@dataclass(frozen=True)
class LoadedModel:
    """One card with its verified, loaded model."""

    card: ModelCard
    model: Any
    columns: list[str] | None  # None when the model takes the cards' feature order as is
    positions: np.ndarray | None  # None when predict_proba already follows the card's classes


class PredictionEngine:
    """A weighted ensemble of a scope's promoted models, as exported."""

    def __init__(self, members: Sequence[LoadedModel], source: Path) -> None:
        self.members = list(members)
        self.source = source
        first = self.members[0].card
        self.scope = first.scope
        self.feature_names = list(first.feature_names)
        self.classes = list(first.classes)

    @classmethod
    def load(cls, scope: str, models_dir: Path | str = "models", *,
             cards_file: Path | str | None = None) -> PredictionEngine:
        """Load the newest complete export of ``scope`` (or ``cards_file``)."""
        models_dir = Path(models_dir)
        source = Path(cards_file) if cards_file else newest_cards_file(scope, models_dir)
        cards = read_cards(source)
        if cards[0].scope != scope:
            raise InvalidInputError(f"{source}: holds cards of scope '{cards[0].scope}', "
                                    f"not '{scope}'")
        return cls([_load_member(card, models_dir, source) for card in cards], source)

    @property
    def cards(self) -> list[ModelCard]:
        return [m.card for m in self.members]

    def predict_breakdown(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each member's class probabilities (columns in ``classes`` order), unweighted."""
        X = self._features(frame)
        return {m.card.model_name: self._member_proba(m, X) for m in self.members}

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """The weighted ensemble: sum of each member's probabilities times its weight."""
        X = self._features(frame)
        ensemble: Any = 0
        for member in self.members:  # the same arithmetic as the cards' consumer loop
            ensemble += self._member_proba(member, X) * member.card.ensemble_weight
        return np.asarray(ensemble)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The most probable class of each row."""
        return np.asarray(self.classes, dtype=object)[self.predict_proba(frame).argmax(axis=1)]

    def explain(self) -> list[dict[str, Any]]:
        """What each member brings: weight, strength and known bias, for display."""
        return [{"model_name": m.card.model_name, "ensemble_weight": m.card.ensemble_weight,
                 "strength": m.card.strength, "known_bias": m.card.known_bias,
                 "recommended_use": m.card.recommended_use} for m in self.members]

    def _features(self, frame: pd.DataFrame) -> pd.DataFrame:
        if list(frame.columns) == self.feature_names:  # already right: no copy
            return frame
        missing = [c for c in self.feature_names if c not in frame.columns]
        if missing:
            raise InvalidInputError(
                f"input is missing feature column '{missing[0]}'"
                + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                + f"; the cards need {len(self.feature_names)} columns (field feature_names)")
        return frame[self.feature_names]

    def _member_proba(self, member: LoadedModel, X: pd.DataFrame) -> np.ndarray:
        try:
            raw = member.model.predict_proba(X if member.columns is None else X[member.columns])
        except Exception as err:  # a model's own failure, reported with its name
            raise InvalidInputError(f"model '{member.card.model_name}' failed to predict: "
                                    f"{type(err).__name__}: {err}") from None
        if member.positions is None:
            return raw
        aligned = np.zeros((raw.shape[0], len(self.classes)))
        aligned[:, member.positions] = raw
        return aligned


def _load_member(card: ModelCard, models_dir: Path, source: Path) -> LoadedModel:
    where = f"{source}: card '{card.model_name}' field 'model_path'"
    # Root, symlink and sha256 checks come before a byte is loaded (see promotion._loading).
    model = load_model_file(models_dir.parent / card.model_path, models_dir,
                            f"{where}: {card.model_path}", expected_sha256=card.sha256,
                            what="card's",
                            trusted_types=scope_trusted_types(models_dir, card.scope)).model
    try:
        columns = model_columns(model, list(card.feature_names))
        positions = class_positions(model, list(card.classes))
    except KeyError as err:
        raise InvalidInputError(f"{where}: the model needs column(s) the card lacks: "
                                f"{err.args[0]}") from None
    except ClassMismatch as err:
        raise InvalidInputError(f"{where}: {err}") from None
    in_order = np.array_equal(positions, np.arange(len(card.classes)))
    same_columns = columns == list(card.feature_names)
    return LoadedModel(card, model, None if same_columns else columns,
                       None if in_order else positions)
