"""``python -m promotion predict``: strict CSV input, empty input, checked members, batches.

Every run is a real process on a real scope whose cards are written through the contract;
a user error is one line on stderr with exit status 2 and leaves no output file.
"""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from factories import make_card, write_cards, write_model

from promotion.engine import log_path

ROOT = Path(__file__).resolve().parents[2]
BENT = ROOT / "tests" / "fixtures" / "serving"
sys.path.insert(0, str(BENT))
import serving_members as bent  # noqa: E402

FEATURES = [f"f{i}" for i in range(8)]


def predict(root: Path, rows: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMOTION_DB_URL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(BENT)])
    return subprocess.run([sys.executable, "-m", "promotion", "predict", "--scope", "tiny",
                           "--input", str(rows), "--models-dir", str(root), *extra],
                          capture_output=True, text=True, env=env, timeout=300)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout[:300], done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def logged_rows(root: Path) -> list[int]:
    path = log_path(root, "tiny")
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        return [n for (n,) in conn.execute("SELECT rows FROM batch ORDER BY id")]


@pytest.fixture
def served(models_root, tiny_scope) -> Path:
    """logreg and tree_d3, half and half."""
    write_cards(models_root, [make_card(models_root, "logreg", ensemble_weight=0.5),
                              make_card(models_root, "tree_d3", ensemble_weight=0.5)])
    return models_root


def holdout_text(root: Path, rows: int) -> list[str]:
    """The header and the first ``rows`` holdout rows, as CSV lines (features only)."""
    frame = pd.read_csv(root / "tiny" / "holdout.csv")[FEATURES].head(rows)
    return frame.to_csv(index=False).splitlines()


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def extra_fields(line: str) -> str:
    return line + ",1,2,3"


@pytest.mark.parametrize(("change", "message"), [
    # Every row with 3 more fields than the header: pandas took them as the index, every
    # feature shifted and predict answered the wrong classes with exit 0.
    (lambda lines: [lines[0], *map(extra_fields, lines[1:])],
     "line 2: 11 fields, the header has 8"),
    (lambda lines: [*lines[:1], extra_fields(lines[1]), *lines[2:]],
     "line 2: 11 fields, the header has 8"),
    (lambda lines: [*lines[:4], extra_fields(lines[4]), *lines[5:]],
     "line 5: 11 fields, the header has 8"),
    (lambda lines: [*lines[:3], lines[3].rsplit(",", 2)[0], *lines[4:]],
     "line 4: 6 fields, the header has 8"),
])
def test_a_ragged_row_is_an_error_naming_the_line(served, tmp_path, change, message):
    rows = write_lines(tmp_path / "rows.csv", change(holdout_text(served, 6)))
    out = tmp_path / "out.csv"
    done = predict(served, rows, "--output", str(out))
    assert one_line_error(done) == (f"error: {rows}: {message}. Hint: every row needs one "
                                    "value per header column")
    assert not out.exists() and logged_rows(served) == []


def test_zero_rows_give_an_empty_result(served, tmp_path):
    rows = write_lines(tmp_path / "rows.csv", holdout_text(served, 0))
    done = predict(served, rows)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "request_id,served_by,prediction," + ",".join(f"proba_{c}" for c in range(6))
        + ",failed_models"]
    assert logged_rows(served) == []


def test_a_member_off_by_a_factor_is_renormalized_and_said_so(models_root, tiny_scope,
                                                              tmp_path):
    logreg = joblib.load(tiny_scope / "logreg" / "model.joblib")
    write_model(tiny_scope, "fivefold", bent.Scaled(logreg, 5.0), model_type="bent",
                group="variant")
    write_cards(models_root, [make_card(models_root, "fivefold", ensemble_weight=0.5),
                              make_card(models_root, "tree_d3", ensemble_weight=0.5)])
    rows = write_lines(tmp_path / "rows.csv", holdout_text(models_root, 12))
    done = predict(models_root, rows)
    assert done.returncode == 0, done.stderr
    out = pd.read_csv(io.StringIO(done.stdout))
    np.testing.assert_allclose(out.filter(like="proba_").sum(axis=1), 1.0, atol=1e-9)
    assert "warning: model 'fivefold': 12 of 12 rows summed to 5, not 1; renormalized" \
        in done.stderr


def test_rows_a_member_failed_on_are_answered_by_the_others_and_marked(models_root,
                                                                      tiny_scope, tmp_path):
    logreg = joblib.load(tiny_scope / "logreg" / "model.joblib")
    write_model(tiny_scope, "holes", bent.NanWhere(logreg), model_type="bent", group="variant")
    write_cards(models_root, [make_card(models_root, "holes", ensemble_weight=0.5),
                              make_card(models_root, "tree_d3", ensemble_weight=0.5)])
    rows = write_lines(tmp_path / "rows.csv", holdout_text(models_root, 40))
    done = predict(models_root, rows)
    assert done.returncode == 0, done.stderr
    out = pd.read_csv(io.StringIO(done.stdout), keep_default_na=False)
    features = pd.read_csv(rows)
    holes = features["f0"].to_numpy() > 0
    tree = joblib.load(tiny_scope / "tree_d3" / "model.joblib").predict_proba(features)
    assert list(out["failed_models"]) == ["holes" if h else "" for h in holes]
    np.testing.assert_allclose(out.filter(like="proba_").to_numpy()[holes], tree[holes])
    assert (out["prediction"].to_numpy()[holes] == tree[holes].argmax(axis=1)).all()
    assert f"warning: model 'holes' failed on {holes.sum()} of 40 rows" in done.stderr


def test_a_large_file_is_served_in_batches_and_written_as_it_goes(served, tmp_path):
    """More rows than one batch: each batch is logged on its own, the answers are those of the
    members called directly, and the output has one header."""
    holdout = pd.read_csv(served / "tiny" / "holdout.csv")[FEATURES]
    frame = holdout.sample(10_005, replace=True, random_state=0).reset_index(drop=True)
    frame.insert(0, "request_id", [f"r{i:05d}" for i in range(len(frame))])
    frame.to_csv(rows := tmp_path / "rows.csv", index=False)
    out = tmp_path / "out.csv"
    done = predict(served, rows, "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert logged_rows(served) == [10_000, 5]
    answers = pd.read_csv(out, keep_default_na=False)
    assert list(answers["request_id"]) == list(frame["request_id"])
    expected = sum(0.5 * joblib.load(served / "tiny" / name / "model.joblib").predict_proba(
        frame[FEATURES]) for name in ("logreg", "tree_d3"))
    np.testing.assert_allclose(answers.filter(like="proba_").to_numpy(), expected, atol=1e-12)
    assert set(answers["served_by"]) == {"ensemble"} and set(answers["failed_models"]) == {""}


def test_a_repeated_request_id_is_refused_before_anything_is_served(served, tmp_path):
    frame = pd.read_csv(served / "tiny" / "holdout.csv")[FEATURES].head(25)
    ids = [f"r{i:02d}" for i in range(25)]
    ids[21] = "r03"
    frame.insert(0, "request_id", ids)
    frame.to_csv(rows := tmp_path / "rows.csv", index=False)
    out = tmp_path / "out.csv"
    done = predict(served, rows, "--output", str(out))
    assert one_line_error(done) == (f"error: {rows}: line 23: request id 'r03' repeats line 5 "
                                    "(column request_id). Hint: give every row its own id")
    assert not out.exists() and logged_rows(served) == []


def test_a_value_that_is_not_a_number_is_named_with_its_line_and_column(served, tmp_path):
    lines = holdout_text(served, 25)
    values = lines[22].split(",")
    values[3] = "abc"
    lines[22] = ",".join(values)
    rows = write_lines(tmp_path / "rows.csv", lines)
    out = tmp_path / "out.csv"
    done = predict(served, rows, "--output", str(out))
    assert one_line_error(done) == (f"error: {rows}: line 23: column 'f3' holds 'abc', "
                                    "not a number")
    assert not out.exists()
