"""The command line under faults and bad arguments: one line on stderr, exit status 2, and
nothing recorded or created by a command that was refused."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from factories import make_scope
from store_faults import fill, holding_sqlite_lock, small_filesystem

from promotion.store import open_store
from promotion.usecases import change_stage

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, models_dir: Path, umask: int | None = None,
            **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    if "PROMOTION_DB_URL" not in env:
        environment.pop("PROMOTION_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "promotion", *args, "--models-dir", str(models_dir)],
        capture_output=True, text=True, env=environment, timeout=300,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)))


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The refused command's only output: one line on stderr, exit status 2."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def history(models_root: Path, url: str | None = None) -> list[str]:
    store = open_store(models_root, url)
    try:
        return [f"{t.model_name} by {t.actor}" for t in store.history("tiny")]
    finally:
        store.close()


PROMOTE = ("promote", "--scope", "tiny", "--model", "logreg", "--reason", "chosen")


def test_a_lock_held_by_another_process_is_one_line_after_a_bounded_wait(models_root,
                                                                         tiny_scope):
    assert run_cli("leaderboard", "--scope", "tiny", models_dir=models_root).returncode == 0
    database = models_root / "promotion.db"
    with holding_sqlite_lock(database) as holder:
        done = run_cli(*PROMOTE, "--user", "ana", models_dir=models_root,
                       PROMOTION_LOCK_WAIT_S="1")
    line = one_error_line(done)
    assert line.startswith(f"error: {database} is busy: process {holder.pid} (python")
    assert line.endswith(") has held its write lock for over 1 s; nothing was saved. Hint: "
                         "retry, or stop that process")
    assert history(models_root) == []


def test_a_full_disk_during_promote_is_one_line(tmp_path, models_root, tiny_scope):
    with small_filesystem(tmp_path / "small", "16m") as small:
        database = small / "promotion.db"
        url = f"sqlite:///{database}"
        done = run_cli("leaderboard", "--scope", "tiny", models_dir=models_root,
                       PROMOTION_DB_URL=url)
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(database) as conn:  # the log empty: the next write needs room
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = fill(small)
        done = run_cli(*PROMOTE, "--user", "ana", models_dir=models_root, PROMOTION_DB_URL=url)
        assert one_error_line(done) == (
            f"error: cannot write to the store {database}: the disk is full; nothing was "
            "saved. Hint: free some space and retry")
        filler.unlink()
        assert history(models_root, url) == []


@pytest.mark.parametrize(("args", "said"), [
    (("--seed", "-1"), "--seed -1: must be a whole number from 0 to 4,294,967,295"),
    (("--seed", "1.5"), "--seed 1.5: must be a whole number from 0"),
    (("--days", "1e308"), "--days 1e308: must be more than 0 and at most 36,500 days"),
    (("--days", "nan"), "--days nan: must be more than 0 and at most 36,500 days"),
    (("--days", "inf"), "--days inf: must be more than 0"),
    (("--days", "0"), "--days 0: must be more than 0"),
    (("--requests", "0"), "--requests 0: must be a whole number from 1 to 10,000,000"),
    (("--requests", "100000000000"), "--requests 100000000000: must be a whole number"),
])
def test_simulate_arguments_are_checked_in_one_line(models_root, tiny_scope, args, said):
    options = {"--requests": "10", **dict(zip(args[::2], args[1::2], strict=True))}
    done = run_cli("simulate", "--scope", "tiny", *[x for pair in options.items() for x in pair],
                   models_dir=models_root)
    assert one_error_line(done).startswith(f"python -m promotion simulate: error: {said}")
    assert not (models_root / "advanced").exists()  # nothing served, nothing logged


@pytest.mark.parametrize("command", [
    PROMOTE,
    ("demote", "--scope", "tiny", "--model", "logreg", "--reason", "done"),
    ("rollback", "--scope", "tiny", "--reason", "back"),
    ("deploy", "--scope", "tiny", "--mode", "ensemble", "--reason", "all"),
])
@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_user_is_refused_not_replaced_by_the_account_name(models_root, tiny_scope,
                                                                  command, blank):
    done = run_cli(*command, "--user", blank, models_dir=models_root)
    assert one_error_line(done) == (
        f"python -m promotion {command[0]}: error: --user {blank!r}: a blank name cannot be "
        "recorded. Hint: give your name, or leave --user out to record $PROMOTION_USER or your "
        "account name (see --help)")
    assert history(models_root) == []


@pytest.mark.parametrize("command", [
    ("scopes",), ("leaderboard", "--scope", "tiny"), (*PROMOTE, "--user", "ana"),
    ("history", "--scope", "tiny"), ("list", "--scope", "tiny"), ("export", "--scope", "tiny"),
    ("gates", "--scope", "tiny", "--model", "logreg"), ("monitor", "--scope", "tiny"),
])
def test_a_mistyped_models_root_is_refused_and_not_created(models_root, tiny_scope, command):
    mistyped = models_root.parent / "modles"
    done = run_cli(*command, models_dir=mistyped)
    assert one_error_line(done) == (
        f"error: models root '{mistyped}' does not exist (--models-dir or PROMOTION_MODELS_DIR). "
        f"Hint: check the path; `python -m promotion demo --models-dir {mistyped}` builds a new "
        f"one ({command[0]} does not)")
    assert not mistyped.exists()


def test_migrate_still_starts_a_new_models_root(tmp_path):
    fresh = tmp_path / "new" / "models"
    done = run_cli("migrate", models_dir=fresh)
    assert done.returncode == 0, done.stderr
    assert (fresh / "promotion.db").exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_export_files_have_the_umasks_permissions(models_root, tiny_scope, umask, mode):
    store = open_store(models_root)
    change_stage(models_root, "tiny", store, "logreg", "production", actor="ana",
                 reason="chosen")
    store.close()
    done = run_cli("export", "--scope", "tiny", models_dir=models_root, umask=umask)
    assert done.returncode == 0, done.stderr
    written = [Path(line) for line in done.stdout.split()]
    assert len(written) == 2
    for path in written:
        assert oct(path.stat().st_mode & 0o777) == oct(mode), path
        json.loads(path.read_text())


def test_a_full_disk_during_export_is_one_line_and_leaves_no_partial_file(tmp_path):
    with small_filesystem(tmp_path / "small", "16m") as small:
        models_root = small / "models"
        make_scope(models_root, "tiny", models=("logreg", "bayes"))
        done = run_cli(*PROMOTE, "--user", "ana", models_dir=models_root)
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(models_root / "promotion.db") as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        filler = fill(small)
        done = run_cli("export", "--scope", "tiny", models_dir=models_root)
        line = one_error_line(done)
        assert line.startswith(f"error: {models_root / 'advanced'}")
        assert line.endswith(".json: No space left on device")
        filler.unlink()
        exported = [p for p in (models_root / "advanced").rglob("*") if p.is_file()]
        assert exported == []  # no partial file, no temporary file left behind
