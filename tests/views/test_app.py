"""The dashboard driven through Streamlit's AppTest: every page, and the real flows clicked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from factories import make_scope
from hypothesis import given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from promotion.contract import cards_files
from promotion.engine import log_path
from promotion.evaluation import evaluate_scope
from promotion.lifecycle import set_deployment
from promotion.monitoring import simulate
from promotion.scopes import discover_scopes, load_scope
from promotion.scoring import rank_models
from promotion.store import SqlStore, open_store
from promotion.usecases import build_leaderboard, change_stage, deploy
from views._common import plain

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGES = ["views/leaderboard.py", "views/explorer.py", "views/comparison.py",
         "views/lifecycle.py", "views/monitoring.py"]


@pytest.fixture
def app_root(models_root, monkeypatch) -> Path:
    make_scope(models_root, "tiny")
    make_scope(models_root, "bin", task="binary")
    monkeypatch.setenv("PROMOTION_MODELS_DIR", str(models_root))
    monkeypatch.setenv("PROMOTION_USER", "ana")
    monkeypatch.delenv("PROMOTION_DB_URL", raising=False)
    return models_root


def open_app(scope: str = "tiny", page: str | None = None,
             reason: str | None = "chosen in a test") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["scope"] = scope
    if reason is not None:
        at.session_state["decision_reason"] = reason
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at


def errors(at: AppTest) -> list[str]:
    """The error messages as a reader sees them (markdown escapes removed)."""
    return [e.value.replace("\\", "") for e in at.error]


def buttons(at: AppTest, prefix: str) -> dict[str, object]:
    return {b.key.split(":", 2)[2]: b for b in at.button if b.key and b.key.startswith(prefix)}


def decide_row(at: AppTest, action: str, model: str, reason: str = "chosen in a test") -> None:
    """Click a row's Promote or Demote with a reason: each decision takes its own (the field
    is cleared after every decision)."""
    if not at.text_input(key="decision_reason").value:
        at.text_input(key="decision_reason").input(reason)
        at.run()
    buttons(at, f"{action}:")[model].click()


@pytest.mark.parametrize("scope", ["tiny", "bin"])
@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_exception(app_root, page, scope):
    at = open_app(scope, page)
    assert not at.error
    assert at.title[0].value.endswith(scope)


def test_promote_summary_demote_flow_persists_in_the_store(app_root):
    at = open_app()
    assert "**Total Promoted: 0**" in [m.value for m in at.markdown]
    decide_row(at, "promote", "logreg")
    at.run()
    assert "Demote" == buttons(at, "demote:")["logreg"].label
    assert at.text_input(key="decision_reason").value == ""  # one reason, one decision
    assert any(s.value.startswith("logreg: development → production") for s in at.success)
    assert "**Total Promoted: 1**" in [m.value for m in at.markdown]
    assert [m.value for m in at.metric][:1] == ["1"]

    decide_row(at, "promote", "bayes")
    at.run()
    assert "**Total Promoted: 2**" in [m.value for m in at.markdown]

    # A browser refresh is a new session: it must show what the store holds.
    fresh = open_app()
    assert set(buttons(fresh, "demote:")) == {"logreg", "bayes"}
    record = open_store(app_root).stages("tiny")["logreg"]
    assert (record.stage, record.updated_by) == ("production", "ana")

    decide_row(fresh, "demote", "logreg")
    fresh.run()
    assert set(buttons(fresh, "demote:")) == {"bayes"}
    assert "**Total Promoted: 1**" in [m.value for m in fresh.markdown]
    history = open_store(app_root).history("tiny")
    assert [(t.model_name, t.to_stage) for t in history] == [
        ("logreg", "production"), ("bayes", "production"), ("logreg", "archived")]


def test_promote_needs_a_reason(app_root):
    at = open_app(reason=None)
    assert all(b.disabled for b in buttons(at, "promote:").values())


def test_a_reason_is_recorded_with_the_decision(app_root):
    at = open_app()
    at.text_input(key="decision_reason").input("best linear baseline")
    at.run()
    decide_row(at, "promote", "logreg")
    at.run()
    assert open_store(app_root).stages("tiny")["logreg"].reason == (
        "best linear baseline")


def test_a_weight_change_reranks_at_once_and_is_saved(app_root):
    at = open_app()
    before = [key for key in buttons(at, "promote:")]
    for slider in at.slider:
        slider.set_value(0.0)
    at.slider(key="weight:tiny:log_loss").set_value(1.0)
    at.run()
    assert not at.exception
    saved = open_store(app_root).current_weights("tiny")
    assert saved is not None and saved.weights["log_loss"] == 1.0
    board = rank_models(
        evaluate_scope(load_scope(app_root, "tiny"),
                                 open_store(app_root)), {"log_loss": 1.0})
    after = list(buttons(at, "promote:"))
    assert after == [row.model_name for row in board.ranked]
    assert sorted(after) == sorted(before)


def test_a_broken_model_shows_as_failed_while_others_still_promote(app_root):
    (app_root / "tiny" / "tree_d1" / "model.joblib").write_bytes(b"garbage")
    at = open_app()
    failed = [t.value for t in at.text if "tree_d1" in t.value and "cannot be loaded" in t.value]
    assert failed and "tiny/tree_d1/model.joblib" in failed[0]
    assert "tree_d1" not in buttons(at, "promote:")
    decide_row(at, "promote", "logreg")
    at.run()
    assert "logreg" in buttons(at, "demote:")


def test_html_in_a_model_name_is_shown_as_text(app_root):
    import shutil

    hostile = "<img src=x onerror=alert(1)>"
    shutil.copytree(app_root / "tiny" / "logreg", app_root / "tiny" / hostile)
    at = open_app()
    assert hostile in [t.value for t in at.text]
    decide_row(at, "promote", hostile)
    at.run()
    assert any(hostile in t.value for t in at.text if "Score" in t.value)


def test_explorer_text_is_saved_for_the_next_session(app_root):
    at = open_app(page="views/explorer.py")
    at.selectbox(key="explore_model:tiny").set_value("bayes")
    at.run()
    at.text_area(key="card_text:tiny:bayes:known_bias").input("weak on class 3")
    at.run()
    assert open_store(app_root).annotations("tiny")["bayes"]["known_bias"] == (
        "weak on class 3")
    again = open_app(page="views/explorer.py")
    again.selectbox(key="explore_model:tiny").set_value("bayes")
    again.run()
    assert again.text_area(key="card_text:tiny:bayes:known_bias").value == "weak on class 3"


def test_a_broken_scope_is_reported_and_the_others_work(app_root):
    (app_root / "bin" / "scope.json").write_text('{"task": "binary"}')
    at = open_app()
    assert any("bin/scope.json: field 'target' is missing" in w.value.replace("\\", "")
               for w in at.warning)
    assert buttons(at, "promote:")


@pytest.mark.slow
def test_first_start_on_an_empty_root_builds_the_demo_zoo(first_start):
    at = first_start.app
    assert not at.exception
    assert {s.name for s in discover_scopes(first_start.root)} == {
        "1H", "credit_default", "digits", "loan_applications", "lotto_6_49"}
    assert at.title[0].value == "📈 Leaderboard · digits"  # built and ranked first
    assert len(buttons(at, "promote:")) == 12
    assert at.session_state["demo_waiting"]  # the bar of the scopes built behind it was up


def test_generate_cards_is_enabled_only_with_a_promoted_model(app_root):
    at = open_app()
    generate = [b for b in at.button if b.label == "🎫 Generate Model Cards"][0]
    assert generate.disabled
    decide_row(at, "promote", "logreg")
    at.run()
    generate = [b for b in at.button if b.label == "🎫 Generate Model Cards"][0]
    assert not generate.disabled


def test_cards_are_reviewed_edited_and_exported(app_root):
    at = open_app()
    for name in ("logreg", "bayes"):
        decide_row(at, "promote", name)
        at.run()
    at.segmented_control(key="method:tiny").set_value("equal")
    [b for b in at.button if b.label == "🎫 Generate Model Cards"][0].click()
    at.run()
    assert not at.exception, at.exception
    titles = [e.label for e in at.expander]
    assert any("logreg" in t and "weight 50.0%" in t for t in titles)
    assert any("best single model" in str(v) for v in at.dataframe[-1].value["ensemble"])

    at.text_area(key="card_text:tiny:bayes:known_bias").input("slow on outliers")
    at.run()
    assert open_store(app_root).annotations("tiny")["bayes"]["known_bias"] == (
        "slow on outliers")

    [b for b in at.button if b.key == "export:tiny"][0].click()
    at.run()
    assert not at.exception, at.exception
    exported = sorted((app_root / "advanced" / "model_cards").glob("model_cards_tiny_*.json"))
    assert len(exported) == 1
    import json

    cards = {c["model_name"]: c for c in json.loads(exported[0].read_text())}
    assert cards["bayes"]["known_bias"] == "slow on outliers"
    assert cards["logreg"]["ensemble_weight"] == 0.5
    assert [c.value for c in at.code][-1] == str(exported[0])


def lifecycle_move(at: AppTest, model: str, target: str, reason: str,
                   override: bool = False) -> None:
    at.selectbox(key="lifecycle_model:tiny").set_value(model)
    at.selectbox(key="lifecycle_target:tiny").set_value(target)
    at.text_input(key="lifecycle_reason").input(reason)
    at.run()
    if override:
        at.checkbox(key="lifecycle_override").check()
        at.run()
    [b for b in at.button if b.key == "move:tiny"][0].click()
    at.run()
    assert not at.exception, at.exception


def test_lifecycle_champion_gates_override_and_rollback(app_root):
    at = open_app(page="views/lifecycle.py")
    lifecycle_move(at, "logreg", "production", "best linear")
    lifecycle_move(at, "logreg", "champion", "clear leader")
    assert any("Champion: **logreg**" in s.value for s in at.success)
    lifecycle_move(at, "bayes", "production", "second opinion")
    # The gate report is on the page before the click, and blocks a worse model.
    at.selectbox(key="lifecycle_target:tiny").set_value("champion")
    at.run()
    verdicts = at.dataframe[1].value
    assert "❌ fail" in set(verdicts["verdict"])
    assert "Significance (Holm)" in set(verdicts["gate"])
    assert any("Type a reason above first" in c.value for c in at.caption)
    at.text_input(key="lifecycle_reason").input("worth a try")
    at.run()
    [b for b in at.button if b.key == "move:tiny"][0].click()
    at.run()
    assert any("cannot move to champion: gates fail" in e for e in errors(at))
    lifecycle_move(at, "bayes", "champion", "faster on our hardware", override=True)
    stages = open_store(app_root).stages("tiny")
    assert (stages["bayes"].stage, stages["logreg"].stage) == ("champion", "archived")

    at.text_input(key="rollback_reason").input("bayes misbehaves live")
    at.run()
    assert any("Rolling back: logreg becomes champion again; bayes goes back to production"
               in t.value for t in at.text)  # said before the click
    [b for b in at.button if b.key == "rollback:tiny"][0].click()
    at.run()
    assert open_store(app_root).stages("tiny")["bayes"].stage == "champion"  # not yet
    [b for b in at.button if b.key == "confirm_yes:tiny"][0].click()
    at.run()
    assert not at.exception
    store = open_store(app_root)
    assert (store.stages("tiny")["logreg"].stage, store.stages("tiny")["bayes"].stage) == (
        "champion", "production")
    assert any(s.value.startswith("Rolled back: logreg becomes champion again") for s in
               at.success)
    assert at.text_input(key="rollback_reason").value == ""
    history = store.history("tiny")
    assert [t.overridden for t in history if t.to_stage == "champion"] == [False, True, False]
    assert history[-1].action == "rollback" and "bayes misbehaves live" in history[-1].reason
    history_table = at.dataframe[-1].value
    assert len(history_table) == len(history)


def test_two_sessions_see_each_others_decisions_on_their_next_rerun(app_root):
    first, second = open_app(), open_app()
    decide_row(first, "promote", "logreg")
    first.run()
    assert "logreg" in buttons(first, "demote:")
    assert "logreg" not in buttons(second, "demote:")  # not yet rerun: the old page
    second.run()
    assert "logreg" in buttons(second, "demote:")
    assert "**Total Promoted: 1**" in [m.value for m in second.markdown]
    decide_row(second, "demote", "logreg")
    second.run()
    first.run()
    assert "logreg" in buttons(first, "promote:")
    assert "**Total Promoted: 0**" in [m.value for m in first.markdown]
    # The lifecycle page of the first session shows the champion the second one crowned.
    lifecycle = open_app(page="views/lifecycle.py")
    lifecycle_move(lifecycle, "bayes", "production", "second opinion")
    lifecycle_move(lifecycle, "bayes", "champion", "crowned elsewhere")
    assert open_store(app_root).stages("tiny")["bayes"].stage == "champion"
    first.switch_page("views/lifecycle.py")
    first.run()
    assert any("Champion: **bayes**" in s.value for s in first.success)
    assert not first.exception and not second.exception


def crowned(app_root: Path, challenger: str) -> SqlStore:
    """tiny: logreg champion and ``challenger`` in production; returns the store."""
    store = open_store(app_root)
    for name in ("logreg", challenger):
        change_stage(app_root, "tiny", store, name, "production", actor="ana",
                               reason="test")
    change_stage(app_root, "tiny", store, "logreg", "champion", actor="ana",
                           reason="test")
    return store


def monitored(app_root: Path, requests: int = 1200) -> None:
    """tiny: logreg champion, tree_d3 a 10% canary, replayed traffic with outcomes."""
    store = crowned(app_root, "tree_d3")
    deploy(app_root, "tiny", store, "canary", canary="tree_d3", canary_share=0.1,
                     actor="ana", reason="start the canary")
    simulate(app_root, "tiny", requests, drift=("f2", 1.0), seed=3, days=8)
    store.close()


def test_monitoring_without_an_export_or_log_says_what_to_do(app_root):
    at = open_app(page="views/monitoring.py")
    assert any("Nothing exported to serve yet" in i.value for i in at.info)


def test_monitoring_shows_live_metrics_drift_and_applies_the_recommendation(app_root):
    monitored(app_root)
    at = open_app(page="views/monitoring.py")
    assert not at.error
    assert any("1,200 requests logged, 1,200 with outcomes" in t.value for t in at.text)
    windows = at.dataframe[1].value
    assert set(windows["model"]) == {"logreg", "tree_d3"}
    assert (windows["low"] <= windows["value"]).all()
    assert (windows["value"] <= windows["high"]).all()
    drift_table = at.dataframe[-1].value
    assert drift_table["feature"].iloc[0] == "f2" and drift_table["flagged"].iloc[0]
    assert any("f2" in w.value for w in at.warning)
    heading = [h.value for h in at.subheader if h.value.startswith("Recommendation")][0]
    assert "Wait" not in heading  # 1,200 outcomes over 8 days: a decision is due
    button = [b for b in at.button if b.key == "apply:tiny"][0]
    assert button.disabled  # no reason yet
    at.text_input(key="monitoring_reason").input("weekly review")
    at.run()
    [b for b in at.button if b.key == "apply:tiny"][0].click()
    at.run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("Applied:") for s in at.success)
    decided = open_store(app_root).deployments("tiny")
    assert decided[-1].actor == "ana" and "weekly review" in decided[-1].reason


def test_lifecycle_deploys_a_canary_with_a_reason(app_root):
    store = crowned(app_root, "bayes")
    at = open_app(page="views/lifecycle.py")
    at.selectbox(key="deploy_mode:tiny").set_value("canary")
    at.run()
    at.selectbox(key="deploy_canary:tiny").set_value("bayes")
    at.text_input(key="deploy_reason").input("try bayes on live traffic")
    at.run()
    [b for b in at.button if b.key == "deploy:tiny"][0].click()
    at.run()
    assert not at.exception, at.exception
    # Escaped for markdown (a ':' could start an emoji code); shown as written.
    assert any("canary\\: bayes answers 10% of requests" in s.value for s in at.success)
    record = store.deployments("tiny")[-1]
    assert (record.mode, record.canary_model, record.canary_share, record.actor) == (
        "canary", "bayes", 0.1, "ana")
    from promotion.engine import PredictionEngine

    assert PredictionEngine.load("tiny", app_root, log=False).canary == "bayes"


def test_cards_exported_from_the_leaderboard_carry_the_newest_deployment(app_root):
    store = crowned(app_root, "bayes")
    at = open_app()
    [b for b in at.button if b.label == "🎫 Generate Model Cards"][0].click()
    at.run()  # cards built (and cached) in ensemble mode
    set_deployment(store, load_scope(app_root, "tiny"), "champion",
                             actor="ana", reason="shadow the challenger")
    at.run()
    [b for b in at.button if b.key == "export:tiny"][0].click()
    at.run()
    assert not at.exception, at.exception
    import json

    newest = sorted((app_root / "advanced" / "model_cards").glob("model_cards_tiny_*.json"))[-1]
    roles = {c["model_name"]: (c["deployment_mode"], c["role"])
             for c in json.loads(newest.read_text())}
    assert roles == {"logreg": ("champion", "champion"), "bayes": ("champion", "challenger")}


def test_monitoring_shows_a_damaged_log_as_one_error(app_root):
    store = crowned(app_root, "tree_d3")
    deploy(app_root, "tiny", store, "champion", actor="ana", reason="shadow")
    store.close()
    path = log_path(app_root, "tiny")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00garbage, not a database\xff" * 200)
    at = open_app(page="views/monitoring.py")
    assert not at.exception
    assert [e for e in errors(at) if "the prediction log cannot be used" in e] == errors(at)
    assert len(at.error) == 1 and str(path) in errors(at)[0]
    # Shown as written: the path's underscores are escaped, not read as markdown emphasis.
    assert plain(str(path)) in at.error[0].value and "\\_" in at.error[0].value


def test_deployment_texts_show_as_written(app_root):
    store = crowned(app_root, "bayes")
    deploy(app_root, "tiny", store, "canary", canary="bayes", canary_share=0.1,
                     actor="*ana*", reason="try `bayes` on **live** traffic")
    store.close()
    at = open_app(page="views/lifecycle.py")
    caption = [c.value for c in at.caption if c.value.startswith("In force:")][0]
    assert "\\*ana\\*" in caption and "\\*\\*live\\*\\*" in caption and "\\`bayes\\`" in caption


FIRST_PAGE = """
import sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=180)
at.query_params["scope"] = "tiny"
at.run()
assert not at.exception, at.exception
assert any(m.value == "**Total Promoted: 0**" for m in at.markdown)
print(" ".join(sorted(m for m in ("sklearn", "scipy", "joblib", "pandas", "pyarrow",
                                  "streamlit.emojis") if m in sys.modules)))
"""


def test_the_first_page_from_the_cache_loads_nothing_it_does_not_need(app_root):
    """scikit-learn and SciPy took most of a cold start to import; pandas (with pyarrow),
    joblib and Streamlit's emoji catalogue a good part of the rest. A leaderboard served from
    the evaluation cache needs none of them: they load when a holdout is read or something
    is measured, or an emoji icon is validated."""
    evaluate_scope(load_scope(app_root, "tiny"),
                             open_store(app_root), n_jobs=1)
    done = subprocess.run([sys.executable, "-c", FIRST_PAGE, APP], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""


def test_files_changed_while_the_app_is_open_show_on_the_next_rerun(app_root):
    from factories import make_data, write_model
    from sklearn.dummy import DummyClassifier
    from sklearn.tree import DecisionTreeClassifier

    at = open_app()
    before = {r.model_name: r.composite_score for r in build_leaderboard(
        app_root, "tiny", open_store(app_root), n_jobs=1)[0].ranked}
    X, y = make_data("multiclass", 600)
    scope_dir = app_root / "tiny"
    write_model(scope_dir, "tree_d3", DummyClassifier(strategy="prior").fit(X[:300], y[:300]),
                model_type="dummy", group="linear")  # replaced in place: same folder
    write_model(scope_dir, "tree_d5", DecisionTreeClassifier(max_depth=5, random_state=0).fit(
        X[:300], y[:300]), model_type="decision_tree", group="tree")  # a new folder
    at.run()
    assert not at.exception, at.exception
    shown = {b.key.split(":", 2)[2] for b in at.button if b.key and b.key.startswith("promote:")}
    assert shown == {*before, "tree_d5"}
    board, _ = build_leaderboard(app_root, "tiny", open_store(app_root),
                                           n_jobs=1)
    assert board.row("tree_d3").model_type == "dummy"
    assert board.row("tree_d3").composite_score < before["tree_d3"]
    texts = [t.value for t in at.text]  # the row as drawn: the new group and interval
    low, high = board.row("tree_d3").composite_interval
    at_row = texts.index("tree_d3")
    assert texts[at_row + 1:at_row + 3] == ["baseline", f"[{low:.3f}, {high:.3f}]"]


def test_a_holdout_in_a_subfolder_replaced_while_the_app_is_open_is_read_again(app_root):
    """A fully cached scope hashes its holdout without reading it, so the pages' rows and the
    cached evaluation must both follow the file, wherever scope.json puts it."""
    scope_dir = app_root / "tiny"
    (scope_dir / "data").mkdir()
    (scope_dir / "holdout.csv").rename(scope_dir / "data" / "holdout.csv")
    config = json.loads((scope_dir / "scope.json").read_text())
    (scope_dir / "scope.json").write_text(json.dumps({**config, "holdout": "data/holdout.csv"}))
    evaluate_scope(load_scope(app_root, "tiny"),
                             open_store(app_root), n_jobs=1)
    at = open_app()
    assert any(" 300 holdout rows " in c.value for c in at.caption)
    lines = (scope_dir / "data" / "holdout.csv").read_text().splitlines(keepends=True)
    (scope_dir / "data" / "holdout.csv").write_text("".join(lines[:-40]))
    at.run()
    assert not at.exception, at.exception
    assert any(" 260 holdout rows " in c.value for c in at.caption)
    at.switch_page("views/explorer.py")
    at.run()
    assert not at.exception, at.exception
    assert not errors(at)


# --- the real-data demo scope: text categories, gaps, a shared preprocessor ------------------

@pytest.fixture(scope="module")
def loans_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from demo import build_demo_zoo

    root = tmp_path_factory.mktemp("loans") / "models"
    build_demo_zoo(root, scopes=("loan_applications",), progress=lambda _: None)
    return root


@pytest.fixture
def loans_app(loans_root, monkeypatch) -> Path:
    monkeypatch.setenv("PROMOTION_MODELS_DIR", str(loans_root))
    monkeypatch.setenv("PROMOTION_USER", "ana")
    monkeypatch.delenv("PROMOTION_DB_URL", raising=False)
    return loans_root


@pytest.mark.parametrize("page", PAGES)
def test_the_real_data_demo_scope_works_on_every_page(loans_app, page):
    at = open_app("loan_applications", page)
    assert not at.error, errors(at)
    assert at.title[0].value.replace("\\", "").endswith("loan_applications")  # markdown-escaped


def _called_positive(at: AppTest) -> int:
    shown = {m.label: m.value for m in at.metric}["Rows called positive"]
    return int(shown.split(" of ")[0].replace(",", ""))


def test_the_explorer_shows_what_a_threshold_gives(loans_app):
    at = open_app("loan_applications", "views/explorer.py")
    [slider] = [s for s in at.slider if s.key and s.key.startswith("threshold:")]
    assert slider.value == pytest.approx(0.3)  # the scope's decision_threshold
    labels = {m.label for m in at.metric}
    assert {"Precision", "Recall", "Rows called positive", "Cost on the holdout"} <= labels
    at_served = _called_positive(at)
    slider.set_value(0.6).run()
    assert not at.exception
    assert _called_positive(at) < at_served


def test_the_real_data_demo_scope_is_monitored_in_raw_feature_terms(loans_app):
    store = open_store(loans_app)
    try:
        for name in ("logistic_regression", "hist_gradient_boosting"):
            change_stage(loans_app, "loan_applications", store, name, "production", actor="ana",
                         reason="real data on every page", override=True)
        deploy(loans_app, "loan_applications", store, "ensemble", actor="ana",
               reason="serve the ensemble")
    finally:
        store.close()
    simulate(loans_app, "loan_applications", 400, seed=2)
    at = open_app("loan_applications", "views/monitoring.py")
    assert not at.error, errors(at)
    table = next(df.value for df in at.dataframe if "verdict" in df.value.columns)
    assert {"purpose", "employment", "risk_rating"} <= set(table["feature"])
    assert not table["flagged"].any()
def test_monitoring_replays_traffic_and_refuses_to_apply_twice(app_root):
    """Traffic from the page (the simulate function), then Apply; the same recommendation
    applied from a page that was not rerun is refused, with nothing recorded or exported."""
    store = crowned(app_root, "tree_d3")
    deploy(app_root, "tiny", store, "canary", canary="tree_d3", canary_share=0.10,
           actor="ana", reason="try tree_d3")
    at = open_app(page="views/monitoring.py")
    assert any("No prediction logged yet" in i.value for i in at.info)
    at.number_input(key="sim_requests:tiny").set_value(1200)
    [b for b in at.button if b.key == "simulate:tiny"][0].click()
    at.run()
    assert any("1200 requests served and logged" in s.value for s in at.success)
    assert any("1,200 requests logged, 1,200 with outcomes" in t.value for t in at.text)
    heading = [h.value for h in at.subheader if h.value.startswith("Recommendation")][0]
    assert "Wait" not in heading  # 1,200 outcomes over 8 days: a decision is due
    stale = open_app(page="views/monitoring.py")  # a second tab, not rerun after the apply
    for page in (at, stale):
        page.text_input(key="monitoring_reason").input("weekly review")
        page.run()
    [b for b in at.button if b.key == "apply:tiny"][0].click()
    at.run()
    assert any(s.value.startswith("Applied:") for s in at.success)
    # The recommendation is for the allocation now in force: nothing served at it yet.
    heading = [h.value for h in at.subheader if h.value.startswith("Recommendation")][0]
    assert "Wait" in heading and not [b for b in at.button if b.key == "apply:tiny"]
    before = (len(store.history("tiny")), len(store.deployments("tiny")),
              len(cards_files(app_root, "tiny")))
    [b for b in stale.button if b.key == "apply:tiny"][0].click()
    stale.run()
    assert any("no longer current" in e for e in errors(stale))
    assert (len(store.history("tiny")), len(store.deployments("tiny")),
            len(cards_files(app_root, "tiny"))) == before


@given(st.lists(st.floats(0.001, 1.0), min_size=1, max_size=12))
def test_weights_shown_as_percentages_add_up_to_100(raw):
    from views._common import percents_to_100

    shares = [value / sum(raw) for value in raw]
    shown = percents_to_100(shares)
    assert round(sum(float(p.rstrip("%")) for p in shown), 1) == 100.0
    assert all(abs(float(p.rstrip("%")) - 100 * s) < 0.1 + 1e-9 for p, s in zip(
        shown, shares, strict=True))
