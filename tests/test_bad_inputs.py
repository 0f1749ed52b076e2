"""The bad-input corpus (tests/fixtures/bad_inputs): every case gets one message naming the
file and the field, in the library, on the command line and in the app, and everything else
keeps working. Hostile model names rank and are shown as text."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import misbehaving
import pytest
from factories import make_scope
from streamlit.testing.v1 import AppTest

from promotion import PromotionError
from promotion.scopes import ScopeProblem, discover_scopes
from promotion.store import Store, open_store
from promotion.usecases import build_leaderboard

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "fixtures" / "bad_inputs"
CASES: list[dict] = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))
BY_KIND = {kind: [c for c in CASES if c["kind"] == kind]
           for kind in ("scope", "holdout", "model", "name")}
APP = str(ROOT / "app.py")


def build_case(root: Path, case: dict) -> None:
    """The case's scope: a good scope with the case's files laid over it."""
    folder = make_scope(root, case["case"], models=("logreg", "bayes"), n_rows=300,
                        scope_extra={"n_bootstrap": 50, "latency_rows": 10})
    for relative in case.get("remove", []):
        (folder / relative).unlink()
    if (CORPUS / case["case"]).is_dir():
        shutil.copytree(CORPUS / case["case"], folder, dirs_exist_ok=True)
    if "create_folder" in case:
        (folder / case["create_folder"]).mkdir()
        shutil.copy(folder / "logreg" / "meta.json", folder / case["create_folder"])
    if "copy_model" in case:
        shutil.copy(folder / case["copy_model"] / "model.joblib", folder / case["model"])
    if "misbehaving" in case:  # a real model class from tests/misbehaving.py, fitted and saved
        model = getattr(misbehaving, case["misbehaving"])()
        misbehaving.write_misbehaving(folder, case["model"], model, n_rows=300)


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "models"
    for case in CASES:
        build_case(root, case)
    store = open_store(root)
    try:  # measured once here, so the command line and the app read the cache
        for case in CASES:
            if case["kind"] in ("model", "name"):
                build_leaderboard(root, case["case"], store, n_jobs=1)
    finally:
        store.close()
    return root


def shown(case: dict) -> str:
    return case.get("shown", f"models/{case['case']}/{case['file']}")


def message_of(root: Path, store: Store, case: dict) -> str:
    """What the library says about the case (an exception's text or a failed row's reason)."""
    name = case["case"]
    try:
        board, _ = build_leaderboard(root, name, store, n_jobs=1)
    except PromotionError as err:
        assert case["kind"] in ("scope", "holdout"), f"{name}: unexpected error {err}"
        return str(err)
    row = board.row(case["model"])
    assert row is not None, f"{name}: model {case['model']!r} is not on the board"
    if case["kind"] == "name":
        assert row.ok, row.reason
        assert board.row("bayes").ok
        return f"{row.model_name} {row.model_type}"
    assert not row.ok
    assert board.row("logreg").ok and len(board.ranked) == len(board.rows) - 1
    return row.reason or ""


def test_the_corpus_holds_at_least_30_cases_kept_on_disk():
    files = [p for p in CORPUS.rglob("*") if p.is_file() and p.name not in
             ("cases.json", "README.md")]
    assert len(CASES) >= 30 and len(files) >= 30
    assert len({c["case"] for c in CASES}) == len(CASES)
    print(f"bad-input corpus: {len(CASES)} cases, {len(files)} files")


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_each_case_is_one_message_naming_the_file_and_the_field(corpus_root, case):
    store = open_store(corpus_root)
    try:
        message = message_of(corpus_root, store, case)
    finally:
        store.close()
    assert case["message"] in message
    if case["kind"] != "name":
        assert shown(case) in message, message
        assert case["field"] in message, message
        assert "\n" not in message and "Traceback" not in message


def test_broken_scopes_do_not_hide_the_others(corpus_root):
    found = {item.name: item for item in discover_scopes(corpus_root)}
    assert set(found) == {c["case"] for c in CASES}
    for case in CASES:
        broken = isinstance(found[case["case"]], ScopeProblem)
        assert broken == (case["kind"] == "scope"), case["case"]


def run_cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMOTION_DB_URL", None)
    return subprocess.run([sys.executable, "-m", "promotion", *args, "--models-dir", str(root)],
                          capture_output=True, text=True, env=env, timeout=300)


def check_cli_result(case: dict, code: int, stdout: str, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    if case["kind"] in ("scope", "holdout"):
        assert code == 2, (case["case"], stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        assert shown(case) in lines[0] and case["message"] in lines[0]
        return
    assert code == 0, (case["case"], stderr)
    rows = {m["model_name"]: m for m in json.loads(stdout)["models"]}
    others = {"logreg", "bayes"} - {case["model"]}
    assert all(rows[name]["status"] == "ok" for name in others)
    row = rows[case["model"]]
    if case["kind"] == "name":
        assert row["status"] == "ok"
        assert case["message"] in f"{row['model_name']} {row['model_type']}"
    else:
        assert row["status"] == "failed" and case["message"] in row["reason"]
        assert shown(case) in row["reason"]


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_the_command_line_says_one_line_per_bad_case(corpus_root, case, capsys):
    """``python -m promotion leaderboard`` runs exactly ``main``; here without a new
    interpreter per case (a few cases below go through a real subprocess too)."""
    from promotion.cli import main

    code = main(["leaderboard", "--scope", case["case"], "--json", "--models-dir",
                 str(corpus_root)])
    out = capsys.readouterr()
    check_cli_result(case, code, out.out, out.err)


@pytest.mark.slow
def test_the_command_line_in_a_subprocess_keeps_serving_the_rest(corpus_root):
    sample = [cases[0] for cases in BY_KIND.values()]
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda c: (c, run_cli(corpus_root, "leaderboard", "--scope",
                                                   c["case"], "--json")), sample))
    for case, result in done:
        check_cli_result(case, result.returncode, result.stdout, result.stderr)
    listing = run_cli(corpus_root, "scopes")
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    broken = [line.split("\t")[0] for line in listing.stdout.splitlines()
              if "\tBROKEN\t" in line]
    assert sorted(broken) == sorted(c["case"] for c in BY_KIND["scope"])


def _unescaped(value: str) -> str:
    return value.replace("\\", "")


@pytest.mark.slow
def test_the_app_shows_each_problem_and_keeps_serving_the_rest(corpus_root, monkeypatch):
    monkeypatch.setenv("PROMOTION_MODELS_DIR", str(corpus_root))
    monkeypatch.setenv("PROMOTION_USER", "ana")
    monkeypatch.delenv("PROMOTION_DB_URL", raising=False)
    at = AppTest.from_file(APP, default_timeout=300)
    at.session_state["decision_reason"] = "corpus check"
    at.run()
    assert not at.exception, at.exception
    warnings = [_unescaped(w.value) for w in at.warning]
    for case in BY_KIND["scope"]:  # every unreadable scope is named, with file and field
        assert any(_unescaped(shown(case)) in w and _unescaped(case["message"]) in w
                   for w in warnings), case["case"]
    for case in BY_KIND["holdout"] + BY_KIND["model"] + BY_KIND["name"]:
        at.session_state["scope"] = case["case"]
        at.run()
        assert not at.exception, (case["case"], at.exception)
        if case["kind"] == "holdout":
            assert any(shown(case) in _unescaped(e.value) and case["message"]
                       in _unescaped(e.value) for e in at.error), case["case"]
            continue
        texts = [t.value for t in at.text]
        promote = {b.key.split(":", 2)[2] for b in at.button
                   if b.key and b.key.startswith("promote:")}
        if case["kind"] == "model":
            assert any(case["message"] in t and shown(case) in t for t in texts), case["case"]
            assert promote == {"logreg", "bayes"} - {case["model"]}
        else:  # the literal name, as text, and it can be promoted like any other
            assert case["model"] in texts, case["case"]
            assert case["model"] in promote
    # Every scope kept working: a hostile name promotes and shows in the summary as text.
    hostile = BY_KIND["name"][0]
    at.session_state["scope"] = hostile["case"]
    at.run()
    next(b for b in at.button if b.key == f"promote:{hostile['case']}:{hostile['model']}"
         ).click()
    at.run()
    assert not at.exception
    assert any(hostile["model"] in t.value for t in at.text if "Score" in t.value)


def test_no_page_renders_html():
    for path in [ROOT / "app.py", *sorted((ROOT / "views").glob("*.py"))]:
        assert "unsafe_allow_html" not in path.read_text(encoding="utf-8"), path.name
        assert "st.html" not in path.read_text(encoding="utf-8"), path.name
