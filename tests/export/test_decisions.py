"""Exports follow decisions: an export records the decisions it was built from, is refused when
one landed meanwhile, and the engine serves the export of the newest decisions, whatever the
file names say. Cards of one file agree on their classes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from factories import edit_cards, install_old_cards

from promotion import InvalidInputError
from promotion.contract import SCHEMA_VERSION, cards_files, feature_stats_path
from promotion.engine import PredictionEngine, newest_cards_file, read_cards
from promotion.export import build_cards, export_results, promoted_set
from promotion.scopes import file_sha256
from promotion.usecases import change_stage, deploy, export_scope, scope_state

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODELS = ("logreg", "tree_d3", "bayes")


def move(root: Path, store, name: str, stage: str) -> None:
    change_stage(root, "tiny", store, name, stage, actor="ana", reason="test")


@pytest.fixture
def exported(models_root, tiny_scope, store):
    for name in MODELS:
        move(models_root, store, name, "production")
    return export_scope(models_root, "tiny", store, "score")


def served_models(root: Path) -> list[str]:
    engine = PredictionEngine.load("tiny", root, log=False)
    return sorted(card.model_name for card in engine.cards)


def test_an_export_records_the_decisions_it_was_built_from(models_root, exported, store):
    move(models_root, store, "logreg", "champion")
    record, paths = deploy(models_root, "tiny", store, "champion", actor="ana",
                           reason="recorded")
    assert record is not None
    marks = {card.decisions for card in paths.cards}
    assert len(marks) == 1
    mark = marks.pop()
    assert mark.transition_id == store.history("tiny")[-1].id
    assert mark.deployment_id == store.deployments("tiny")[-1].id
    assert {c["schema_version"] for c in json.loads(paths.model_cards.read_text())} == {
        SCHEMA_VERSION}
    assert exported.cards[0].decisions.deployment_id is None  # no deployment decided then


def test_an_export_is_refused_when_a_decision_landed_while_it_was_built(models_root, exported,
                                                                        store):
    # Export A reads the promoted set ...
    state = scope_state(models_root, "tiny", store)
    stale = promoted_set(state.scope, store, state.evaluation, state.board)
    stale_cards = build_cards(stale, store)
    # ... B demotes a model and exports ...
    move(models_root, store, "bayes", "archived")
    newer = export_scope(models_root, "tiny", store)
    # ... and A finishing later is refused: it would serve the demoted model.
    with pytest.raises(InvalidInputError,
                       match=r"a decision on scope 'tiny' landed while this export was built "
                             r"\(bayes: production -> archived.*\)\. Hint: export again"):
        export_results(stale, store, cards=stale_cards)
    assert newest_cards_file("tiny", models_root) == newer.model_cards
    assert served_models(models_root) == ["logreg", "tree_d3"]


def test_the_engine_serves_the_newest_decision_not_the_newest_file_name(models_root, exported,
                                                                        store):
    """An export of older decisions that lands last (or whose name says 2099) is not served."""
    area = exported.model_cards.parent
    move(models_root, store, "bayes", "archived")
    newer = export_scope(models_root, "tiny", store)
    future = area / "model_cards_tiny_20991231T235959000000Z.json"
    shutil.copy(exported.model_cards, future)  # the old decisions, the newest name
    shutil.copy(feature_stats_path(exported.model_cards), feature_stats_path(future))
    assert newest_cards_file("tiny", models_root) == newer.model_cards
    assert served_models(models_root) == ["logreg", "tree_d3"]
    assert cards_files(models_root, "tiny")[-1] == newer.model_cards  # every reader agrees
    # The far-future name never becomes newest: the next decision's export is served.
    move(models_root, store, "bayes", "production")
    latest = export_scope(models_root, "tiny", store)
    assert newest_cards_file("tiny", models_root) == latest.model_cards
    assert served_models(models_root) == sorted(MODELS)


def test_exports_of_the_same_decisions_serve_the_one_written_last(models_root, exported, store):
    again = export_scope(models_root, "tiny", store, "equal")
    assert newest_cards_file("tiny", models_root) == again.model_cards
    engine = PredictionEngine.load("tiny", models_root, log=False)
    assert {card.weights_method for card in engine.cards} == {"equal"}


def test_a_file_without_decisions_counts_as_older_than_any_export_that_has_them(
        models_root, exported, store):
    fixture = json.loads((FIXTURES / "serving" / "model_cards_v2.json").read_text())
    for card in fixture:
        card["sha256"] = file_sha256(models_root.parent / card["model_path"])
    old = exported.model_cards.parent / "model_cards_tiny_20991231T235959000000Z.json"
    old.write_text(json.dumps(fixture))
    assert newest_cards_file("tiny", models_root) == exported.model_cards


def test_a_version_2_cards_file_still_loads_and_serves(models_root, tiny_scope):
    fixture = install_old_cards(models_root, FIXTURES / "serving" / "model_cards_v2.json",
                                "20260101T000000000000Z")
    assert {card["schema_version"] for card in fixture} == {2}
    engine = PredictionEngine.load("tiny", models_root, log=False)
    assert [c.model_name for c in engine.cards] == [c["model_name"] for c in fixture]
    assert {c.decisions for c in engine.cards} == {None}


@pytest.mark.parametrize(("change", "message"), [
    (lambda cards: cards[1].update(classes=list(reversed(cards[1]["classes"]))),
     r"card 1 \('\w+'\) field 'classes' .*differ.* card 0 \('\w+'\)"),
    (lambda cards: cards[1].update(classes=cards[1]["classes"][:-1]),
     r"card 1 \('\w+'\) field 'classes' .*differ.* card 0 \('\w+'\)"),
    (lambda cards: [card.update(classes=[*card["classes"], card["classes"][0]])
                    for card in cards],
     r"card 0 field 'classes': repeats class 0"),
])
def test_cards_that_disagree_on_classes_are_refused_naming_the_file_and_card(
        models_root, exported, change, message):
    cards = json.loads(exported.model_cards.read_text())
    change(cards)
    exported.model_cards.write_text(json.dumps(cards))
    with pytest.raises(InvalidInputError, match=f"{exported.model_cards.name}: {message}"):
        read_cards(exported.model_cards)
    with pytest.raises(InvalidInputError, match=message):
        PredictionEngine.load("tiny", models_root, log=False)


def test_edited_cards_keep_their_decisions(models_root, exported):
    edit_cards(exported.model_cards, "logreg", strength="edited by hand")
    assert newest_cards_file("tiny", models_root) == exported.model_cards
