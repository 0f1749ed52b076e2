"""MLflow: import registered versions, mirror decisions as alias and tags, survive an outage.

Versions logged in skops format are imported as ``model.skops`` under the scope's trusted
types; pickled ones (cloudpickle here) only with ``trust_pickle``.

Everything runs against a real local MLflow tracking store (a SQLite file, no server). MLflow
migrates a new store's schema on first use (seconds), so the store and the logged models are
built once for the module; each test registers its own model name over those artifacts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import joblib
import pytest
import skops.io as sio
from factories import make_data, make_scope
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.tree import DecisionTreeClassifier

from promotion import InvalidInputError
from promotion.integrations.mlflow import import_mlflow_versions, sync_mlflow
from promotion.lifecycle import demote, rollback
from promotion.scopes import load_scope
from promotion.store import open_store, public_url
from promotion.usecases import build_leaderboard, change_stage, scope_state

ROOT = Path(__file__).resolve().parents[2]
LOGGED_AUC = 0.999  # what the training runs claim; never what the leaderboard shows
#: What a HistGradientBoostingClassifier holds beyond the trusted defaults (see _loading).
TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


@dataclass(frozen=True)
class Registry:
    """A real MLflow store holding three logged classifiers (and one regressor, one
    classifier with a type no scope trusts by default)."""

    uri: str
    client: object
    sources: list[tuple[str, str]]  # (source, run_id) of each classifier, in version order
    regressor: tuple[str, str]
    untrusted: tuple[str, str]

    def register(self, name: str, *, tags: dict[int, dict[str, str]] | None = None) -> str:
        """A registered model ``name`` whose versions 1..3 are the logged classifiers."""
        self.client.create_registered_model(name)
        for number, (source, run_id) in enumerate(self.sources, start=1):
            self.client.create_model_version(name, source, run_id=run_id,
                                             tags=(tags or {}).get(number))
        return name

    def version(self, name: str, number: int):
        return self.client.get_model_version(name, str(number))

    def champion(self, name: str) -> int | None:
        return self.client.get_registered_model(name).aliases.get("champion")

    def register_one(self, name: str, logged: tuple[str, str]) -> str:
        """A registered model ``name`` whose only version is ``logged``."""
        self.client.create_registered_model(name)
        self.client.create_model_version(name, logged[0], run_id=logged[1])
        return name


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[Registry]:
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri, uri)
        experiment = client.create_experiment("zoo",
                                              artifact_location=(folder / "art").as_uri())
        # Trained on the rows make_scope trains on; the scope's holdout is the other half.
        X, y = make_data("binary", 600)
        classifiers = [
            (LogisticRegression(C=0.01), {}),  # MLflow's default skops format
            (DecisionTreeClassifier(max_depth=4, random_state=0),
             {"skops_trusted_types": ["sklearn.tree._tree.Tree"]}),
            (RandomForestClassifier(n_estimators=15, random_state=0),
             {"serialization_format": "cloudpickle"}),
        ]
        sources = []
        for estimator, options in classifiers:
            sources.append(_log(mlflow, experiment, estimator.fit(X.iloc[:300], y[:300]),
                                options))
        regressor = _log(mlflow, experiment, LinearRegression().fit(X.iloc[:300], y[:300]), {})
        # Its author lists the type in MLmodel; that list must not be what decides here.
        untrusted = _log(mlflow, experiment, HistGradientBoostingClassifier(
            max_iter=10, random_state=0).fit(X.iloc[:300], y[:300]),
            {"skops_trusted_types": [TREE_PREDICTOR]})
        try:
            yield Registry(uri, client, sources, regressor, untrusted)
        finally:
            mlflow.set_tracking_uri(previous)


def _log(mlflow, experiment: str, estimator, options: dict) -> tuple[str, str]:
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_metric("roc_auc", LOGGED_AUC)
        mlflow.log_param("estimator", type(estimator).__name__)
        # Fixed requirements: MLflow would otherwise infer them in a subprocess.
        info = mlflow.sklearn.log_model(estimator, name="model",
                                        pip_requirements=["scikit-learn"], **options)
    return info.model_uri, run.info.run_id


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def credit_scope(root: Path, mirror: dict | None = None) -> Path:
    """A binary scope with one model of its own (not from MLflow)."""
    return make_scope(root, "credit", task="binary", models=("logreg",),
                      scope_extra={"mlflow": mirror} if mirror else None)


def set_mirror(scope_dir: Path, mirror: dict) -> None:
    path = scope_dir / "scope.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "mlflow": mirror}))


def move(root: Path, store, model: str, stage: str, reason: str):
    return change_stage(root, "credit", store, model, stage, actor="ana",
                                  reason=reason, override=True)


def test_imported_versions_rank_on_metrics_measured_here(models_root, store, registry,
                                                         tmp_path):
    import mlflow.artifacts

    name = registry.register("credit_rank", tags={2: {"group": "variant"}})
    scope_dir = credit_scope(models_root)
    done = import_mlflow_versions(models_root, "credit", registered_model=name,
                                            tracking_uri=registry.uri, versions=[1, 2])
    assert [(d.model_name, d.action) for d in done] == [
        ("credit_rank_v1", "imported"), ("credit_rank_v2", "imported")]
    for number in (1, 2):  # skops, imported with no flag: the verified bytes, as model.skops
        folder = scope_dir / f"{name}_v{number}"
        assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.skops"]
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["model_file"] == "model.skops"
        assert meta["training"] == {"imported_from": "mlflow", "mlflow_format": "skops"}
        logged = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=registry.version(name, number).source, dst_path=tmp_path / str(number),
            tracking_uri=registry.uri))
        assert (folder / "model.skops").read_bytes() == (logged / "model.skops").read_bytes()

    done = import_mlflow_versions(models_root, "credit", registered_model=name,
                                            tracking_uri=registry.uri)
    assert [(d.model_name, d.action, d.path) for d in done] == [
        ("credit_rank_v1", "unchanged", f"models/credit/{name}_v1"),
        ("credit_rank_v2", "unchanged", f"models/credit/{name}_v2"),
        ("credit_rank_v3", "refused", None)]
    message = done[2].reason
    assert message.startswith(f"MLflow model '{name}' version 3: logged in cloudpickle format")
    assert 'serialization_format="skops"' in message and "--trust-pickle" in message
    assert not (scope_dir / f"{name}_v3").exists()

    done = import_mlflow_versions(models_root, "credit", registered_model=name,
                                            tracking_uri=registry.uri, trust_pickle=True)
    assert [(d.model_name, d.action) for d in done] == [
        ("credit_rank_v1", "unchanged"), ("credit_rank_v2", "unchanged"),
        ("credit_rank_v3", "imported")]
    meta = json.loads((scope_dir / "credit_rank_v3" / "meta.json").read_text())
    assert (meta["model_file"], meta["training"]) == ("model.joblib", {
        "imported_from": "mlflow", "mlflow_format": "cloudpickle", "trusted_pickle": True})
    source, run_id = registry.sources[2]
    assert meta["mlflow"] | {"created_ms": None} == {
        "registered_model": name, "version": 3, "run_id": run_id, "source": source,
        "tracking_uri": registry.uri, "created_ms": None}
    assert (meta["model_type"], meta["group"]) == ("random_forest_classifier", "tree")
    assert meta["params"] == {"estimator": "RandomForestClassifier"}
    groups = {e.name: e.group for e in load_scope(models_root, "credit").models}
    # From the estimator's module, except where a version tag says otherwise.
    assert groups == {"logreg": "linear", "credit_rank_v1": "linear",
                      "credit_rank_v2": "variant", "credit_rank_v3": "tree"}

    board, _ = build_leaderboard(models_root, "credit", store, n_jobs=1)
    assert sorted(r.rank for r in board.rows) == [1, 2, 3, 4]
    holdout = load_scope(models_root, "credit").load_holdout()
    for number in (1, 2, 3):
        folder = scope_dir / f"{name}_v{number}"
        if number == 3:
            model = joblib.load(folder / "model.joblib")
        else:
            payload = (folder / "model.skops").read_bytes()
            model = sio.loads(payload, trusted=sio.get_untrusted_types(data=payload))
        measured = roc_auc_score(holdout.y == holdout.classes[1],
                                 model.predict_proba(holdout.features)[:, 1])
        row = board.row(folder.name)
        assert row.ok and row.metrics["roc_auc"] == pytest.approx(measured)
        assert row.metrics["roc_auc"] != pytest.approx(LOGGED_AUC)

    before = {p: p.stat().st_mtime_ns for p in scope_dir.glob(f"{name}_v*/*")}
    again = import_mlflow_versions(models_root, "credit", registered_model=name,
                                             tracking_uri=registry.uri, versions=[1, 3])
    assert [(d.version, d.action) for d in again] == [(1, "unchanged"), (3, "unchanged")]
    assert "nothing written" in again[0].describe()
    assert {p: p.stat().st_mtime_ns for p in scope_dir.glob(f"{name}_v*/*")} == before


def test_a_version_registered_anew_replaces_its_folder(models_root, registry):
    scope_dir = credit_scope(models_root)
    registry.register("credit_again")
    first = import_mlflow_versions(models_root, "credit", versions=[1],
                                             registered_model="credit_again",
                                             tracking_uri=registry.uri)
    assert first[0].action == "imported"
    # The registered model is deleted and made again: version 1 is now another model.
    registry.client.delete_registered_model("credit_again")
    registry.client.create_registered_model("credit_again")
    source, run_id = registry.sources[2]
    registry.client.create_model_version("credit_again", source, run_id=run_id)
    again = import_mlflow_versions(models_root, "credit", versions=[1],
                                             registered_model="credit_again",
                                             tracking_uri=registry.uri, trust_pickle=True)
    assert again[0].action == "replaced"
    assert not (scope_dir / "credit_again_v1" / "model.skops").exists()
    meta = json.loads((scope_dir / "credit_again_v1" / "meta.json").read_text())
    assert (meta["mlflow"]["source"], meta["group"]) == (source, "tree")
    assert type(joblib.load(scope_dir / "credit_again_v1" / "model.joblib")) is \
        RandomForestClassifier
    assert not [p for p in scope_dir.iterdir() if p.name.startswith(".")]


def test_bad_imports_are_one_message_and_leave_no_folder(models_root, registry):
    scope_dir = credit_scope(models_root)
    registry.register("credit_bad")
    regressor_source, regressor_run = registry.regressor
    registry.client.create_registered_model("credit_regressor")
    registry.client.create_model_version("credit_regressor", regressor_source,
                                         run_id=regressor_run)

    def attempt(**kwargs):
        args = {"registered_model": "credit_bad", "tracking_uri": registry.uri} | kwargs
        return import_mlflow_versions(models_root, "credit", **args)

    def refusal(**kwargs) -> str:  # a version that cannot be imported is reported, not raised
        [only] = attempt(**kwargs)
        assert (only.action, only.path) == ("refused", None)
        return only.reason

    with pytest.raises(InvalidInputError, match=r"has no version 7 .*versions are "
                                                          r"1, 2, 3"):
        attempt(versions=[7])
    with pytest.raises(InvalidInputError, match="has no registered model 'nope'"):
        attempt(registered_model="nope")
    assert "holds a LinearRegression, which has no predict_proba" in refusal(
        registered_model="credit_regressor")
    with pytest.raises(InvalidInputError, match="no MLflow store at"):
        attempt(tracking_uri=f"sqlite:///{models_root / 'missing.db'}")
    with pytest.raises(InvalidInputError, match="pass --model"):
        import_mlflow_versions(models_root, "credit", tracking_uri=registry.uri)
    (scope_dir / "credit_bad_v2").mkdir()
    (scope_dir / "credit_bad_v2" / "meta.json").write_text('{"model_type": "x", '
                                                           '"group": "tree"}')
    assert "is not an import of MLflow model 'credit_bad' version 2" in refusal(versions=[2])
    assert sorted(p.name for p in scope_dir.iterdir()) == [
        "credit_bad_v2", "holdout.csv", "logreg", "scope.json"]
    assert not (models_root / "missing.db").exists()


def test_a_regressor_imports_into_a_regression_scope_and_ranks(models_root, store, registry):
    """The version the classification scope refuses is what a regression scope ranks: the
    same features, the label as a number, its RMSE measured here."""
    from sklearn.metrics import mean_squared_error

    X, y = make_data("binary", 600)
    folder = models_root / "growth"
    folder.mkdir()
    X.iloc[300:].assign(label=y[300:].astype(float)).to_csv(folder / "holdout.csv",
                                                            index=False)
    (folder / "scope.json").write_text(json.dumps(
        {"task": "regression", "target": "label", "holdout": "holdout.csv",
         "n_bootstrap": 50, "latency_rows": 10}))
    source, run = registry.regressor
    registry.client.create_registered_model("growth_linear")
    registry.client.create_model_version("growth_linear", source, run_id=run)
    [done] = import_mlflow_versions(models_root, "growth", registered_model="growth_linear",
                                    tracking_uri=registry.uri)
    assert done.action == "imported", done.reason
    board, _ = build_leaderboard(models_root, "growth", store, n_jobs=1)
    row = board.row("growth_linear_v1")
    expected = LinearRegression().fit(X.iloc[:300], y[:300]).predict(X.iloc[300:])
    assert row.ok
    assert row.metrics["rmse"] == pytest.approx(
        mean_squared_error(y[300:], expected) ** 0.5, rel=1e-9)


def test_a_skops_version_with_an_untrusted_type_waits_for_the_scope_to_trust_it(
        models_root, store, registry):
    scope_dir = credit_scope(models_root)
    name = registry.register_one("credit_hgb", registry.untrusted)
    for trust_pickle in (False, True):  # trusting pickles does not trust skops types
        [refused] = import_mlflow_versions(
            models_root, "credit", registered_model=name, tracking_uri=registry.uri,
            trust_pickle=trust_pickle)
        assert refused.action == "refused" and refused.reason.startswith(
            f"MLflow model '{name}' version 1 (model.skops): holds types that are not trusted: "
            f"{TREE_PREDICTOR}; refused. Hint: if you trust them, list them in scope.json "
            "field 'trusted_types'")
        assert sorted(p.name for p in scope_dir.iterdir()) == [
            "holdout.csv", "logreg", "scope.json"]

    settings = json.loads((scope_dir / "scope.json").read_text())
    (scope_dir / "scope.json").write_text(json.dumps(settings | {
        "trusted_types": [TREE_PREDICTOR]}))
    done = import_mlflow_versions(models_root, "credit", registered_model=name,
                                            tracking_uri=registry.uri)
    assert [(d.model_name, d.action) for d in done] == [("credit_hgb_v1", "imported")]
    folder = scope_dir / "credit_hgb_v1"
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.skops"]
    assert json.loads((folder / "meta.json").read_text())["group"] == "tree"
    board, _ = build_leaderboard(models_root, "credit", store, n_jobs=1)
    row = board.row("credit_hgb_v1")
    assert row.ok and row.rank is not None and 0.5 < row.metrics["roc_auc"] < 1


def test_transitions_move_the_champion_alias_and_stage_tags(models_root, store, registry):
    name = registry.register("credit_mirror")
    credit_scope(models_root, {"tracking_uri": registry.uri, "registered_model": name})
    import_mlflow_versions(models_root, "credit", trust_pickle=True)  # scope.json

    move(models_root, store, f"{name}_v3", "production", "best forest")
    move(models_root, store, "logreg", "production", "baseline")
    move(models_root, store, f"{name}_v3", "champion", "clear leader")
    assert registry.champion(name) == 3
    tags = registry.version(name, 3).tags
    assert (tags["stage"], tags["promotion.reason"], tags["promotion.actor"],
            tags["promotion.scope"]) == ("champion", "clear leader", "ana", "credit")
    state = store.sync_state("credit")
    assert not state.pending
    assert "logreg is not from MLflow model 'credit_mirror', skipped" in state.detail

    move(models_root, store, f"{name}_v1", "production", "cheaper")
    move(models_root, store, f"{name}_v1", "champion", "cheaper to serve")
    assert registry.champion(name) == 1
    assert registry.version(name, 1).tags["stage"] == "champion"
    archived = registry.version(name, 3).tags
    assert archived["stage"] == "archived"
    assert archived["promotion.reason"].startswith(f"replaced as champion by '{name}_v1'")

    rollback(store, load_scope(models_root, "credit"), actor="bo",
                       reason="v1 misbehaves live")
    assert registry.champion(name) == 3
    assert registry.version(name, 1).tags["stage"] == "production"  # where it was before
    assert registry.version(name, 3).tags["promotion.reason"] == "rollback: v1 misbehaves live"
    assert registry.version(name, 3).tags["promotion.actor"] == "bo"
    assert "stage" not in registry.version(name, 2).tags  # never decided on here

    scope = load_scope(models_root, "credit")
    state = demote(store, scope, *_state(models_root, store), f"{name}_v3",
                             actor="ana", reason="retire")
    assert state is not None and registry.champion(name) is None
    assert sync_mlflow(store, scope).changes == ()  # converged: nothing to do


def test_a_script_using_only_the_lifecycle_mirrors_its_moves(models_root, store, registry):
    """The mirror is the lifecycle's own subscriber: a fresh process that imports nothing but
    promotion.lifecycle (and what deciding needs) still mirrors its moves."""
    name = registry.register("credit_script")
    credit_scope(models_root, {"tracking_uri": registry.uri, "registered_model": name})
    import_mlflow_versions(models_root, "credit", trust_pickle=True)
    script = f"""
import sys
from promotion.evaluation import evaluate_scope
from promotion.lifecycle import make_champion, promote
from promotion.scopes import load_scope
from promotion.scoring import rank_models
from promotion.store import open_store
root = {str(models_root)!r}
scope, store = load_scope(root, "credit"), open_store(root)
evaluation = evaluate_scope(scope, store, n_jobs=1)
board = rank_models(evaluation)
promote(store, scope, evaluation, board, "{name}_v3", actor="script", reason="r",
        override=True)
make_champion(store, scope, evaluation, board, "{name}_v3", actor="script", reason="lead",
              override=True)
assert "promotion.usecases" not in sys.modules, "the use cases were imported"
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("PROMOTION_DB_URL", None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert registry.champion(name) == 3
    assert registry.version(name, 3).tags["promotion.actor"] == "script"


def _state(root: Path, store):
    state = scope_state(root, "credit", store, n_jobs=1)
    return state.evaluation, state.board


def test_an_unreachable_mlflow_keeps_the_decision_and_sync_converges(models_root, store,
                                                                     registry):
    name = registry.register("credit_outage")
    down = {"tracking_uri": f"http://127.0.0.1:{closed_port()}", "registered_model": name}
    scope_dir = credit_scope(models_root, down)
    import_mlflow_versions(models_root, "credit", tracking_uri=registry.uri,
                                     versions=[1, 2])

    moved = move(models_root, store, f"{name}_v2", "production", "during the outage")
    assert moved is not None and moved.to_stage == "production"
    assert store.stages("credit")[f"{name}_v2"].stage == "production"
    assert [t.model_name for t in store.history("credit")] == [f"{name}_v2"]
    pending = store.sync_state("credit")
    assert pending.pending and "cannot connect" in pending.detail
    move(models_root, store, f"{name}_v2", "champion", "still down")
    still = store.sync_state("credit")
    assert still.pending and still.pending_since == pending.pending_since
    assert registry.champion(name) is None and "stage" not in registry.version(name, 2).tags

    set_mirror(scope_dir, {"tracking_uri": registry.uri, "registered_model": name})
    report = sync_mlflow(store, load_scope(models_root, "credit"))
    assert not report.pending and report.changes
    assert registry.champion(name) == 2
    assert registry.version(name, 2).tags["promotion.reason"] == "still down"
    state = store.sync_state("credit")
    assert not state.pending and state.pending_since is None
    again = sync_mlflow(store, load_scope(models_root, "credit"))
    assert again.changes == () and "already up to date" in again.detail


def run_cli(*args: str, models_dir: Path, prelude: str = "", cwd: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
    """``python -m promotion`` in a fresh process; ``prelude`` runs first (e.g. hides MLflow).
    No MLflow URI comes from the environment: only what the command is given."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMOTION_USER": "ana",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    for name in ("PROMOTION_DB_URL", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    code = f"{prelude}\nimport sys\nfrom promotion.cli import main\nsys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args, "--models-dir",
                           str(models_dir)], capture_output=True, text=True, env=env,
                          timeout=300, cwd=cwd)


def test_an_import_uses_the_given_uri_and_writes_nothing_elsewhere(models_root, registry,
                                                                  tmp_path):
    """MLflow resolves models:/ URIs against its default store, an mlflow.db in the working
    folder, whatever URI it is given: the import must never reach it."""
    name = registry.register("credit_uri")
    scope_dir = credit_scope(models_root)
    elsewhere = tmp_path / "working_folder"
    elsewhere.mkdir()
    done = run_cli("mlflow-import", "--scope", "credit", "--tracking-uri", registry.uri,
                   "--model", name, "--versions", "1,3", "--trust-pickle",
                   models_dir=models_root, cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{name}_v{n}: imported MLflow model '{name}' version {n} as models/credit/{name}_v{n}"
        for n in (1, 3)]
    assert list(elsewhere.iterdir()) == []  # no stray mlflow.db, nothing else
    assert (scope_dir / f"{name}_v1" / "model.skops").is_file()
    assert (scope_dir / f"{name}_v3" / "model.joblib").is_file()


def cli(capsys, *args: str, models_dir: Path) -> tuple[int, str, str]:
    """The command line's ``main`` in this process: exit status, stdout, stderr."""
    from promotion.cli import main

    status = main([*args, "--models-dir", str(models_dir)])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_cli_imports_warns_and_syncs(models_root, registry, capsys):
    name = registry.register("credit_cli")
    scope_dir = credit_scope(models_root, {"tracking_uri": f"http://127.0.0.1:{closed_port()}",
                                           "registered_model": name})
    status, out, err = cli(capsys, "mlflow-import", "--scope", "credit", "--tracking-uri",
                           registry.uri, "--versions", "1,3", models_dir=models_root)
    assert status == 2
    assert out.splitlines() == [
        f"{name}_v1: imported MLflow model '{name}' version 1 as models/credit/{name}_v1"]
    assert err.splitlines() == [
        f"error: MLflow model '{name}' version 3: logged in cloudpickle format; loading it "
        "would unpickle it, which runs any code it holds, so it is not imported. Hint: log it "
        'with mlflow.sklearn.log_model(..., serialization_format="skops"), or pass '
        "--trust-pickle if you trust its source",
        "evaluate them: python -m promotion leaderboard --scope credit"]
    assert sorted(p.name for p in scope_dir.iterdir()) == [
        f"{name}_v1", "holdout.csv", "logreg", "scope.json"]  # v1 is safe, v3 is not
    status, out, err = cli(capsys, "mlflow-import", "--scope", "credit", "--tracking-uri",
                           registry.uri, "--versions", "1,3", "--trust-pickle",
                           models_dir=models_root)
    assert status == 0, err
    assert out.splitlines() == [
        f"{name}_v1: unchanged (MLflow model '{name}' version 1 already imported), nothing "
        "written",
        f"{name}_v3: imported MLflow model '{name}' version 3 as models/credit/{name}_v3"]
    status, out, err = cli(capsys, "mlflow-import", "--scope", "credit", "--tracking-uri",
                           registry.uri, "--versions", "3", models_dir=models_root)
    assert out.strip() == (f"{name}_v3: unchanged (MLflow model '{name}' version 3 already "
                           "imported), nothing written")
    assert "evaluate them" not in err

    status, out, err = cli(capsys, "promote", "--scope", "credit", "--model", f"{name}_v3",
                           "--reason", "best", "--user", "ana", models_dir=models_root)
    assert status == 0, err
    assert f"{name}_v3: development -> production" in out
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "MLflow mirror pending" in warning[0]
    assert "mlflow-sync --scope credit" in warning[0]
    status, out, err = cli(capsys, "mlflow-sync", "--scope", "credit", models_dir=models_root)
    assert status == 1 and "still pending" in err

    set_mirror(scope_dir, {"tracking_uri": registry.uri, "registered_model": name})
    status, out, err = cli(capsys, "mlflow-sync", "--scope", "credit", models_dir=models_root)
    assert status == 0, err
    assert "version 3 stage=production" in out
    assert registry.version(name, 3).tags["stage"] == "production"
    with pytest.raises(SystemExit) as stopped:  # argparse's own exit, one line
        cli(capsys, "mlflow-import", "--scope", "credit", "--versions", "3,x",
            models_dir=models_root)
    assert stopped.value.code == 2
    assert "'3,x' is not a list of version numbers" in capsys.readouterr().err


def test_without_mlflow_everything_else_works(models_root):
    scope_dir = credit_scope(models_root, {"tracking_uri": "sqlite:///nowhere.db",
                                           "registered_model": "credit"})
    hide = "import sys\nsys.modules['mlflow'] = None"
    done = run_cli("mlflow-import", "--scope", "credit", "--all", models_dir=models_root,
                   prelude=hide)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: MLflow is not installed. Hint: pip install -r requirements-mlflow.txt"]
    done = run_cli("mlflow-sync", "--scope", "credit", models_dir=models_root, prelude=hide)
    assert done.returncode == 2 and "requirements-mlflow.txt" in done.stderr
    # A decision on a mirrored scope is made all the same; the mirror waits.
    done = run_cli("promote", "--scope", "credit", "--model", "logreg", "--reason", "fine",
                   models_dir=models_root, prelude=hide)
    assert done.returncode == 0, done.stderr
    assert "logreg: development -> production" in done.stdout
    assert "requirements-mlflow.txt" in done.stderr and "Traceback" not in done.stderr
    store = open_store(models_root)
    try:
        assert store.stages("credit")["logreg"].stage == "production"
        assert store.sync_state("credit").pending
    finally:
        store.close()
    # Nothing but promotion/integrations/mlflow imports MLflow, and only when asked to.
    (scope_dir / "scope.json").write_text(json.dumps(
        {k: v for k, v in json.loads((scope_dir / "scope.json").read_text()).items()
         if k != "mlflow"}))
    check = ("import promotion, promotion.cli, promotion.lifecycle, promotion.usecases\n"
             "import promotion.integrations.mlflow._client, promotion.integrations.mlflow"
             "._importing, promotion.integrations.mlflow._mirroring\n"
             "assert 'mlflow' not in sys.modules, 'MLflow imported eagerly'")
    done = run_cli("demote", "--scope", "credit", "--model", "logreg", "--reason", "done",
                   models_dir=models_root, prelude=f"import sys\n{check}")
    assert done.returncode == 0, done.stderr


def test_the_lifecycle_page_shows_a_pending_sync_and_retries_it(models_root, registry,
                                                                 monkeypatch):
    from streamlit.testing.v1 import AppTest

    name = registry.register("credit_page")
    scope_dir = credit_scope(models_root, {"tracking_uri": f"http://127.0.0.1:{closed_port()}",
                                           "registered_model": name})
    import_mlflow_versions(models_root, "credit", tracking_uri=registry.uri,
                                     versions=[1])
    store = open_store(models_root)
    try:
        move(models_root, store, f"{name}_v1", "production", "good enough")
    finally:
        store.close()
    monkeypatch.setenv("PROMOTION_MODELS_DIR", str(models_root))
    monkeypatch.setenv("PROMOTION_USER", "ana")
    monkeypatch.delenv("PROMOTION_DB_URL", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.query_params["scope"] = "credit"
    at.run()
    at.switch_page("views/lifecycle.py")
    at.run()
    assert not at.exception, at.exception
    assert any("is behind the decisions made here" in w.value for w in at.warning)

    set_mirror(scope_dir, {"tracking_uri": registry.uri, "registered_model": name})
    at.run()
    [b for b in at.button if b.key == "mlflow_sync:credit"][0].click()
    at.run()
    assert not at.exception, at.exception
    assert not [w for w in at.warning if "is behind" in w.value]
    assert any("version 1 stage=production" in s.value.replace("\\", "") for s in at.success)
    assert registry.version(name, 1).tags["stage"] == "production"


@pytest.mark.parametrize(("uri", "shown"), [
    ("https://ana:s3cret@mlflow.example:5000/", "https://mlflow.example:5000/"),
    ("http://token@127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("sqlite:////srv/mlflow.db", "sqlite:////srv/mlflow.db"),
    ("sqlite:////srv/team@work/mlflow.db", "sqlite:////srv/team@work/mlflow.db"),
    ("databricks", "databricks"),
])
def test_tracking_uris_are_recorded_without_credentials(uri, shown):
    assert public_url(uri) == shown


def test_a_refused_version_does_not_stop_the_ones_after_it(models_root, registry):
    name = "pickle_first"
    registry.client.create_registered_model(name)
    for source, run_id in (registry.sources[2], registry.sources[0]):  # cloudpickle, skops
        registry.client.create_model_version(name, source, run_id=run_id)
    scope_dir = credit_scope(models_root, None)
    done = import_mlflow_versions(models_root, "credit", registered_model=name,
                                            tracking_uri=registry.uri)
    assert [(d.version, d.action) for d in done] == [(1, "refused"), (2, "imported")]
    assert "--trust-pickle" in done[0].reason
    assert not (scope_dir / f"{name}_v1").exists()
    assert (scope_dir / f"{name}_v2" / "model.skops").is_file()


def test_an_import_sweeps_the_folders_killed_imports_left(models_root, registry):
    """A killed import leaves a hidden folder (being written, or the replaced one). The next
    import into the scope removes the stale ones whose model folder exists; one whose model
    folder is missing may hold the only copy of that model, and is kept."""
    scope_dir = credit_scope(models_root, None)
    name = registry.register_one("swept", registry.sources[0])
    (scope_dir / "kept_model").mkdir()
    stale = [scope_dir / ".kept_model.import-0a1b2c3d", scope_dir / ".kept_model.replaced-9f8e7d6c"]
    only_copy = scope_dir / ".lost_model.replaced-00ff00ff"
    fresh = scope_dir / ".kept_model.import-12345678"
    hour_and_a_bit = time.time() - 3700
    for folder in [*stale, only_copy, fresh]:
        folder.mkdir()
        (folder / "meta.json").write_text("{}")
        if folder is not fresh:
            os.utime(folder, (hour_and_a_bit, hour_and_a_bit))
    done = import_mlflow_versions(models_root, "credit", registered_model=name,
                                            tracking_uri=registry.uri)
    assert [d.action for d in done] == ["imported"]
    assert not any(folder.exists() for folder in stale)
    assert only_copy.is_dir() and fresh.is_dir()
