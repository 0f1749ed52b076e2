"""The prediction engine: serves a scope's exported model cards in the export's mode.

Modes (carried in the cards): ``ensemble`` serves the weighted ensemble; ``champion`` serves
the champion and scores every challenger on the same rows in shadow; ``canary`` lets one
challenger answer a fixed share of requests, chosen by a stable hash of the request id.
Every batch is written to the scope's prediction log before the answer is returned.

It reads only the exported cards file, the model files the cards name and the scope's
``trusted_types`` setting for skops files; it imports neither the app nor the store. Before
loading a model it checks that the file stays inside the models root and that its sha256
matches the card, hashing the very bytes it then loads.

    from promotion.engine import PredictionEngine
    engine = PredictionEngine.load("digits", models_dir="models")
    proba = engine.predict_proba(frame, request_ids=ids)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from ..contract import EXPORT_AREA, MODEL_CARDS, ModelCard, ModelCards, cards_files
from ..errors import InvalidInputError
from ._align import ClassMismatch, class_positions, model_columns
from ._loading import load_model_file, scope_trusted_types
from ._predlog import ENSEMBLE_CODE, LoggedBatch, PredictionLog, log_path

if TYPE_CHECKING:  # the caller brings its frame, so pandas is loaded by then
    import pandas as pd

__all__ = ["LoadedModel", "PredictionEngine", "Served", "canary_bucket", "newest_cards_file",
           "read_cards"]

ENSEMBLE = "ensemble"


def canary_bucket(request_id: str) -> float:
    """A stable number in [0, 1) for a request id: the same id always lands on the same side.

    blake2b of the id's UTF-8 bytes, not Python's ``hash()`` (salted per process).
    """
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


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


@dataclass(frozen=True)
class Served:
    """One served batch: the answer, and who gave it for each request."""

    proba: np.ndarray  # (rows, classes)
    request_ids: list[str]
    served_by: list[str]  # a model name, or "ensemble"


class PredictionEngine:
    """A scope's promoted models, as exported, served in the export's deployment mode."""

    def __init__(self, members: Sequence[LoadedModel], source: Path,
                 log: PredictionLog | None = None) -> None:
        self.members = list(members)
        self.source = source
        self.log = log
        first = self.members[0].card
        self.scope = first.scope
        self.feature_names = list(first.feature_names)
        self.classes = list(first.classes)
        self.mode = first.deployment_mode
        by_role = {m.card.role: m for m in self.members}
        self.champion = by_role["champion"].card.model_name if "champion" in by_role else None
        canary = by_role.get("canary")
        self.canary = canary.card.model_name if canary else None
        self.canary_share = canary.card.traffic_share if canary else 0.0

    @classmethod
    def load(cls, scope: str, models_dir: Path | str = "models", *,
             cards_file: Path | str | None = None, log: bool = True) -> PredictionEngine:
        """Load the newest complete export of ``scope`` (or ``cards_file``).

        With ``log`` (the default) every served batch is appended to the scope's prediction
        log, ``<models root>/advanced/prediction_log/<scope>.sqlite``.
        """
        models_dir = Path(models_dir)
        source = Path(cards_file) if cards_file else newest_cards_file(scope, models_dir)
        cards = read_cards(source)
        if cards[0].scope != scope:
            raise InvalidInputError(f"{source}: holds cards of scope '{cards[0].scope}', "
                                    f"not '{scope}'")
        trusted = scope_trusted_types(models_dir, scope)  # read scope.json once, not per card
        members = [_load_member(card, models_dir, source, trusted) for card in cards]
        return cls(members, source, PredictionLog(log_path(models_dir, scope)) if log else None)

    @property
    def cards(self) -> list[ModelCard]:
        return [m.card for m in self.members]

    def serve(self, frame: pd.DataFrame, request_ids: Sequence[str] | None = None, *,
              times: Sequence[float] | Sequence[datetime] | None = None) -> Served:
        """Answer a batch in the export's mode and log it before returning.

        ``request_ids`` name the requests (unique; generated when omitted); they decide the
        canary side and join true labels later. ``times`` (unix seconds or datetimes, default
        now) are the requests' times, for replays. Shadow predictions never change the answer.
        """
        X = self._features(frame)
        rows = len(X)
        ids = _request_ids(request_ids, rows)
        at = _times(times, rows)
        probas, latency, failed = self._score_all(X)
        proba, served = self._answer(probas, ids, failed)
        if self.log is not None:  # committed before the answer leaves: nothing answered unlogged
            self._log(X, at, ids, probas, latency, served, failed)
        names = [m.card.model_name for m in self.members]
        return Served(proba, ids, [ENSEMBLE if code == ENSEMBLE_CODE else names[code]
                                   for code in served.tolist()])

    def predict_breakdown(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each member's class probabilities (columns in ``classes`` order), unweighted."""
        X = self._features(frame)
        return {m.card.model_name: self._member_proba(m, X) for m in self.members}

    def predict_proba(self, frame: pd.DataFrame, request_ids: Sequence[str] | None = None
                      ) -> np.ndarray:
        """The served probabilities (rows, classes): in ensemble mode the sum of each
        member's probabilities times its weight; see ``serve``."""
        return self.serve(frame, request_ids).proba

    def predict(self, frame: pd.DataFrame, request_ids: Sequence[str] | None = None
                ) -> np.ndarray:
        """The most probable class of each row."""
        proba = self.predict_proba(frame, request_ids)
        return np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)]

    def explain(self) -> list[dict[str, Any]]:
        """What each member brings: role, weight, strength and known bias, for display."""
        return [{"model_name": m.card.model_name, "role": m.card.role,
                 "traffic_share": m.card.traffic_share,
                 "ensemble_weight": m.card.ensemble_weight,
                 "strength": m.card.strength, "known_bias": m.card.known_bias,
                 "recommended_use": m.card.recommended_use} for m in self.members]

    def close(self) -> None:
        """Close the prediction log's connection."""
        if self.log is not None:
            self.log.close()

    def _log(self, X: pd.DataFrame, at: np.ndarray, ids: list[str], probas: list[np.ndarray],
             latency: dict[str, float], served: np.ndarray, failed: np.ndarray) -> None:
        """Write one served batch to the prediction log: all the work logging adds is here."""
        assert self.log is not None
        rows = len(X)
        self.log.append(LoggedBatch(
            at=at, export=self.source.name, mode=self.mode, canary=self.canary,
            canary_share=self.canary_share if self.canary else None,
            models=[m.card.model_name for m in self.members], classes=self.classes,
            features=self.feature_names, latency_ms=latency, request_ids=ids, served=served,
            probas=np.stack(probas, axis=1, dtype=np.float32) if probas else np.zeros(
                (rows, 0, 0), dtype=np.float32),
            inputs=_numeric(X), failed=failed))

    def _required(self, member: LoadedModel) -> bool:
        # A failing model that decides answers fails the batch; a shadow one is only logged.
        return self.mode == ENSEMBLE or member.card.role == "champion"

    def _score_all(self, X: pd.DataFrame
                   ) -> tuple[list[np.ndarray], dict[str, float], np.ndarray]:
        """Every member's probabilities on every row, its time per row, and the failures
        (rows, members): a raised error or a non-finite output."""
        rows = len(X)
        probas, latency = [], {}
        failed = np.zeros((rows, len(self.members)), dtype=bool)
        for k, member in enumerate(self.members):
            name = member.card.model_name
            started = time.perf_counter()
            try:
                proba = self._member_proba(member, X)
            except InvalidInputError:
                if self._required(member):
                    raise
                proba = np.full((rows, len(self.classes)), np.nan)
            latency[name] = (time.perf_counter() - started) * 1000 / max(rows, 1)
            failed[:, k] = ~np.isfinite(proba).all(axis=1)
            probas.append(proba)
        return probas, latency, failed

    def _answer(self, probas: list[np.ndarray], ids: list[str], failed: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """The answer and, per request, who gave it (member index, or ENSEMBLE_CODE)."""
        if self.mode == ENSEMBLE:
            ensemble: Any = 0
            for member, proba in zip(self.members, probas, strict=True):
                ensemble += proba * member.card.ensemble_weight  # the consumer loop's sums
            return np.asarray(ensemble), np.full(len(ids), ENSEMBLE_CODE)
        names = [m.card.model_name for m in self.members]
        champion = names.index(str(self.champion))
        answer = probas[champion].copy()
        served = np.full(len(ids), champion)
        if self.canary is not None:
            canary = names.index(self.canary)
            # A canary that failed on a row falls back to the champion (logged as failed).
            chosen = np.array([canary_bucket(i) < self.canary_share for i in ids], dtype=bool)
            chosen &= ~failed[:, canary]
            answer[chosen] = probas[canary][chosen]
            served[chosen] = canary
        return answer, served

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


def _request_ids(request_ids: Sequence[str] | None, rows: int) -> list[str]:
    if request_ids is None:  # 128 random bits each, as hex; one urandom call, not one per row
        # (uuid4() per row cost a fifth of a 100,000-row batch)
        pool = os.urandom(16 * rows).hex()
        return [pool[i:i + 32] for i in range(0, 32 * rows, 32)]
    ids = [str(i) for i in request_ids]
    if len(ids) != rows:
        raise InvalidInputError(f"{len(ids)} request ids for {rows} rows (field request_ids)")
    if len(set(ids)) != rows:
        raise InvalidInputError("request ids repeat within the batch (field request_ids)")
    if any(not i.strip() or "\n" in i for i in ids):
        raise InvalidInputError("a request id is empty or holds a line break (field "
                                "request_ids)")
    return ids


def _times(times: Sequence[float] | Sequence[datetime] | None, rows: int) -> np.ndarray:
    if times is None:
        return np.full(rows, time.time())
    values = [t.timestamp() if isinstance(t, datetime) else float(t) for t in times]
    if len(values) != rows:
        raise InvalidInputError(f"{len(values)} times for {rows} rows (field times)")
    return np.asarray(values, dtype=float)


def _numeric(X: pd.DataFrame) -> np.ndarray:
    """The input rows as float32 for the log (drift); non-numeric cells become NaN."""
    import pandas as pd

    if all(pd.api.types.is_numeric_dtype(dtype) for dtype in X.dtypes):
        return X.to_numpy(dtype=np.float32)
    return X.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)


def _load_member(card: ModelCard, models_dir: Path, source: Path,
                 trusted_types: tuple[str, ...]) -> LoadedModel:
    where = f"{source}: card '{card.model_name}' field 'model_path'"
    # Root, symlink and sha256 checks come before a byte is loaded (see promotion.engine._loading).
    model = load_model_file(models_dir.parent / card.model_path, models_dir,
                            f"{where}: {card.model_path}", expected_sha256=card.sha256,
                            what="card's",
                            trusted_types=trusted_types).model
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
