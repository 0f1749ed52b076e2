"""The prediction engine: serves a scope's exported model cards in the export's mode.

Modes (carried in the cards): ``ensemble`` serves the weighted ensemble; ``champion`` serves
the champion and scores every challenger on the same rows in shadow; ``canary`` lets one
challenger answer a fixed share of requests, chosen by a stable hash of the request id.
Every batch is written to the scope's prediction log before the answer is returned.

Every member's output is checked on every batch (``promotion.engine._checks``): a row whose
sum is off 1 by more than a tolerance is renormalized, as evaluation does, and reported; a
row that is not finite, has a negative value or sums to 0, and every row of a member that
raised or returned the wrong shape, is a *failed row* of that member. One rule, in every mode:

    A failed row never reaches the answer. The row is answered by the healthy models that
    decide it: in ``ensemble`` mode the other members, their weights scaled to sum to 1 on
    that row; in ``canary`` mode the other side (the champion for a canary row, the canary
    for a champion row). Shadow challengers and zero-weight members decide nothing, so their
    failures are only logged. When no healthy deciding model is left for a row (every
    weighted member failed on it, the champion failed in ``champion`` mode, or both sides in
    ``canary`` mode) the whole batch fails with one error naming the models and what they
    returned; nothing of it is answered or logged.

A regression export (cards of task ``regression``) is served the same way with one value per
row instead of a row of probabilities: each member's ``predict`` is checked (a value that is
not finite fails its row; see ``check_values``), the ensemble's answer is the weighted mean of
the members' values, ``predict`` returns the served values and ``predict_proba`` is refused.

Failed rows are logged (the log's ``failed`` flags; the model's probabilities are NaN there),
``Served.failed_models`` names, per request, the deciding models left out, and
``Served.notes`` says what was renormalized or failed. A batch of 0 rows is answered with 0
rows, and not logged.

It reads only the exported cards file, the model files the cards name and the scope's
``trusted_types`` setting for skops files; it imports neither the app nor the store. Before
loading a model it checks that the file stays inside the models root and that its sha256
matches the card, hashing the very bytes it then loads.

    from promotion.engine import PredictionEngine
    engine = PredictionEngine.load("digits", models_dir="models")
    proba = engine.predict_proba(frame, request_ids=ids)
    values = engine.predict(frame, request_ids=ids)   # a regression export
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

from ..contract import (
    ModelCard,
    feature_stats_path,
)
from ..errors import InvalidInputError
from ..vocabulary import is_regression
from ._cards import newest_cards_file, read_cards
from ._checks import (
    MemberNote,
    MemberOutput,
    check_output,
    check_values,
    failed_output,
    renormalized_detail,
)
from ._inputs import BatchInputs, FrameColumns
from ._loading import scope_trusted_types
from ._members import LoadedModel, load_member, load_preprocessor_of, member_method, output_names
from ._predlog import ENSEMBLE_CODE, LoggedBatch, PredictionLog, log_path
from ._preprocess import transform_features

if TYPE_CHECKING:  # the caller brings its frame, so pandas is loaded by then
    import pandas as pd

__all__ = ["LoadedModel", "PredictionEngine", "Served", "canary_bucket"]

ENSEMBLE = "ensemble"


def canary_bucket(request_id: str) -> float:
    """A stable number in [0, 1) for a request id: the same id always lands on the same side.

    blake2b of the id's UTF-8 bytes, not Python's ``hash()`` (salted per process).
    """
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


@dataclass(frozen=True)
class Served:
    """One served batch: the answer, and who gave it for each request.

    ``output`` is the answer: class probabilities (rows, classes), or for a regression export
    the predicted values (rows,). ``proba`` and ``predicted`` name it and refuse the other
    task's, so a caller never reads values as probabilities.
    """

    output: np.ndarray
    request_ids: list[str]
    served_by: list[str]  # a model name, or "ensemble"
    failed_models: list[tuple[str, ...]]  # per request, the deciding models that failed on it
    notes: list[MemberNote]  # what members did that the caller should hear of
    regression: bool = False

    @property
    def proba(self) -> np.ndarray:
        """The served class probabilities (rows, classes)."""
        if self.regression:
            raise TypeError("a regression answer holds predicted values, not class "
                            "probabilities: use .predicted")
        return self.output

    @property
    def predicted(self) -> np.ndarray:
        """The served values of a regression export (rows,)."""
        if not self.regression:
            raise TypeError("a classification answer holds class probabilities: use .proba")
        return self.output


class PredictionEngine:
    """A scope's promoted models, as exported, served in the export's deployment mode."""

    def __init__(self, members: Sequence[LoadedModel], source: Path,
                 log: PredictionLog | None = None, preprocessor: Any = None) -> None:
        self.members = list(members)
        self.source = source
        self.log = log
        self.preprocessor = preprocessor  # the scope's shared transformer, verified, or None
        first = self.members[0].card
        self.scope = first.scope
        self.feature_names = list(first.feature_names)
        self.classes = list(first.classes)
        self.regression = is_regression(first.task)
        self.mode = first.deployment_mode
        self.text_features = _text_features(source)
        by_role = {m.card.role: m for m in self.members}
        self.champion = by_role["champion"].card.model_name if "champion" in by_role else None
        canary = by_role.get("canary")
        self.canary = canary.card.model_name if canary else None
        self.canary_share = canary.card.traffic_share if canary else 0.0
        self._columns = FrameColumns(self.feature_names)  # where a frame keeps the features

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
        preprocessor = load_preprocessor_of(cards[0], models_dir, source, trusted)
        available = (list(cards[0].feature_names) if preprocessor is None
                     else output_names(preprocessor))
        members = [load_member(card, models_dir, source, trusted, available) for card in cards]
        return cls(members, source, PredictionLog(log_path(models_dir, scope)) if log else None,
                   preprocessor)

    @property
    def cards(self) -> list[ModelCard]:
        return [m.card for m in self.members]

    def serve(self, frame: pd.DataFrame, request_ids: Sequence[str] | None = None, *,
              times: Sequence[float] | Sequence[datetime] | None = None) -> Served:
        """Answer a batch in the export's mode and log it before returning.

        ``request_ids`` name the requests (unique; generated when omitted); they decide the
        canary side and join true labels later. ``times`` (unix seconds or datetimes, default
        now) are the requests' times, for replays. Shadow predictions never change the answer.
        A member's failed rows follow the rule of the module docstring; when no healthy model
        is left to answer a row this raises ``InvalidInputError`` and logs nothing.
        """
        X = self._features(frame)
        rows = X.rows
        ids = _request_ids(request_ids, rows)
        at = _times(times, rows)
        if rows == 0:  # nothing to ask the models (several refuse 0 rows), nothing to log
            return Served(self._shaped(np.zeros((0, self._width))), ids, [], [], [],
                          self.regression)
        outputs, latency = self._score_all(self._model_input(X))
        answer, served, left_out = self._answer(outputs, ids)
        failed = np.stack([out.failed for out in outputs], axis=1)
        if self.log is not None:  # committed before the answer leaves: nothing answered unlogged
            self._log(X, at, ids, [out.proba for out in outputs], latency, served, failed,
                      answer)
        names = [m.card.model_name for m in self.members]
        failed_models: list[tuple[str, ...]] = [()] * rows
        for row in np.flatnonzero(left_out.any(axis=1)).tolist():  # usually none
            failed_models[row] = tuple(names[k] for k in np.flatnonzero(left_out[row]))
        return Served(self._shaped(answer), ids,
                      [ENSEMBLE if code == ENSEMBLE_CODE else names[code]
                       for code in served.tolist()],
                      failed_models, self._notes(outputs, rows), self.regression)

    def predict_breakdown(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each member's checked output, unweighted: class probabilities (columns in
        ``classes`` order), or for regression predicted values (rows,); NaN on the rows it
        failed."""
        X = self._features(frame)
        if X.rows == 0:
            return {m.card.model_name: self._shaped(np.zeros((0, self._width)))
                    for m in self.members}
        given = self._model_input(X)
        return {m.card.model_name: self._shaped(self._member_output(m, given).proba)
                for m in self.members}

    def predict_proba(self, frame: pd.DataFrame, request_ids: Sequence[str] | None = None
                      ) -> np.ndarray:
        """The served probabilities (rows, classes): in ensemble mode the sum of each
        member's probabilities times its weight; see ``serve``. Refused on a regression
        export."""
        self._refuse_regression("predict_proba")
        return self.serve(frame, request_ids).proba

    def predict(self, frame: pd.DataFrame, request_ids: Sequence[str] | None = None
                ) -> np.ndarray:
        """Each row's answer. Regression: the served value (in ensemble mode the weighted
        mean of the members' values). Classification: on a binary scope the positive class
        where its probability reaches the decision threshold, else the most probable class."""
        served = self.serve(frame, request_ids)
        return served.predicted if self.regression else self.decide(served.proba)

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """The classes ``predict`` gives for served probabilities ``proba``."""
        self._refuse_regression("decide")
        labels = np.asarray(self.classes, dtype=object)
        if len(self.classes) != 2 or self.members[0].card.task != "binary":
            return labels[proba.argmax(axis=1)]
        first = self.members[0].card
        positive = first.positive_class if first.positive_class is not None else \
            self.classes[-1]
        threshold = first.decision_threshold if first.decision_threshold is not None else 0.5
        at = self.classes.index(positive)
        return np.where(proba[:, at] >= threshold, labels[at], labels[1 - at])

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

    @property
    def _width(self) -> int:
        """Columns of a member's checked output: one per class, or one predicted value."""
        return 1 if self.regression else len(self.classes)

    def _shaped(self, output: np.ndarray) -> np.ndarray:
        """An answer as callers get it: regression values as (rows,), probabilities as they
        are."""
        return output[:, 0] if self.regression else output

    def _refuse_regression(self, method: str) -> None:
        if self.regression:
            raise InvalidInputError(
                f"{self.source}: scope '{self.scope}' is a regression export: use predict "
                f"({method} is for class probabilities, and its models predict values)")

    def _log(self, X: BatchInputs, at: np.ndarray, ids: list[str], probas: list[np.ndarray],
             latency: dict[str, float], served: np.ndarray, failed: np.ndarray,
             answer: np.ndarray) -> None:
        """Write one served batch to the prediction log: all the work logging adds is here."""
        assert self.log is not None
        rows = X.rows
        # Probabilities are logged as float32; predicted values at full precision, with the
        # served value of each request (see promotion.engine._predlog).
        dtype = np.float64 if self.regression else np.float32
        self.log.append(LoggedBatch(
            at=at, export=self.source.name, mode=self.mode, canary=self.canary,
            canary_share=self.canary_share if self.canary else None,
            models=[m.card.model_name for m in self.members], classes=self.classes,
            features=self.feature_names, latency_ms=latency, request_ids=ids, served=served,
            probas=np.stack(probas, axis=1, dtype=dtype) if probas else np.zeros(
                (rows, 0, 0), dtype=dtype),
            inputs=X.logged(), failed=failed,
            served_values=answer[:, 0] if self.regression else None))

    def _decides(self, member: LoadedModel) -> bool:
        """Whether the member's output can be (part of) an answer."""
        if self.mode == ENSEMBLE:
            return member.card.ensemble_weight > 0
        return member.card.role in ("champion", "canary")

    def _score_all(self, X: BatchInputs) -> tuple[list[MemberOutput], dict[str, float]]:
        """Every member's checked output on every row, and its time per row."""
        outputs, latency = [], {}
        for member in self.members:
            started = time.perf_counter()
            outputs.append(self._member_output(member, X))
            latency[member.card.model_name] = (time.perf_counter() - started) * 1000 / X.rows
        return outputs, latency

    def _answer(self, outputs: list[MemberOutput], ids: list[str]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The answer; per request, who gave it (member index, or ENSEMBLE_CODE); and per
        request and member, whether a deciding member was left out because it failed."""
        failed = np.stack([out.failed for out in outputs], axis=1)
        if self.mode == ENSEMBLE:
            return self._ensemble_answer(outputs, failed)
        names = [m.card.model_name for m in self.members]
        rows = len(ids)
        primary = np.full(rows, names.index(str(self.champion)))
        other = primary.copy()  # champion mode: nobody else decides
        if self.canary is not None:
            chosen = np.array([canary_bucket(i) < self.canary_share for i in ids], dtype=bool)
            primary[chosen] = names.index(self.canary)
            other[~chosen] = names.index(self.canary)
        everyone = np.arange(rows)
        fell_back = failed[everyone, primary]
        served = np.where(fell_back, other, primary)
        unanswered = failed[everyone, served]
        if unanswered.any():
            self._no_healthy_model(outputs, unanswered, {*primary[unanswered],
                                                         *other[unanswered]})
        answer = np.empty((rows, self._width))
        for k in np.unique(served):
            answer[served == k] = outputs[k].proba[served == k]
        left_out = np.zeros_like(failed)
        left_out[everyone[fell_back], primary[fell_back]] = True
        return answer, served, left_out

    def _ensemble_answer(self, outputs: list[MemberOutput], failed: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        weights = np.array([m.card.ensemble_weight for m in self.members])
        answer: Any = 0
        for out, weight in zip(outputs, weights.tolist(), strict=True):
            # The consumer loop's sums, in its order: a row no member failed on is exactly
            # the seed's weighted sum. A failed row adds nothing here ...
            answer += (np.where(out.failed[:, None], 0.0, out.proba) if out.failed.any()
                       else out.proba) * weight
        left_out = failed & (weights > 0)
        hit = left_out.any(axis=1)
        if hit.any():  # ... and the healthy members' weights are scaled up to 1 on it
            healthy = (~failed[hit] * weights).sum(axis=1)
            if (healthy <= 0).any():
                unanswered = np.zeros(len(failed), dtype=bool)
                unanswered[np.flatnonzero(hit)[healthy <= 0]] = True
                self._no_healthy_model(outputs, unanswered, set(np.flatnonzero(weights > 0)))
            answer[hit] /= healthy[:, None]
        return np.asarray(answer), np.full(len(failed), ENSEMBLE_CODE), left_out

    def _no_healthy_model(self, outputs: list[MemberOutput], unanswered: np.ndarray,
                          deciders: set) -> None:
        """Fail the batch: name the deciding models that failed on the unanswered rows."""
        said = "; ".join(
            f"model '{self.members[k].card.model_name}' failed ({outputs[k].reason})"
            for k in sorted(int(k) for k in deciders) if outputs[k].failed[unanswered].any())
        raise InvalidInputError(
            f"no healthy model left to answer {int(unanswered.sum())} of {len(unanswered)} "
            f"rows ({self.mode} mode): {said}. Hint: fix the model, or take it out of the "
            "export (demote it, then export again)")

    def _notes(self, outputs: list[MemberOutput], rows: int) -> list[MemberNote]:
        """What each member's output needed: a renormalization, or others to answer."""
        notes = []
        for member, out in zip(self.members, outputs, strict=True):
            name = member.card.model_name
            if out.renormalized and out.sums is not None:
                notes.append(MemberNote(name, "renormalized", out.renormalized, rows,
                                        renormalized_detail(out.sums)))
            if out.failed.any():
                notes.append(MemberNote(name, "failed", int(out.failed.sum()), rows,
                                        f"({out.reason}); {self._fallback(member)}"))
        return notes

    def _fallback(self, member: LoadedModel) -> str:
        """Who answers the rows ``member`` failed on, in words."""
        if not self._decides(member):
            return "only logged: it decides no answer"
        if self.mode == ENSEMBLE:
            return "answered by the other members"
        return "answered by the canary" if member.card.role == "champion" else \
            "answered by the champion"

    def _features(self, frame: pd.DataFrame | np.ndarray) -> BatchInputs:
        if isinstance(frame, np.ndarray):
            if frame.ndim != 2 or frame.shape[1] != len(self.feature_names):
                raise InvalidInputError(
                    f"an input array of shape {frame.shape}; the cards need (rows, "
                    f"{len(self.feature_names)}) in their feature order (field feature_names)")
            return BatchInputs(frame, self.feature_names)
        return self._columns.batch(frame)

    def _model_input(self, X: BatchInputs) -> BatchInputs:
        """What the members take: the raw features, or the preprocessor's output on them
        (computed once per batch, for every member)."""
        if self.preprocessor is None:
            return X
        out = transform_features(self.preprocessor, X.frame(), f"{self.source}: the preprocessor")
        return BatchInputs(out, [str(c) for c in out.columns])

    def _member_output(self, member: LoadedModel, X: BatchInputs) -> MemberOutput:
        """The member's probabilities (regression: values) for the batch, checked (see
        ``promotion.engine._checks``)."""
        method = member_method(member.card.task)
        try:
            raw = getattr(member.model, method)(X.of(member))
        except Exception as err:  # a model's own failure: its rows fail, the rule decides
            return failed_output(X.rows, self._width,
                                 f"{method} raised {type(err).__name__}: {_first_line(err)}")
        if self.regression:
            return check_values(raw, X.rows)
        return check_output(raw, X.rows, member.positions, len(self.classes))


def _first_line(err: Exception) -> str:
    """An exception's message on one line (scikit-learn's run to several), at most 200
    characters."""
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""


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


def _text_features(source: Path) -> list[str]:
    """The features the export's holdout held as text categories (its feature statistics
    say so); none for an export without them (older ones had numbers only)."""
    try:
        stats = json.loads(feature_stats_path(source).read_text(encoding="utf-8"))
        return [str(f["name"]) for f in stats["features"] if f.get("kind") == "categories"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
