"""``python -m promotion serve``: real uvicorn on a free loopback port, a real HTTP client."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from factories import make_scope, write_onnx_member

from promotion.engine import newest_cards_file
from promotion.engine._predlog import log_path, log_paths, read_batches
from promotion.lifecycle import rollback
from promotion.scopes import load_scope
from promotion.usecases import change_stage, deploy, export_scope

ROOT = Path(__file__).resolve().parents[2]
#: The issue's bound: a new export is served within a second of being written.
FOLLOW_BOUND_S = 1.0


def start_server(models_root: Path, scope: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """``serve`` in its own process on a free port (port 0: the kernel picks one); returns
    the process and its base URL, once it answers."""
    process = subprocess.Popen(
        [sys.executable, "-m", "promotion", "serve", "--scope", scope, "--models-dir",
         str(models_root), "--port", "0", *extra],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stderr is not None
    line = process.stderr.readline()
    found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
    if not found:
        process.kill()
        raise AssertionError(f"serve did not start: {line}{process.stderr.read()}")
    threading.Thread(target=process.stderr.read, daemon=True).start()  # drain
    return process, found[1]


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def served_scope(models_root, store) -> Path:
    """A compiled scope with an ONNX file among its members, exported in champion mode."""
    scope = make_scope(models_root, "web", scope_extra={"compile_members": True})
    write_onnx_member(scope, "onnx_lr")
    for name in ("logreg", "tree_d3", "onnx_lr"):
        change_stage(models_root, "web", store, name, "production", actor="ana",
                     reason="chosen", override=True)
    return scope


@pytest.fixture
def server(models_root, served_scope, store) -> Iterator[str]:
    export_scope(models_root, "web", store)
    process, url = start_server(models_root, "web", "--replica", "r1")
    yield url
    stop(process)


def rows(scope: Path, n: int) -> tuple[pd.DataFrame, list[dict]]:
    frame = pd.read_csv(scope / "holdout.csv").drop(columns="label").head(n)
    return frame, frame.to_dict(orient="records")


def test_predict_health_and_export_over_http(models_root, served_scope, server, tmp_path):
    frame, records = rows(served_scope, 25)
    with httpx.Client(base_url=server) as client:
        answer = client.post("/predict", json={"rows": records,
                                               "request_ids": [f"q{i}" for i in range(25)]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        cards = client.get("/export").json()
        health = client.get("/health").json()
    newest = newest_cards_file("web", models_root)
    assert body["export"] == newest.name == health["export"]
    assert body["classes"] == cards[0]["classes"]
    assert body["served_by"] == ["ensemble"] * 25
    assert health["status"] == "ok" and set(health["compiled"]) == {"logreg", "tree_d3"}
    native = {"logreg": joblib.load(served_scope / "logreg" / "model.joblib"),
              "tree_d3": joblib.load(served_scope / "tree_d3" / "model.joblib")}
    native["onnx_lr"] = write_onnx_member(tmp_path / "again", "onnx_lr")  # same fit
    expected = sum(native[c["model_name"]].predict_proba(frame) * c["ensemble_weight"]
                   for c in cards)
    assert np.abs(np.array(body["probabilities"]) - expected).max() <= 1e-5
    # This replica's own log holds the requests; monitoring reads every replica's file.
    assert log_path(models_root, "web", "r1") in log_paths(models_root, "web")
    logged = read_batches(log_path(models_root, "web", "r1"))
    assert [i for b in logged for i in b.request_ids] == [f"q{i}" for i in range(25)]


BAD_BODIES = [
    ({"rows": [{"f0": 1.0}]}, 400, "field 'rows.0': feature 'f1' is missing"),
    ({"rows": "all"}, 422, "field 'rows'"),
    ({"rowz": []}, 422, "field 'rows': Field required"),
    ({"rows": [], "extra": 1}, 422, "field 'extra'"),
    (b"{not json", 422, "request body"),
    ("repeated ids", 400, "request ids repeat within the batch"),
]


def test_bad_input_is_a_4xx_with_one_clear_message(served_scope, server):
    _, records = rows(served_scope, 2)
    with httpx.Client(base_url=server) as client:
        for body, status, message in BAD_BODIES:
            if body == "repeated ids":
                answer = client.post("/predict", json={"rows": records,
                                                       "request_ids": ["a", "a"]})
            elif isinstance(body, bytes):
                answer = client.post("/predict", content=body,
                                     headers={"content-type": "application/json"})
            else:
                answer = client.post("/predict", json=body)
            assert answer.status_code == status, (body, answer.text)
            error = answer.json()["error"]
            assert message in error and "\n" not in error, (body, error)
        assert client.get("/health").json()["status"] == "ok"  # still serving


@pytest.mark.parametrize(("args", "message"), [
    (["--scope", "nope"], "error: .*nope"),
    (["--scope", "web", "--replica", "a/b"], "not a replica id"),
])
def test_serve_refuses_bad_input_in_one_line(models_root, served_scope, args, message):
    done = subprocess.run([sys.executable, "-m", "promotion", "serve", "--models-dir",
                           str(models_root), "--port", "0", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and re.search(message, done.stderr)


def test_a_scope_never_exported_is_one_line(models_root, served_scope):
    done = subprocess.run([sys.executable, "-m", "promotion", "serve", "--models-dir",
                           str(models_root), "--scope", "web"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no model cards exported for scope 'web'" in done.stderr


def served_by_within(url: str, records: list[dict], wanted: str, bound_s: float) -> str:
    """Ask until the answer is ``wanted``'s or ``bound_s`` has passed; the last served_by."""
    deadline = time.monotonic() + bound_s
    with httpx.Client(base_url=url) as client:
        while True:
            served = client.post("/predict", json={"rows": records}).json()["served_by"][0]
            if served == wanted or time.monotonic() > deadline:
                return served
            time.sleep(0.02)


def test_a_rollback_in_the_store_is_served_within_a_second(models_root, served_scope, store):
    change_stage(models_root, "web", store, "logreg", "champion", actor="ana", reason="best")
    deploy(models_root, "web", store, "champion", actor="ana", reason="champion answers")
    change_stage(models_root, "web", store, "tree_d3", "champion", actor="ana",
                 reason="newer", override=True)
    export_scope(models_root, "web", store)
    process, url = start_server(models_root, "web")
    try:
        _, records = rows(served_scope, 1)
        assert served_by_within(url, records, "tree_d3", 0) == "tree_d3"
        rollback(store, load_scope(models_root, "web"), actor="ops", reason="tree_d3 misfires")
        export_scope(models_root, "web", store)  # what the app and the CLI do after a move
        assert served_by_within(url, records, "logreg", FOLLOW_BOUND_S) == "logreg"
    finally:
        stop(process)


def test_no_request_fails_while_exports_are_swapped(models_root, served_scope, server,
                                                    store):
    _, records = rows(served_scope, 3)
    answers: list[int] = []
    exports: set[str] = set()
    stop_asking = threading.Event()

    def ask() -> None:
        with httpx.Client(base_url=server) as client:
            while not stop_asking.is_set():
                answer = client.post("/predict", json={"rows": records})
                answers.append(answer.status_code)
                exports.add(answer.json().get("export", ""))

    asker = threading.Thread(target=ask)
    asker.start()
    written = {newest_cards_file("web", models_root).name}
    try:
        for k in range(6):
            written.add(export_scope(models_root, "web", store,
                                     ("score", "equal")[k % 2]).model_cards.name)
    finally:
        stop_asking.set()
        asker.join()
    assert answers and set(answers) == {200}
    assert exports <= written and len(exports) > 1  # the swaps happened under load


def test_a_regression_export_answers_predictions_over_http(models_root, regression_scope,
                                                           store):
    from served_regression import regression_export

    cards_path = regression_export(models_root, store, {"ridge": 0.6, "tree_d4": 0.4})
    frame = pd.read_csv(regression_scope / "holdout.csv").drop(columns="progression").head(9)
    process, url = start_server(models_root, "diabetes")
    try:
        with httpx.Client(base_url=url) as client:
            answer = client.post("/predict", json={
                "rows": frame.to_dict(orient="records"),
                "request_ids": [f"r{i}" for i in range(9)]})
            cards = client.get("/export").json()
            bad = client.post("/predict", json={"rows": [{"age": 1.0}]})
    finally:
        stop(process)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"classes", "predictions", "served_by", "request_ids", "export"}
    assert body["classes"] == [] and body["export"] == cards_path.name
    assert body["served_by"] == ["ensemble"] * 9 and body["request_ids"][0] == "r0"
    expected = sum(joblib.load(regression_scope / c["model_name"] / "model.joblib")
                   .predict(frame) * c["ensemble_weight"] for c in cards)
    np.testing.assert_allclose(body["predictions"], expected, rtol=1e-12)
    assert [c["task"] for c in cards] == ["regression"] * 2 and cards[0]["classes"] == []
    assert bad.status_code == 400
    assert bad.json()["error"] == ("field 'rows.0': feature 'sex' is missing; each row needs "
                                   "the cards' 10 features")
