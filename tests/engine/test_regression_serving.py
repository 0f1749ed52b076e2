"""A regression export served by the engine: the weighted mean of the members' own ``predict``,
the champion's or the canary's value by the stable hash, failed rows left to the healthy
members, and every model's value logged at full precision with the value served.

The cards are written through the contract (``make_card`` / ``write_cards``) over the
diabetes scope's real fitted regressors.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import make_card, write_cards, write_model
from misbehaving import FailsOnSomeRows

from promotion import InvalidInputError
from promotion.engine import PredictionEngine, canary_bucket, log_path
from promotion.engine._predlog import connect, iter_batches, read_batches, reading
from promotion.scopes import load_scope

SCOPE = "diabetes"


def regression_cards(root: Path, weights: dict[str, float], mode: str = "ensemble",
                     roles: dict[str, str] | None = None, share: float = 0.0) -> Path:
    """A cards file of the diabetes scope serving ``weights``' models in ``mode``."""
    cards = []
    for name, weight in weights.items():
        role = (roles or {}).get(name, "member")
        traffic = {"member": 1.0, "challenger": 0.0, "canary": share,
                   "champion": 1.0 - share if mode == "canary" else 1.0}[role]
        cards.append(make_card(root, name, scope=SCOPE, ensemble_weight=weight, rmse=55.0,
                               deployment_mode=mode, role=role, traffic_share=traffic,
                               is_champion=role == "champion"))
    return write_cards(root, cards, scope=SCOPE)


def own_predict(root: Path, name: str, frame: pd.DataFrame) -> np.ndarray:
    """The member's own ``predict``, loaded from its file as the seed's consumer loop does."""
    return joblib.load(root / SCOPE / name / "model.joblib").predict(frame)


def holdout(root: Path) -> pd.DataFrame:
    return load_scope(root, SCOPE).load_holdout().features


@pytest.fixture
def root(models_root, regression_scope) -> Path:
    return models_root


def test_the_ensemble_predicts_the_cards_weighted_mean_of_each_members_own_predict(root):
    weights = {"ridge": 0.5, "tree_d4": 0.3, "knn": 0.2}
    path = regression_cards(root, weights)
    engine = PredictionEngine.load(SCOPE, root)
    frame = holdout(root)
    cards = json.loads(path.read_text())
    by_hand = sum(card["ensemble_weight"] * own_predict(root, card["model_name"], frame)
                  for card in cards)
    predicted = engine.predict(frame)
    assert predicted.shape == (len(frame),) and predicted.dtype == np.float64
    np.testing.assert_allclose(predicted, by_hand, rtol=1e-12)
    assert engine.classes == [] and engine.regression
    # Not a member's answer, nor a plain mean: the weights count.
    assert not np.allclose(predicted, own_predict(root, "ridge", frame))
    plain_mean = np.mean([own_predict(root, n, frame) for n in weights], axis=0)
    assert np.abs(predicted - plain_mean).max() > 1.0


def test_predict_proba_on_a_regression_export_is_one_clear_error(root):
    regression_cards(root, {"ridge": 1.0})
    engine = PredictionEngine.load(SCOPE, root)
    with pytest.raises(InvalidInputError, match="is a regression export: use predict"):
        engine.predict_proba(holdout(root))
    served = engine.serve(holdout(root).head(3))
    with pytest.raises(TypeError, match="use .predicted"):
        _ = served.proba
    assert served.predicted.shape == (3,)


def test_champion_mode_serves_the_champion_and_logs_the_challengers_in_shadow(root):
    regression_cards(root, {"ridge": 0.5, "tree_d4": 0.5, "knn": 0.0}, mode="champion",
                     roles={"ridge": "champion", "tree_d4": "challenger",
                            "knn": "challenger"})
    engine = PredictionEngine.load(SCOPE, root)
    frame = holdout(root)
    served = engine.serve(frame)
    np.testing.assert_array_equal(served.predicted, own_predict(root, "ridge", frame))
    assert set(served.served_by) == {"ridge"}
    engine.close()
    [batch] = read_batches(log_path(root, SCOPE))
    assert batch.classes == [] and batch.models == ["ridge", "tree_d4", "knn"]
    for k, name in enumerate(batch.models):  # every model's value, at full precision
        np.testing.assert_array_equal(batch.probas[:, k, 0], own_predict(root, name, frame))
    np.testing.assert_array_equal(batch.served_values, served.predicted)


def test_canary_mode_splits_by_the_stable_request_id_hash(root):
    regression_cards(root, {"ridge": 0.5, "tree_d4": 0.5}, mode="canary",
                     roles={"ridge": "champion", "tree_d4": "canary"}, share=0.3)
    engine = PredictionEngine.load(SCOPE, root)
    frame = holdout(root)
    ids = [f"req-{i}" for i in range(len(frame))]
    served = engine.serve(frame, ids)
    canary = np.array([canary_bucket(i) < 0.3 for i in ids])
    assert 0.15 < canary.mean() < 0.45
    assert [b for b, c in zip(served.served_by, canary, strict=True) if c] == \
        ["tree_d4"] * int(canary.sum())
    np.testing.assert_array_equal(served.predicted[canary],
                                  own_predict(root, "tree_d4", frame)[canary])
    np.testing.assert_array_equal(served.predicted[~canary],
                                  own_predict(root, "ridge", frame)[~canary])
    again = engine.serve(frame.iloc[::-1], ids[::-1])  # the same id, the same side
    assert again.served_by == served.served_by[::-1]


def test_rows_a_member_fails_are_answered_by_the_others_weights_scaled_to_one(root):
    frame = holdout(root)
    threshold = float(frame["bmi"].quantile(0.8))
    write_model(root / SCOPE, "overflows",
                FailsOnSomeRows(joblib.load(root / SCOPE / "ridge" / "model.joblib"), "bmi",
                                threshold), model_type="ridge", group="variant")
    regression_cards(root, {"overflows": 0.5, "tree_d4": 0.3, "knn": 0.2})
    engine = PredictionEngine.load(SCOPE, root)
    served = engine.serve(frame)
    holes = frame["bmi"].to_numpy() > threshold
    ridge, tree, knn = (own_predict(root, n, frame) for n in ("ridge", "tree_d4", "knn"))
    np.testing.assert_allclose(served.predicted[~holes],
                               (0.5 * ridge + 0.3 * tree + 0.2 * knn)[~holes], rtol=1e-12)
    np.testing.assert_allclose(served.predicted[holes], ((0.3 * tree + 0.2 * knn) / 0.5)[holes],
                               rtol=1e-12)
    assert [f for f, h in zip(served.failed_models, holes, strict=True) if h] == \
        [("overflows",)] * int(holes.sum())
    [note] = served.notes
    assert note.message.startswith(f"model 'overflows' failed on {int(holes.sum())} of "
                                   f"{len(frame)} rows (predict returned NaN or infinite")
    engine.close()
    [batch] = read_batches(log_path(root, SCOPE))
    np.testing.assert_array_equal(batch.failed[:, 0], holes)
    assert np.isnan(batch.probas[holes, 0, 0]).all()


def test_when_every_weighted_member_fails_a_row_the_batch_fails_and_nothing_is_logged(root):
    frame = holdout(root)
    write_model(root / SCOPE, "overflows",
                FailsOnSomeRows(joblib.load(root / SCOPE / "ridge" / "model.joblib"), "bmi",
                                0.0), model_type="ridge", group="variant")
    regression_cards(root, {"overflows": 1.0, "knn": 0.0})
    engine = PredictionEngine.load(SCOPE, root)
    with pytest.raises(InvalidInputError, match=r"no healthy model left to answer \d+ of "
                                                r"177 rows \(ensemble mode\): model "
                                                "'overflows' failed"):
        engine.serve(frame)
    engine.close()
    assert read_batches(log_path(root, SCOPE)) == []


def test_zero_rows_give_zero_values_and_the_breakdown_gives_each_members_values(root):
    regression_cards(root, {"ridge": 0.6, "knn": 0.4})
    engine = PredictionEngine.load(SCOPE, root)
    frame = holdout(root)
    assert engine.predict(frame.head(0)).shape == (0,)
    breakdown = engine.predict_breakdown(frame)
    np.testing.assert_array_equal(breakdown["knn"], own_predict(root, "knn", frame))
    assert engine.predict_breakdown(frame.head(0))["ridge"].shape == (0,)


def test_a_classifier_log_written_before_regression_reads_as_before(models_root, tiny_scope):
    """A batch as earlier versions wrote it (float32 probabilities, no served values)."""
    path = log_path(models_root, "tiny")
    engine = PredictionEngine.load("tiny", models_root, cards_file=write_cards(
        models_root, [make_card(models_root, "logreg")]), log=False)
    frame = load_scope(models_root, "tiny").load_holdout().features.head(4)
    proba = engine.predict_proba(frame)
    connect(path).close()  # the log's tables, as the engine creates them
    with sqlite3.connect(path) as conn:  # then a batch, written as earlier versions did
        conn.execute(
            "INSERT INTO batch (at, export, mode, canary, canary_share, models, classes, "
            "features, rows, latency_ms, request_ids, times, served, failed, probas, inputs) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (1.0, "old.json", "ensemble", None, None, '["logreg"]',
             json.dumps(engine.classes), json.dumps(engine.feature_names), 4, '{"logreg": 1}',
             "a\nb\nc\nd", np.arange(4, dtype=np.float64).tobytes(),
             np.full(4, -1, dtype=np.int16).tobytes(), np.zeros(4, dtype=bool).tobytes(),
             proba.astype(np.float32).tobytes(),
             frame.to_numpy(dtype=np.float32).tobytes()))
    with reading(path) as conn:
        [batch] = list(iter_batches(conn))
    assert not batch.regression and batch.served_values.size == 0
    assert batch.probas.dtype == np.float32
    np.testing.assert_array_equal(batch.probas[:, 0], proba.astype(np.float32))
    assert batch.request_ids == ["a", "b", "c", "d"]
