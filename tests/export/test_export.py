"""Model cards, ensemble weights, the atomic export and the engine that loads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import edit_cards, make_card, write_cards

from promotion import InvalidInputError
from promotion.contract import json_schemas
from promotion.engine import PredictionEngine, newest_cards_file
from promotion.export import (
    build_cards,
    compare_ensembles,
    ensemble_table,
    export_results,
    normalize,
    promoted_set,
)
from promotion.scopes import file_sha256, load_scope
from promotion.usecases import change_stage, export_scope, scope_state

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("logreg", "tree_d3", "bayes")


@pytest.fixture
def exported(models_root, tiny_scope, store):
    for name in MODELS:
        promote(models_root, store, name)
    return export_scope(models_root, "tiny", store, "score")


def promote(models_root: Path, store, name: str) -> None:
    change_stage(models_root, "tiny", store, name, "production", actor="ana",
                           reason="chosen for the ensemble")


def holdout_frame(models_root: Path) -> pd.DataFrame:
    return pd.read_csv(models_root / "tiny" / "holdout.csv").drop(columns="label")


def test_cards_follow_the_contract(models_root, exported):
    cards = json.loads(exported.model_cards.read_text())
    assert isinstance(cards, list) and len(cards) == 3
    for card in cards:
        for field in ("model_name", "model_type", "game", "phase", "composite_score",
                      "health_score", "ensemble_weight", "top_5_accuracy", "strength",
                      "known_bias", "recommended_use", "model_path", "schema_version", "scope",
                      "sha256", "feature_names", "classes", "stage"):
            assert field in card
        assert card["game"] == card["scope"] == "tiny"
        assert card["model_path"] == f"models/tiny/{card['model_name']}/model.joblib"
        assert card["sha256"] == file_sha256(models_root.parent / card["model_path"])
        assert card["stage"] == "production"
        assert card["holdout"]["path"] == "models/tiny/holdout.csv"
    assert sum(c["ensemble_weight"] for c in cards) == pytest.approx(1, abs=1e-12)
    composites = [c["composite_score"] for c in cards]
    for card in cards:  # the seed's rule: composite / sum of composites
        assert card["ensemble_weight"] == pytest.approx(card["composite_score"] / sum(composites))
    assert exported.leaderboard.name.startswith("leaderboard_tiny_")
    assert exported.model_cards.name.startswith("model_cards_tiny_")
    board = json.loads(exported.leaderboard.read_text())
    assert [m["rank"] for m in board["models"]] == [1, 2, 3, 4]


def test_the_seeds_consumer_loop_gets_the_engines_output_exactly(models_root, exported,
                                                                 monkeypatch):
    frame = holdout_frame(models_root)
    engine = PredictionEngine.load("tiny", models_dir=models_root)
    monkeypatch.chdir(models_root.parent)  # model_path is relative to the models root's parent
    model_cards = json.loads(exported.model_cards.read_text())
    ensemble = 0
    for card in model_cards:
        model = joblib.load(card["model_path"])
        ensemble += model.predict_proba(frame) * card["ensemble_weight"]
    np.testing.assert_array_equal(engine.predict_proba(frame), ensemble)
    breakdown = engine.predict_breakdown(frame)
    assert list(breakdown) == [c["model_name"] for c in model_cards]
    assert engine.explain()[0]["strength"] == model_cards[0]["strength"]


@pytest.mark.parametrize("method", ["score", "equal", "greedy"])
def test_every_weights_method_sums_to_one(models_root, tiny_scope, store, method):
    for name in MODELS:
        promote(models_root, store, name)
    paths = export_scope(models_root, "tiny", store, method)
    weights = [c.ensemble_weight for c in paths.cards]
    assert all(w >= 0 for w in weights)
    assert abs(sum(weights) - 1) <= 1e-12
    if method == "equal":
        assert weights == pytest.approx([1 / 3] * 3)
    if method == "greedy":
        assert all(abs(w * 25 - round(w * 25)) < 1e-9 for w in weights)  # counts out of 25


def test_greedy_is_fitted_on_one_half_and_reported_on_the_other(models_root, tiny_scope, store):
    for name in MODELS:
        promote(models_root, store, name)
    state = scope_state(models_root, "tiny", store)
    promoted = promoted_set(state.scope, store, state.evaluation, state.board)
    reports, singles = compare_ensembles(promoted)
    assert [r.method for r in reports] == ["score", "equal", "greedy"]
    assert set(singles) == set(MODELS)
    from promotion.export._ensemble import holdout_halves

    fit, report = holdout_halves(300, 0)
    assert len(set(fit) & set(report)) == 0 and len(fit) + len(report) == 300
    table = ensemble_table(reports, singles, "multiclass")
    assert table["ensemble"].str.startswith("best single model").iloc[-1]


def test_an_export_with_nothing_promoted_is_refused_and_writes_nothing(models_root, tiny_scope,
                                                                       store):
    with pytest.raises(InvalidInputError, match="nothing is promoted in scope 'tiny'"):
        export_scope(models_root, "tiny", store)
    assert not (models_root / "advanced").exists()


def test_a_model_changed_since_promotion_is_refused(models_root, tiny_scope, store):
    promote(models_root, store, "logreg")
    path = tiny_scope / "logreg" / "model.joblib"
    joblib.dump(joblib.load(tiny_scope / "tree_d1" / "model.joblib"), path)
    with pytest.raises(InvalidInputError,
                       match="tiny/logreg/model.joblib: changed since it was promoted"):
        export_scope(models_root, "tiny", store)
    assert not (models_root / "advanced").exists()


def test_all_zero_scores_refuse_score_weights_with_a_hint():
    with pytest.raises(InvalidInputError, match="all zero.*'equal' weights method"):
        normalize([0.0, 0.0])
    with pytest.raises(InvalidInputError, match="finite and >= 0"):
        normalize([0.5, -0.1])


# --- the engine's refusals --------------------------------------------------------------

def _rewrite(path: Path, change) -> None:
    cards = json.loads(path.read_text())
    change(cards)
    path.write_text(json.dumps(cards))


def test_a_tampered_model_file_is_refused_before_loading(models_root, exported):
    target = models_root / "tiny" / "bayes" / "model.joblib"
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(InvalidInputError,
                       match="card 'bayes' field 'model_path'.*does not match the card's sha256"):
        PredictionEngine.load("tiny", models_dir=models_root)


def test_a_missing_model_file_is_named(models_root, exported):
    (models_root / "tiny" / "tree_d3" / "model.joblib").unlink()
    with pytest.raises(InvalidInputError, match="tiny/tree_d3/model.joblib: is missing"):
        PredictionEngine.load("tiny", models_dir=models_root)


def test_a_model_path_leaving_the_root_is_refused(models_root, exported, tmp_path):
    outside = tmp_path / "evil.joblib"
    outside.write_bytes(b"not loaded")
    edit_cards(exported.model_cards, "logreg", model_path="models/../evil.joblib")
    with pytest.raises(InvalidInputError, match="leaves the models root"):
        PredictionEngine.load("tiny", models_dir=models_root)


def test_a_symlink_out_of_the_root_is_refused(models_root, exported, tmp_path):
    target = models_root / "tiny" / "logreg" / "model.joblib"
    outside = tmp_path / "outside.joblib"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(InvalidInputError, match="leaves the models root"):
        PredictionEngine.load("tiny", models_dir=models_root)


@pytest.mark.parametrize(("change", "message"), [
    (lambda cards: cards[0].update(ensemble_weight=0.9), "weights sum to .*, not 1"),
    (lambda cards: cards[1].pop("sha256"), "card 1 field 'sha256': Field required"),
    (lambda cards: cards[0].update(extra="x"), "card 0 field 'extra'"),
    (lambda cards: cards.clear(), "holds no cards"),
])
def test_a_cards_file_failing_the_schema_is_one_message(models_root, exported, change, message):
    _rewrite(exported.model_cards, change)
    with pytest.raises(InvalidInputError, match=message):
        PredictionEngine.load("tiny", models_dir=models_root)


def test_a_cards_file_that_is_not_json_is_named(models_root, exported):
    exported.model_cards.write_text("[{")
    with pytest.raises(InvalidInputError,
                       match=f"{exported.model_cards.name}: not valid JSON"):
        PredictionEngine.load("tiny", models_dir=models_root)


def test_a_missing_feature_is_named_and_extra_columns_are_ignored(models_root, exported):
    engine = PredictionEngine.load("tiny", models_dir=models_root)
    frame = holdout_frame(models_root)
    with pytest.raises(InvalidInputError, match="missing feature column 'f2'"):
        engine.predict_proba(frame.drop(columns="f2"))
    with_extra = frame.assign(unused=1.0)[["unused", *reversed(frame.columns)]]
    np.testing.assert_array_equal(engine.predict_proba(with_extra), engine.predict_proba(frame))


def test_the_engine_reads_the_newest_export(models_root, tiny_scope, store):
    promote(models_root, store, "logreg")
    first = export_scope(models_root, "tiny", store)
    promote(models_root, store, "bayes")
    second = export_scope(models_root, "tiny", store)
    assert newest_cards_file("tiny", models_root) == second.model_cards != first.model_cards
    assert len(PredictionEngine.load("tiny", models_dir=models_root).cards) == 2


def test_the_engine_imports_neither_streamlit_nor_the_store():
    code = ("import sys, promotion.engine; "
            "print(sorted(m for m in ('streamlit', 'sqlalchemy', 'promotion.store._sql') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert done.stdout.strip() == "[]"


def test_export_and_predict_from_the_command_line(models_root, tiny_scope, store, tmp_path):
    promote(models_root, store, "logreg")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "promotion", "export", "--scope", "tiny",
                           "--weights", "equal", "--models-dir", str(models_root)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    board_path, cards_path = done.stdout.split()
    assert Path(board_path).exists() and Path(cards_path).exists()
    rows = tmp_path / "rows.csv"
    holdout_frame(models_root).head(5).to_csv(rows, index=False)
    out = tmp_path / "out.csv"
    done = subprocess.run([sys.executable, "-m", "promotion", "predict", "--scope", "tiny",
                           "--input", str(rows), "--output", str(out), "--models-dir",
                           str(models_root)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    predictions = pd.read_csv(out)
    assert len(predictions) == 5 and "prediction" in predictions
    done = subprocess.run([sys.executable, "-m", "promotion", "predict", "--scope", "tiny",
                           "--input", str(tmp_path / "nope.csv"), "--models-dir",
                           str(models_root)], capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "nope.csv: file is missing" in done.stderr
    assert "Traceback" not in done.stderr


def test_json_schemas_in_the_repo_match_the_models():
    for name, schema in json_schemas().items():
        stored = json.loads((ROOT / "schemas" / name).read_text())
        assert stored == json.loads(json.dumps(schema)), (
            f"schemas/{name} drifted: regenerate with python -m promotion schemas")


def test_a_file_changed_after_the_cards_were_built_is_refused_at_export(models_root,
                                                                        tiny_scope, store):
    promote(models_root, store, "logreg")
    state = scope_state(models_root, "tiny", store)
    chosen = promoted_set(state.scope, store, state.evaluation, state.board)
    cards = build_cards(chosen, store)
    path = tiny_scope / "logreg" / "model.joblib"
    joblib.dump(joblib.load(tiny_scope / "tree_d1" / "model.joblib"), path)
    with pytest.raises(InvalidInputError, match="changed since it was evaluated"):
        export_results(chosen, store, cards=cards)
    assert not (models_root / "advanced").exists()


def test_the_engine_ignores_a_scope_whose_name_starts_the_same(models_root, tiny_scope, store):
    import shutil

    shutil.copytree(tiny_scope, models_root / "tiny_b")
    promote(models_root, store, "logreg")
    mine = export_scope(models_root, "tiny", store)
    change_stage(models_root, "tiny_b", store, "bayes", "production", actor="a",
                           reason="other scope")
    export_scope(models_root, "tiny_b", store)  # newer, and sorts after 'tiny_2…'
    assert newest_cards_file("tiny", models_root) == mine.model_cards


def test_predict_into_a_missing_folder_is_one_line(models_root, tiny_scope, store, tmp_path):
    promote(models_root, store, "logreg")
    export_scope(models_root, "tiny", store)
    rows = tmp_path / "rows.csv"
    holdout_frame(models_root).head(2).to_csv(rows, index=False)
    done = subprocess.run([sys.executable, "-m", "promotion", "predict", "--scope", "tiny",
                           "--input", str(rows), "--output", str(tmp_path / "no" / "out.csv"),
                           "--models-dir", str(models_root)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_card_made_from_the_contract_alone_serves_its_model(models_root, tiny_scope):
    """A card written by hand from the published contract, with no export behind it, is all
    the engine needs: it serves exactly its model's probabilities."""
    import joblib

    path = write_cards(models_root, [make_card(models_root, "tree_d3")])
    holdout = load_scope(models_root, "tiny").load_holdout()
    model = joblib.load(models_root / "tiny" / "tree_d3" / "model.joblib")
    engine = PredictionEngine.load("tiny", models_dir=models_root, cards_file=path)
    try:
        served = engine.predict_proba(holdout.features)
    finally:
        engine.close()
    np.testing.assert_allclose(served, model.predict_proba(holdout.features))


def test_cards_tell_the_strongest_and_weakest_slices_even_when_none_is_significant():
    from promotion.export._slices import INSUFFICIENT, SliceFinding, describe_findings

    tested = [SliceFinding("true class 3", 60, 0.10, 0.20, 0.40, 0.02, 0.18),
              SliceFinding("x0 in [0, 1]", 50, 0.26, 0.20, 0.60, 0.14, 0.38)]
    strength = describe_findings(tested, "multiclass", better=True)
    assert strength == ("true class 3 (60 rows): accuracy 90.0% [82.0%, 98.0%] vs 80.0% "
                        "overall (50% lower error, p=0.4, not significant)")
    assert "x0 in [0, 1] (50 rows)" in describe_findings(tested, "multiclass", better=False)
    assert describe_findings([], "multiclass", better=True) == INSUFFICIENT
