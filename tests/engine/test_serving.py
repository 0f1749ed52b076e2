"""The engine never answers with an invalid probability: every member's output is checked per
batch, and a failing member is handled by the one rule of the engine's module docstring.

Misbehaving members are real fitted models whose ``predict_proba`` is bent
(``tests/fixtures/serving/serving_members.py``), pickled into the scope and named by cards
written through the contract (``make_card`` / ``write_cards``).
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import make_card, write_cards, write_model

from promotion import InvalidInputError
from promotion.engine import PredictionEngine, log_path
from promotion.scopes import load_scope

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "serving"))
import serving_members as bent  # noqa: E402


def fitted(root: Path, name: str):
    return joblib.load(root / "tiny" / name / "model.joblib")


def add_member(root: Path, name: str, model) -> None:
    """A misbehaving model saved as a model folder of the scope, like any other."""
    write_model(root / "tiny", name, model, model_type="bent", group="variant")


def cards_of(root: Path, weights: dict[str, float], mode: str = "ensemble",
             roles: dict[str, str] | None = None, share: float = 0.0) -> Path:
    """A cards file serving ``weights``' models: an ensemble, or ``mode`` with ``roles``."""
    cards = []
    for name, weight in weights.items():
        role = (roles or {}).get(name, "member")
        traffic = {"member": 1.0, "challenger": 0.0, "canary": share,
                   "champion": 1.0 - share if mode == "canary" else 1.0}[role]
        cards.append(make_card(root, name, ensemble_weight=weight, deployment_mode=mode,
                               role=role, traffic_share=traffic,
                               is_champion=role == "champion"))
    return write_cards(root, cards)


def holdout(root: Path) -> pd.DataFrame:
    return load_scope(root, "tiny").load_holdout().features


def logged_batches(root: Path) -> list[tuple[int, np.ndarray, list[str]]]:
    """(rows, failed flags, models) of every logged batch, read with plain sqlite3."""
    path = log_path(root, "tiny")
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT rows, failed, models FROM batch ORDER BY id").fetchall()
    return [(rows, np.frombuffer(failed, dtype=bool).reshape(rows, -1), json.loads(models))
            for rows, failed, models in found]


@pytest.fixture
def root(models_root, tiny_scope) -> Path:
    return models_root


def test_a_member_whose_rows_sum_to_5_is_renormalized_and_said_so(root):
    add_member(root, "fivefold", bent.Scaled(fitted(root, "logreg"), 5.0))
    engine = PredictionEngine.load("tiny", root, cards_file=cards_of(
        root, {"tree_d3": 0.5, "fivefold": 0.5}))
    frame = holdout(root)
    served = engine.serve(frame)
    np.testing.assert_allclose(served.proba.sum(axis=1), 1.0, atol=1e-12)
    expected = 0.5 * fitted(root, "tree_d3").predict_proba(frame) + 0.5 * fitted(
        root, "logreg").predict_proba(frame)
    np.testing.assert_allclose(served.proba, expected, atol=1e-12)
    assert served.served_by == ["ensemble"] * len(frame)
    assert [(n.model_name, n.kind, n.rows) for n in served.notes] == [
        ("fivefold", "renormalized", len(frame))]
    assert "summed to 5" in served.notes[0].message


def test_nan_rows_of_a_member_go_to_the_healthy_members_and_are_marked(root):
    add_member(root, "holes", bent.NanWhere(fitted(root, "logreg")))
    engine = PredictionEngine.load("tiny", root, cards_file=cards_of(
        root, {"tree_d3": 0.25, "holes": 0.75}))
    frame = holdout(root)
    holes = frame["f0"].to_numpy() > 0
    assert 0 < holes.sum() < len(frame)
    served = engine.serve(frame)
    tree = fitted(root, "tree_d3").predict_proba(frame)
    logreg = fitted(root, "logreg").predict_proba(frame)
    assert np.isfinite(served.proba).all()
    # Rows the member failed on: its weight went to the healthy member (the whole of it).
    np.testing.assert_allclose(served.proba[holes], tree[holes], atol=1e-12)
    np.testing.assert_allclose(served.proba[~holes], (0.25 * tree + 0.75 * logreg)[~holes],
                               atol=1e-12)
    assert served.failed_models == [("holes",) if h else () for h in holes]
    classes = np.asarray(engine.classes)
    labels = engine.predict(frame)  # never the silent class 0 of a NaN row
    np.testing.assert_array_equal(labels, classes[served.proba.argmax(axis=1)])
    engine.close()
    batches = logged_batches(root)
    rows, failed, models = batches[-1]
    np.testing.assert_array_equal(failed[:, models.index("holes")], holes)
    assert not failed[:, models.index("tree_d3")].any()
    note = next(n for n in served.notes if n.kind == "failed")
    assert (note.model_name, note.rows) == ("holes", int(holes.sum()))


@pytest.mark.parametrize(("model", "reason"), [
    (lambda base: bent.Shifted(base, -0.5), "negative"),
    (lambda base: bent.DropsAColumn(base), r"shape \(300, 5\), expected \(300, 6\)"),
    (lambda base: bent.Zeros(base), "sum to 0"),
    (lambda base: bent.Raises(base), "RuntimeError: the feature store is down"),
])
def test_a_member_failing_every_row_leaves_the_answer_to_the_others(root, model, reason):
    add_member(root, "broken", model(fitted(root, "logreg")))
    engine = PredictionEngine.load("tiny", root, cards_file=cards_of(
        root, {"tree_d3": 0.5, "broken": 0.5}))
    frame = holdout(root)
    served = engine.serve(frame)
    np.testing.assert_allclose(served.proba, fitted(root, "tree_d3").predict_proba(frame),
                               atol=1e-12)
    assert set(served.failed_models) == {("broken",)}
    [note] = served.notes
    assert (note.model_name, note.kind, note.rows) == ("broken", "failed", len(frame))
    assert re.search(reason, note.message), note.message


def test_when_no_member_is_left_the_batch_fails_with_one_message_and_nothing_is_logged(root):
    add_member(root, "holes", bent.NanWhere(fitted(root, "logreg")))
    add_member(root, "broken", bent.Raises(fitted(root, "bayes")))
    engine = PredictionEngine.load("tiny", root, cards_file=cards_of(
        root, {"holes": 0.5, "broken": 0.5}))
    frame = holdout(root)
    with pytest.raises(InvalidInputError,
                       match=r"no healthy model left to answer \d+ of 300 rows.*'holes'.*NaN"
                             r".*'broken'.*RuntimeError"):
        engine.serve(frame)
    engine.close()
    assert logged_batches(root) == []


def test_a_failing_champion_fails_the_batch_in_champion_mode(root):
    add_member(root, "holes", bent.NanWhere(fitted(root, "logreg")))
    engine = PredictionEngine.load("tiny", root, cards_file=cards_of(
        root, {"holes": 0.5, "tree_d3": 0.5}, "champion",
        {"holes": "champion", "tree_d3": "challenger"}))
    with pytest.raises(InvalidInputError, match="no healthy model left.*'holes'"):
        engine.serve(holdout(root))


def test_a_failing_shadow_challenger_is_logged_and_never_changes_the_answer(root):
    add_member(root, "fivefold", bent.Scaled(fitted(root, "bayes"), 5.0))
    add_member(root, "holes", bent.NanWhere(fitted(root, "bayes")))
    engine = PredictionEngine.load("tiny", root, cards_file=cards_of(
        root, {"logreg": 0.4, "fivefold": 0.3, "holes": 0.3}, "champion",
        {"logreg": "champion", "fivefold": "challenger", "holes": "challenger"}))
    frame = holdout(root)
    served = engine.serve(frame)
    np.testing.assert_array_equal(served.proba, fitted(root, "logreg").predict_proba(frame))
    assert served.failed_models == [()] * len(frame)  # no decider failed
    engine.close()
    rows, failed, models = logged_batches(root)[-1]
    np.testing.assert_array_equal(failed[:, models.index("holes")],
                                  frame["f0"].to_numpy() > 0)


def test_canary_mode_falls_back_to_the_other_side_on_a_failed_row(root):
    add_member(root, "holes", bent.NanWhere(fitted(root, "logreg")))
    frame = holdout(root)
    holes = frame["f0"].to_numpy() > 0
    ids = [f"q{i}" for i in range(len(frame))]
    tree = fitted(root, "tree_d3").predict_proba(frame)
    logreg = fitted(root, "logreg").predict_proba(frame)
    for champion, canary in (("tree_d3", "holes"), ("holes", "tree_d3")):
        engine = PredictionEngine.load("tiny", root, log=False, cards_file=cards_of(
            root, {champion: 0.5, canary: 0.5}, "canary",
            {champion: "champion", canary: "canary"}, share=0.5))
        served = engine.serve(frame, ids)
        by = np.asarray(served.served_by)
        assert not (holes & (by == "holes")).any()  # a failed row is never its answer
        np.testing.assert_array_equal(served.proba[by == "tree_d3"], tree[by == "tree_d3"])
        np.testing.assert_array_equal(served.proba[by == "holes"], logreg[by == "holes"])
        assert (by == "holes").any() and (by == "tree_d3").any()


def test_zero_rows_give_an_empty_answer_and_log_nothing(root):
    engine = PredictionEngine.load("tiny", root, cards_file=cards_of(
        root, {"logreg": 0.5, "tree_d3": 0.5}))
    served = engine.serve(holdout(root).head(0))
    assert served.proba.shape == (0, 6) and served.served_by == [] and served.request_ids == []
    assert engine.predict(holdout(root).head(0)).shape == (0,)
    engine.close()
    assert logged_batches(root) == []


def test_rows_within_the_tolerance_are_served_exactly_as_computed(root):
    """Only rows off by more than the tolerance are renormalized: a healthy ensemble is the
    seed's weighted sum to the last bit (the consumer loop's numbers)."""
    engine = PredictionEngine.load("tiny", root, log=False, cards_file=cards_of(
        root, {"logreg": 0.3, "tree_d3": 0.7}))
    frame = holdout(root)
    served = engine.serve(frame)
    direct = 0
    for name, weight in (("logreg", 0.3), ("tree_d3", 0.7)):
        direct += fitted(root, name).predict_proba(frame) * weight
    np.testing.assert_array_equal(served.proba, direct)
    assert served.notes == []
