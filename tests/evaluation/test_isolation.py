"""Whatever one model does (raise, exit, crash, hang, return garbage), it is one failed row
naming it and what happened, every other model is still ranked, the command line says one line,
and no worker process outlives the command.

Real misbehaving models (tests/misbehaving.py) pickled into real factory scopes; real worker
processes; a real command-line subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factories import make_scope
from misbehaving import (
    Centroid,
    ClassesRaise,
    ExitsInPredict,
    FeatureNamesNumber,
    KilledInPredict,
    NaNEverywhere,
    NegativeEverywhere,
    RaisesInPredict,
    RecordsItsProcess,
    ReturnsZeros,
    SegfaultsInPredict,
    SleepsInPredict,
    SumsToFive,
    SystemExitInPredict,
    WaitsForAnother,
    WrongShape,
    ZeroRows,
    write_misbehaving,
)

from promotion.evaluation import evaluate_scope
from promotion.scopes import load_scope
from promotion.usecases import build_leaderboard

ROOT = Path(__file__).resolve().parents[2]
#: A limit far above what the well-behaved models of these tiny scopes need, even on a busy
#: shared machine; only the sleeping model reaches it.
TIMEOUT_S = 8

#: case -> (model, what its failed row must say)
FAILING: dict[str, tuple[Centroid, str]] = {
    "raises_in_predict": (RaisesInPredict(), "predict_proba fails: RuntimeError: the model's "
                                             "own bug"),
    "returns_zeros": (ReturnsZeros(), "predict_proba returned no probabilities on any holdout "
                                      "row"),
    "classes_raise": (ClassesRaise(), "reading classes_ raised RuntimeError: classes_ is "
                                      "broken"),
    "feature_names_number": (FeatureNamesNumber(), "feature_names_in_ is not a list of column "
                                                   "names (12345)"),
    "exits_in_predict": (ExitsInPredict(), "model 'exits_in_predict' ended the process "
                                           "measuring it (exit code 1)"),
    "segfaults_in_predict": (SegfaultsInPredict(), "model 'segfaults_in_predict' crashed the "
                                                   "process measuring it (SIGSEGV)"),
    "system_exit_in_predict": (SystemExitInPredict(), "the model raised SystemExit(3)"),
    "sleeps_in_predict": (SleepsInPredict(3600), f"model 'sleeps_in_predict' did not finish "
                                                 f"within {TIMEOUT_S} s (scope.json field "
                                                 "'model_timeout_s')"),
    "wrong_shape": (WrongShape(), "predict_proba returned shape (60, 5), expected (60, 6)"),
    "nan_everywhere": (NaNEverywhere(), "predict_proba returned no probabilities on any "
                                        "holdout row"),
    "negative_everywhere": (NegativeEverywhere(), "predict_proba returned no probabilities on "
                                                  "any holdout row"),
}


def scope_with(root: Path, name: str, models: dict[str, Centroid], **settings: object) -> Path:
    """A factory scope (logreg and bayes, 300 holdout rows) plus ``models``."""
    folder = make_scope(root, name, models=("logreg", "bayes"),
                        scope_extra={"n_bootstrap": 50, "latency_rows": 10, **settings})
    for model_name, model in models.items():
        write_misbehaving(folder, model_name, model)
    return folder


def assert_one_failed_row(evaluation, model_name: str, says: str) -> None:
    rows = {m.model_name: m for m in evaluation.models}
    failed = rows[model_name]
    assert not failed.ok, f"{model_name} was measured: {failed.metrics}"
    assert says in failed.reason, failed.reason
    assert f"{model_name}/model.joblib" in failed.reason
    assert "\n" not in failed.reason and "Traceback" not in failed.reason
    assert {m.model_name for m in evaluation.models if m.ok} == {"logreg", "bayes"}


@pytest.mark.parametrize("case", FAILING)
def test_a_misbehaving_model_is_one_failed_row_and_the_others_rank(models_root, store, case):
    model, says = FAILING[case]
    settings = {"model_timeout_s": TIMEOUT_S} if case == "sleeps_in_predict" else {}
    scope_with(models_root, "s", {case: model}, **settings)
    board, evaluation = build_leaderboard(models_root, "s", store)
    assert_one_failed_row(evaluation, case, says)
    assert {row.model_name for row in board.ranked} == {"logreg", "bayes"}


def test_a_row_of_zeros_is_a_failed_row_of_the_holdout_not_a_lost_scope(models_root, store):
    """Zeros on some rows are like NaN on some rows: those rows count as errors (a uniform
    guess), the model still ranks with that error rate."""
    scope_with(models_root, "s", {"zero_rows": ZeroRows(), "centroid": Centroid()})
    evaluation = evaluate_scope(load_scope(models_root, "s"), store)
    rows = {m.model_name: m for m in evaluation.models}
    assert all(m.ok for m in evaluation.models), [m.reason for m in evaluation.models]
    assert rows["zero_rows"].metrics["error_rate"] == pytest.approx(6 / 300)
    assert rows["centroid"].metrics["error_rate"] == 0


def test_rows_not_summing_to_one_are_renormalized(models_root, store):
    """Rows with positive finite sums are divided by their sum, as evaluation always did: the
    model measures exactly like the same model with normalized rows."""
    scope_with(models_root, "s", {"sums_to_five": SumsToFive(), "centroid": Centroid()})
    evaluation = evaluate_scope(load_scope(models_root, "s"), store)
    rows = {m.model_name: m for m in evaluation.models}
    assert rows["sums_to_five"].ok and rows["centroid"].ok
    for name in ("accuracy", "top_5_accuracy", "log_loss", "error_rate"):
        assert rows["sums_to_five"].metrics[name] == pytest.approx(rows["centroid"].metrics[name])


def test_models_run_in_another_process_even_with_one_job(models_root, store, tmp_path):
    marker = tmp_path / "pid"
    scope_with(models_root, "s", {"records": RecordsItsProcess(marker)})
    evaluation = evaluate_scope(load_scope(models_root, "s"), store, n_jobs=1)
    assert all(m.ok for m in evaluation.models)
    assert int(marker.read_text()) != os.getpid()


def test_two_workers_measure_two_models_at_once(models_root, store, tmp_path):
    """Isolation keeps the parallelism: with two jobs, two models run at the same time."""
    folder = make_scope(models_root, "s", models=(), scope_extra={"n_bootstrap": 50,
                                                                  "latency_rows": 10})
    write_misbehaving(folder, "a", WaitsForAnother(tmp_path, "a", "b"))
    write_misbehaving(folder, "b", WaitsForAnother(tmp_path, "b", "a"))
    evaluation = evaluate_scope(load_scope(models_root, "s"), store, n_jobs=2)
    assert all(m.ok for m in evaluation.models)
    assert (tmp_path / "a.met").read_text() == (tmp_path / "b.met").read_text() == "True"


def test_the_next_evaluation_reuses_the_idle_worker(models_root, store, tmp_path):
    """Workers wait between evaluations (the app evaluates scope after scope), so the next one
    costs no process start and no import of the models' libraries."""
    for name in ("s1", "s2"):
        scope_with(models_root, name, {"records": RecordsItsProcess(tmp_path / name)})
        evaluate_scope(load_scope(models_root, name), store, n_jobs=1)
    assert (tmp_path / "s1").read_text() == (tmp_path / "s2").read_text()


# --- caching --------------------------------------------------------------------------------

def test_failures_of_the_model_are_cached_and_a_kill_from_outside_is_not(models_root, store):
    """Raising, exiting, crashing and garbage are the model's doing: the same file fails the
    same way, so the failure is kept like a success. A SIGKILL comes from outside the model
    (the out-of-memory killer, an operator): that model is measured again next time."""
    scope_with(models_root, "s", {"exits": ExitsInPredict(), "segfaults": SegfaultsInPredict(),
                                  "raises": RaisesInPredict(), "zeros": ReturnsZeros(),
                                  "killed": KilledInPredict()})
    first = evaluate_scope(load_scope(models_root, "s"), store)
    killed = next(m for m in first.models if m.model_name == "killed")
    assert not killed.ok and "SIGKILL" in killed.reason and "measured again" in killed.reason
    again = evaluate_scope(load_scope(models_root, "s"), store)
    assert again.evaluated == 1  # only the killed one
    assert [(m.model_name, m.ok, m.reason) for m in again.models] == [
        (m.model_name, m.ok, m.reason) for m in first.models]
    assert {m.model_name for m in again.models if m.cached} == {
        "logreg", "bayes", "exits", "segfaults", "raises", "zeros"}


def test_a_timeout_is_cached_until_the_limit_is_raised(models_root, store):
    """Measuring a hanging model again would make every command wait the whole limit again,
    so a timeout is kept; it names the limit, and a higher limit measures the model again."""
    folder = make_scope(models_root, "s", models=(),
                        scope_extra={"n_bootstrap": 50, "latency_rows": 10,
                                     "model_timeout_s": 1})
    write_misbehaving(folder, "slow", SleepsInPredict(4))
    first = evaluate_scope(load_scope(models_root, "s"), store)
    assert not first.models[0].ok
    assert "did not finish within 1 s (scope.json field 'model_timeout_s')" in \
        first.models[0].reason
    again = evaluate_scope(load_scope(models_root, "s"), store)
    assert again.evaluated == 0 and again.models[0].reason == first.models[0].reason
    config = json.loads((folder / "scope.json").read_text())
    (folder / "scope.json").write_text(json.dumps({**config, "model_timeout_s": 120}))
    raised = evaluate_scope(load_scope(models_root, "s"), store)
    assert raised.evaluated == 1 and raised.models[0].ok


# --- the command line -------------------------------------------------------------------------

def run_cli(root: Path, *args: str, one_cpu: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    env.pop("PROMOTION_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "promotion", *args, "--models-dir", str(root)],
        capture_output=True, text=True, env=env, timeout=600,
        preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if one_cpu else None)


@pytest.fixture(scope="module")
def every_case_on_the_command_line(tmp_path_factory) -> tuple[Path, dict]:
    """One scope holding every misbehaving model, ranked by a real ``leaderboard --json``."""
    root = tmp_path_factory.mktemp("cli") / "models"
    root.mkdir()
    scope_with(root, "s", {case: model for case, (model, _) in FAILING.items()},
               model_timeout_s=TIMEOUT_S)
    result = run_cli(root, "leaderboard", "--scope", "s", "--json")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    return root, json.loads(result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("case", FAILING)
def test_the_command_line_names_each_misbehaving_model_in_one_row(
        every_case_on_the_command_line, case):
    _, document = every_case_on_the_command_line
    rows = {m["model_name"]: m for m in document["models"]}
    assert rows[case]["status"] == "failed"
    assert FAILING[case][1] in rows[case]["reason"]
    assert "\n" not in rows[case]["reason"]
    assert rows["logreg"]["status"] == rows["bayes"]["status"] == "ok"


@pytest.mark.slow
def test_the_text_leaderboard_is_one_line_per_failed_model(every_case_on_the_command_line):
    root, _ = every_case_on_the_command_line
    result = run_cli(root, "leaderboard", "--scope", "s")  # now from the cache
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    failed = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == len(FAILING)
    for case, (_, says) in FAILING.items():
        assert any(case in line and says in line for line in failed), case


@pytest.mark.slow
def test_on_one_cpu_a_model_that_exits_does_not_take_the_command_with_it(models_root):
    scope_with(models_root, "s", {"exits": ExitsInPredict()})
    result = run_cli(models_root, "leaderboard", "--scope", "s", "--json", one_cpu=True)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    rows = {m["model_name"]: m for m in json.loads(result.stdout)["models"]}
    assert rows["exits"]["status"] == "failed" and "exit code 1" in rows["exits"]["reason"]
    assert rows["logreg"]["status"] == rows["bayes"]["status"] == "ok"


# --- no orphans -------------------------------------------------------------------------------

def _processes() -> dict[int, tuple[int, int]]:
    """Every live process: its parent and its start time, read from /proc (zombies count as
    gone; the start time tells a process from a later one that got its id)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while we looked
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return found


def _descendants(pid: int) -> set[tuple[int, int]]:
    """The processes below ``pid``, each as (id, start time)."""
    processes = _processes()
    found: set[tuple[int, int]] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, (parent, _) in processes.items() if parent in frontier}
        found |= {(child, processes[child][1]) for child in frontier}
    return found


def _alive(processes: set[tuple[int, int]]) -> set[tuple[int, int]]:
    now = _processes()
    return {(pid, start) for pid, start in processes if now.get(pid, (0, None))[1] == start}


def _wait_for(condition, bound_s: float, what) -> None:
    """Poll ``condition`` for up to ``bound_s`` (a generous bound, not a timing claim)."""
    deadline = time.monotonic() + bound_s
    while not condition():
        assert time.monotonic() < deadline, what()
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigterm_to_the_command_leaves_no_worker_process(models_root, tmp_path):
    marker = tmp_path / "sleeping"
    scope_with(models_root, "s", {"sleeps": SleepsInPredict(3600, marker)})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    env.pop("PROMOTION_DB_URL", None)
    command = subprocess.Popen(
        [sys.executable, "-m", "promotion", "leaderboard", "--scope", "s", "--models-dir",
         str(models_root)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[tuple[int, int]] = set()
    try:
        _wait_for(marker.exists, 300, lambda: "the sleeping model never started")
        workers = _descendants(command.pid)
        assert int(marker.read_text()) in {pid for pid, _ in workers}
        command.send_signal(signal.SIGTERM)
        command.wait(120)
        _wait_for(lambda: not _alive(workers), 120,
                  lambda: f"worker processes outlived the command: {_alive(workers)}")
    finally:
        for pid, _ in _alive(workers):  # only ours: same id and start time
            os.kill(pid, signal.SIGKILL)
        if command.poll() is None:
            command.kill()
        command.wait(60)


def test_the_well_behaved_centroid_model_is_learnable(models_root, store):
    """The misbehaving models' base is a real classifier, so their cases test real models."""
    scope_with(models_root, "s", {"centroid": Centroid()})
    evaluation = evaluate_scope(load_scope(models_root, "s"), store)
    centroid = next(m for m in evaluation.models if m.model_name == "centroid")
    assert centroid.ok and centroid.metrics["accuracy"] > 0.5  # six classes: chance is 1/6
