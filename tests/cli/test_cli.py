from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from promotion.contract import SCHEMA_VERSION, LeaderboardExport

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, models_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMOTION_DB_URL", None)
    return subprocess.run([sys.executable, "-m", "promotion", *args, "--models-dir",
                           str(models_dir)], capture_output=True, text=True, env=env, timeout=300)


def test_leaderboard_json_lists_models_in_rank_order(models_root, tiny_scope):
    done = run_cli("leaderboard", "--scope", "tiny", "--json", models_dir=models_root)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["scope"] == "tiny"
    ranks = [m["rank"] for m in data["models"]]
    assert ranks == [1, 2, 3, 4]
    first = data["models"][0]
    assert first["status"] == "ok" and first["reason"] is None
    assert set(first["metrics"]) >= {"accuracy", "top_5_accuracy", "log_loss",
                                     "latency_p95_ms", "artifact_size_mb"}
    assert first["health_score"] == first["composite_interval"][0]
    assert "4 model(s) evaluated" in done.stderr


def test_leaderboard_json_is_the_exported_document(models_root, tiny_scope):
    """``--json`` prints the leaderboard file's document: valid against the published schema,
    and equal to what an export writes (but for when it was made)."""
    schema = json.loads((ROOT / "schemas" / "leaderboard.schema.json").read_text())
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    done = run_cli("promote", "--scope", "tiny", "--model", "logreg", "--reason", "chosen",
                   "--user", "ana", models_dir=models_root)
    assert done.returncode == 0, done.stderr
    done = run_cli("leaderboard", "--scope", "tiny", "--json", models_dir=models_root)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    validator.validate(printed)
    assert LeaderboardExport.model_validate(printed).schema_version == SCHEMA_VERSION
    assert printed["schema_version"] == SCHEMA_VERSION
    assert {m["model_name"]: m["stage"] for m in printed["models"]}["logreg"] == "production"
    assert printed["models"][0]["metrics"]["accuracy"].keys() == {"value", "low", "high"}

    done = run_cli("export", "--scope", "tiny", models_dir=models_root)
    assert done.returncode == 0, done.stderr
    written = json.loads(Path(done.stdout.split()[0]).read_text())
    validator.validate(written)
    assert {**written, "generated_at": None} == {**printed, "generated_at": None}


def test_leaderboard_table_and_cached_rerun(models_root, tiny_scope):
    run_cli("leaderboard", "--scope", "tiny", models_dir=models_root)
    done = run_cli("leaderboard", "--scope", "tiny", models_dir=models_root)
    assert done.returncode == 0
    assert "0 model(s) evaluated, 4 from cache" in done.stderr
    assert "leader" in done.stdout and "composite" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("leaderboard", "--scope", "nope"), "error: no scope 'nope'"),
        (("leaderboard",), "the following arguments are required: --scope"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_without_traceback(models_root, tiny_scope, args, message):
    done = run_cli(*args, models_dir=models_root)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_broken_scope_file_names_file_and_field(models_root, tiny_scope):
    (tiny_scope / "scope.json").write_text('{"task": "multiclass", "target": 5}')
    done = run_cli("leaderboard", "--scope", "tiny", models_dir=models_root)
    assert done.returncode == 2
    assert done.stderr.startswith("error: models/tiny/scope.json: field 'target'")
    assert "Traceback" not in done.stderr
