"""Model cards of the promoted set and the atomic export the prediction engine loads.

An export records the decisions it was built from (``DecisionMark``: the scope's newest stage
move and deployment record, read before anything else) and is refused when a decision lands
before its cards are written; the engine serves the export of the newest decisions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import ValidationError

from .._jsonio import dumps, sweep_stale_temps, write_atomic
from ..contract import (
    DecisionMark,
    HoldoutInfo,
    LeaderboardExport,
    ModelCard,
    ModelCards,
    export_paths,
    feature_stats_path,
)
from ..errors import InvalidInputError
from ..evaluation._cache import load_row_predictions
from ..evaluation._measure import model_features
from ..evaluation._results import ModelEvaluation, RowPredictions, ScopeEvaluation
from ..lifecycle._deployment import deployment_of
from ..metrics import get_metric
from ..monitoring._drift import feature_stats
from ..scopes._discovery import Holdout, Scope, model_version, shown_path
from ..scoring._composite import Leaderboard, LeaderboardRow
from ..scoring._gates import skilled_models
from ..store._abstract import Store
from ..store._entities import DeploymentRecord, StageRecord
from ..vocabulary import (
    DEFAULT_WEIGHTS_METHOD,
    PROMOTED_STAGES,
    WeightsMethod,
    is_regression,
    key_metric,
)
from ._compile import compile_members
from ._ensemble import DEFAULT_ENSEMBLE_SIZE, EnsembleReport, compare_methods, ensemble_weights
from ._slices import describe_findings, recommended_use, slice_tests

if TYPE_CHECKING:  # pandas loads where a frame is built; a cached leaderboard needs none
    import pandas as pd

#: The card fields an analyst may word, with their labels.
TEXT_FIELDS: dict[str, str] = {"strength": "Strength", "known_bias": "Known bias",
                               "recommended_use": "Recommended use"}


@dataclass(frozen=True)
class ExportPaths:
    """Where an export was written."""

    leaderboard: Path
    model_cards: Path
    cards: list[ModelCard]
    feature_stats: Path | None = None


@dataclass(frozen=True)
class PromotedSet:
    """The promoted models of a scope with everything a card needs, checked for changes."""

    scope: Scope
    board: Leaderboard
    evaluation: ScopeEvaluation
    holdout: Holdout
    rows: list[LeaderboardRow]
    records: dict[str, StageRecord]
    #: Each member's holdout output, in ``rows`` order: class probabilities (rows, classes),
    #: or for a regression scope predicted values (rows,).
    outputs: list[np.ndarray]
    decisions: DecisionMark | None = None  # read before the records: what they reflect

    @property
    def targets(self) -> np.ndarray:
        """What the outputs are scored against: each holdout row's class index, or for a
        regression scope its target value."""
        return self.holdout.y if self.holdout.is_regression else self.holdout.y_index


def decision_mark(store: Store, scope: str) -> DecisionMark:
    """The scope's newest decisions: its newest stage move's and deployment record's ids."""
    history, deployments = store.history(scope), store.deployments(scope)
    return DecisionMark(transition_id=history[-1].id if history else None,
                        deployment_id=deployments[-1].id if deployments else None)


def _check_no_decision_since(store: Store, scope: str, built_from: DecisionMark) -> None:
    """Refuse an export when a decision landed after it read the promoted set: its cards
    would serve what was decided before."""
    now = decision_mark(store, scope)
    if now == built_from:
        return
    if now.transition_id != built_from.transition_id:
        move = store.history(scope)[-1]
        what = f"{move.model_name}: {move.from_stage} -> {move.to_stage} by {move.actor}"
    else:
        record = store.deployments(scope)[-1]
        what = f"deployment: {record.mode} mode by {record.actor}"
    raise InvalidInputError(f"a decision on scope '{scope}' landed while this export was "
                            f"built ({what}). Hint: export again, so the cards follow it")


def promoted_set(scope: Scope, store: Store, evaluation: ScopeEvaluation, board: Leaderboard,
                 holdout: Holdout | None = None) -> PromotedSet:
    """The promoted models in rank order; refuses an empty set or a changed model file."""
    decisions = decision_mark(store, scope.name)  # first: the records read next reflect it
    records = {n: r for n, r in store.stages(scope.name).items() if r.stage in PROMOTED_STAGES}
    if not records:
        raise InvalidInputError(f"nothing is promoted in scope '{scope.name}'. Hint: promote at "
                                "least one model first")
    by_name = {m.model_name: m for m in evaluation.models}
    rows = []
    for name in records:
        row = board.row(name) if name in by_name else None
        if row is None or not row.ok:
            raise InvalidInputError(f"promoted model '{name}' of scope '{scope.name}' has no "
                                    "measured score now. Hint: fix it or demote it")
        _check_unchanged(scope, by_name[name], records[name])
        rows.append(row)
    rows.sort(key=lambda r: r.rank or 0)
    holdout = holdout or scope.load_holdout()
    outputs = []
    for row in rows:
        predicted = load_row_predictions(store, by_name[row.model_name])
        if predicted is None:
            raise InvalidInputError(f"no stored predictions for '{row.model_name}'. Hint: "
                                    "evaluate the scope again")
        outputs.append(predicted.output)
    return PromotedSet(scope, board, evaluation, holdout, rows, records, outputs, decisions)


def _check_unchanged(scope: Scope, evaluated: ModelEvaluation, record: StageRecord) -> None:
    path = scope.model(evaluated.model_name).model_path
    shown = scope.shown(path)
    current = model_version(path, shown)
    if current != evaluated.sha256:
        raise InvalidInputError(
            f"{shown}: changed since it was evaluated (evaluated {evaluated.sha256[:12]}, "
            f"file now {current[:12]}). Hint: reload to evaluate it again")
    if record.model_sha256 is not None and current != record.model_sha256:
        raise InvalidInputError(
            f"{shown}: changed since it was promoted (promoted {record.model_sha256[:12]}, "
            f"file now {current[:12]}). Hint: review the new version and promote it again")


def derived_texts(scope: Scope, store: Store, evaluation: ScopeEvaluation, model_name: str,
                  holdout: Holdout, board: Leaderboard, weight: float | None) -> dict[str, str]:
    """Strength, known bias and recommended use from the holdout evidence."""
    evaluated = next(m for m in evaluation.models if m.model_name == model_name)
    skilled = model_name in skilled_models(board, evaluation, scope.config.gates.alpha)
    return _derived(scope, holdout, load_row_predictions(store, evaluated), model_name,
                    _ranked_frame(board), weight, skilled)


def _derived(scope: Scope, holdout: Holdout, rows: RowPredictions | None, model_name: str,
             ranked: pd.DataFrame, weight: float | None, skilled: bool) -> dict[str, str]:
    task, target = scope.task, scope.config.target
    tested = [] if rows is None else slice_tests(rows, holdout, task, target=target)
    return {
        "strength": describe_findings(tested, task, better=True, target=target),
        "known_bias": describe_findings(tested, task, better=False, target=target),
        "recommended_use": recommended_use(model_name, ranked, weight, skilled=skilled),
    }


def _ranked_frame(board: Leaderboard) -> pd.DataFrame:
    frame = board.to_frame()
    return frame[frame["status"] == "ok"]


def build_cards(promoted: PromotedSet, store: Store,
                method: WeightsMethod = DEFAULT_WEIGHTS_METHOD, *,
                size: int = DEFAULT_ENSEMBLE_SIZE, now: datetime | None = None
                ) -> list[ModelCard]:
    """One card per promoted model, with normalized ensemble weights by ``method``."""
    scope, board = promoted.scope, promoted.board
    names = [r.model_name for r in promoted.rows]
    weights = ensemble_weights(method, names, [r.composite_score or 0.0 for r in promoted.rows],
                               promoted.outputs, promoted.targets,
                               seed=scope.config.bootstrap_seed, size=size)
    now = now or datetime.now(UTC)
    holdout_info = _holdout_info(scope, promoted.evaluation)
    ranked = _ranked_frame(board)
    skilled = skilled_models(board, promoted.evaluation, scope.config.gates.alpha)
    written = store.annotations(scope.name)
    serving = _serving(promoted, deployment_of(store, scope))
    try:
        cards = [_card(promoted, row, output, weights[row.model_name], method, ranked, written,
                       holdout_info, now, row.model_name in skilled).model_copy(
                           update={**serving[row.model_name], "decisions": promoted.decisions})
                 for row, output in zip(promoted.rows, promoted.outputs, strict=True)]
        ModelCards(cards)  # the same checks the engine makes on reading
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"])
        raise InvalidInputError(f"cannot build the cards of scope '{scope.name}': field "
                                f"'{field}': {first['msg']}") from None
    return cards


def _card(promoted: PromotedSet, row: LeaderboardRow, output: np.ndarray, weight: float,
          method: str, ranked: pd.DataFrame, written: dict[str, dict[str, str]],
          holdout_info: HoldoutInfo, now: datetime, skilled: bool) -> ModelCard:
    scope, holdout = promoted.scope, promoted.holdout
    no_errors = np.zeros(len(holdout.y), dtype=bool)
    derived = _derived(scope, holdout, RowPredictions(output, no_errors), row.model_name,
                       ranked, weight, skilled)
    mine = written.get(row.model_name, {})
    texts = {field: mine.get(field) or derived[field] for field in TEXT_FIELDS}
    record = promoted.records[row.model_name]
    return ModelCard(
        model_name=row.model_name, model_type=row.model_type, game=scope.name,
        scope=scope.name, phase=row.phase, group=row.group, stage=record.stage,
        is_champion=record.stage == "champion", task=scope.task,
        composite_score=row.composite_score, composite_interval=row.composite_interval,
        health_score=row.health_score, ensemble_weight=weight, weights_method=method,
        top_5_accuracy=row.metrics.get("top_5_accuracy"), roc_auc=row.metrics.get("roc_auc"),
        rmse=row.metrics.get("rmse"), metrics=row.metric_values(), **texts,
        model_path=shown_path(scope.model(row.model_name).model_path, scope.models_dir),
        sha256=row.sha256, feature_names=list(holdout.features.columns),
        classes=served_classes(holdout.classes), **_binary_fields(scope, holdout),
        **_preprocessor_fields(scope), holdout=holdout_info, generated_at=now)


def served_classes(classes: list) -> list:
    """The classes in the order of the models' predict_proba columns: scikit-learn (and
    every library following its API) sorts ``classes_``. So the consumer loop's
    ``model.predict_proba(X)`` columns are the cards' ``classes``, whatever order the scope
    keeps them in (a binary scope keeps its positive class last)."""
    return sorted(classes)


def _binary_fields(scope: Scope, holdout: Holdout) -> dict:
    if scope.task != "binary":
        return {}
    return {"positive_class": holdout.classes[-1],
            "decision_threshold": scope.config.decision_threshold}


def _preprocessor_fields(scope: Scope) -> dict:
    path = scope.preprocessor_path
    if path is None:
        return {}
    return {"preprocessor_path": shown_path(path, scope.models_dir),
            "preprocessor_sha256": model_version(path, scope.shown(path))}


def _serving(promoted: PromotedSet, deployment: DeploymentRecord) -> dict[str, dict]:
    """Each card's deployment fields: the mode, its role and its traffic share."""
    mode = deployment.mode
    names = [row.model_name for row in promoted.rows]
    if mode == "ensemble":
        return {n: {"deployment_mode": mode, "role": "member", "traffic_share": 1.0}
                for n in names}
    scope = promoted.scope.name
    champion = next((n for n in names if promoted.records[n].stage == "champion"), None)
    if champion is None:
        raise InvalidInputError(f"scope '{scope}' is deployed in {mode} mode but has no "
                                "champion. Hint: make a champion, or choose ensemble mode")
    share = deployment.canary_share or 0.0
    if mode == "canary" and deployment.canary_model not in names:
        raise InvalidInputError(f"the canary '{deployment.canary_model}' of scope '{scope}' is "
                                "not promoted any more. Hint: choose another deployment")
    if mode == "canary" and deployment.canary_model == champion:
        raise InvalidInputError(f"the canary '{champion}' of scope '{scope}' is its champion "
                                "now. Hint: choose champion mode")
    serving = {n: {"deployment_mode": mode, "role": "challenger", "traffic_share": 0.0}
               for n in names}
    serving[champion].update(role="champion",
                             traffic_share=1.0 - share if mode == "canary" else 1.0)
    if mode == "canary":
        serving[str(deployment.canary_model)].update(role="canary", traffic_share=share)
    return serving


def compare_ensembles(promoted: PromotedSet, *, size: int = DEFAULT_ENSEMBLE_SIZE
                      ) -> tuple[list[EnsembleReport], dict[str, dict[str, float]]]:
    """Each weighting method's ensemble against each single model, on the reporting half."""
    return compare_methods([r.model_name for r in promoted.rows],
                           [r.composite_score or 0.0 for r in promoted.rows], promoted.outputs,
                           promoted.targets, promoted.scope.task,
                           seed=promoted.scope.config.bootstrap_seed, size=size)


def export_results(promoted: PromotedSet, store: Store,
                   method: WeightsMethod = DEFAULT_WEIGHTS_METHOD, *,
                   cards: list[ModelCard] | None = None) -> ExportPaths:
    """Write the leaderboard and the model cards atomically; return their paths.

    Each member a converter handles is compiled to ONNX and verified first (see
    ``promotion.export._compile``). The leaderboard and the feature statistics are written
    next and the cards last: a reader that finds a cards file finds the export complete. The
    cards carry the deployment in force and the decisions ``promoted`` was read under; the
    export is refused (nothing left written) when a decision landed since.
    """
    scope = promoted.scope
    built_from = promoted.decisions or decision_mark(store, scope.name)
    _check_no_decision_since(store, scope.name, built_from)
    by_name = {m.model_name: m for m in promoted.evaluation.models}
    for row in promoted.rows:  # the files may have changed since the cards were built
        _check_unchanged(scope, by_name[row.model_name], promoted.records[row.model_name])
    now = datetime.now(UTC)
    cards = ([card.model_copy(update={"generated_at": now}) for card in cards] if cards
             else build_cards(promoted, store, method, now=now))
    cards = [card.model_copy(update={"decisions": built_from}) for card in cards]
    if scope.config.compile_members:  # on what the members take: the preprocessor's output
        pre_sha256 = cards[0].preprocessor_sha256
        inputs_sha256 = (promoted.evaluation.holdout_sha256 if pre_sha256 is None else
                         hashlib.sha256(f"{promoted.evaluation.holdout_sha256} {pre_sha256}"
                                        .encode()).hexdigest())
        cards = compile_members(cards, scope.models_dir,
                                model_features(scope, promoted.holdout.features, pre_sha256),
                                inputs_sha256,
                                trusted_types=tuple(scope.config.trusted_types),
                                timeout_s=scope.config.model_timeout_s)
    board_path, cards_path = export_paths(scope.models_dir, scope.name, now)
    board = leaderboard_export(scope, promoted.evaluation, promoted.board,
                               store.stages(scope.name), now)
    stats_path = feature_stats_path(cards_path)
    stats = feature_stats(scope.name, promoted.holdout.features, now)
    for folder in {board_path.parent, cards_path.parent, stats_path.parent}:
        sweep_stale_temps(folder)  # what an export killed mid-write left behind
    write_atomic(board_path, dumps(board.model_dump(mode="json")))
    write_atomic(stats_path, dumps(stats.model_dump(mode="json")))
    try:  # again, just before the cards: a decision may have landed while this one wrote
        _check_no_decision_since(store, scope.name, built_from)
    except InvalidInputError:
        board_path.unlink(missing_ok=True)
        stats_path.unlink(missing_ok=True)
        raise
    # The cards last: a cards file means its leaderboard and feature statistics are there.
    write_atomic(cards_path, dumps(ModelCards(cards).model_dump(mode="json")))
    return ExportPaths(board_path, cards_path, cards, stats_path)


def leaderboard_export(scope: Scope, evaluation: ScopeEvaluation, board: Leaderboard,
                       stages: Mapping[str, StageRecord], now: datetime) -> LeaderboardExport:
    """The leaderboard file's document: every row with its stage among ``stages``, and the
    holdout the evaluation measured on. ``leaderboard --json`` prints the same."""
    return LeaderboardExport(
        scope=scope.name, task=scope.task, generated_at=now, composite_weights=board.weights,
        chance_levels=board.chance, holdout=_holdout_info(scope, evaluation),
        models=board.entries(stages))


def _holdout_info(scope: Scope, evaluation: ScopeEvaluation) -> HoldoutInfo:
    """The holdout the metrics were measured on (cards and leaderboard name the same)."""
    return HoldoutInfo(path=shown_path(scope.holdout_path, scope.models_dir),
                       sha256=evaluation.holdout_sha256, rows=evaluation.n_rows)


def ensemble_table(reports: list[EnsembleReport], singles: dict[str, dict[str, float]],
                   task: str) -> pd.DataFrame:
    """Rows: each method's ensemble and the best single promoted model (by the task's key
    metric, in its direction); metric columns (RMSE, MAE and R² for regression)."""
    import pandas as pd

    key = key_metric(task)
    sign = get_metric(key).sign
    best = max(singles, key=lambda n: sign * singles[n][key])
    records = [{"ensemble": f"{r.method} weights", **r.metrics} for r in reports]
    records.append({"ensemble": f"best single model ({best})", **singles[best]})
    columns = (["ensemble", "rmse", "mae", "r2"] if is_regression(task)
               else ["ensemble", key, "accuracy", "log_loss", "balanced_accuracy"])
    return pd.DataFrame.from_records(records)[columns]
