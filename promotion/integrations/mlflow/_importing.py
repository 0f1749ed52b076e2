"""Importing registered MLflow model versions as a scope's model folders.

A version logged in skops format is loaded like any ``model.skops`` (the scope's trusted
types); any other artifact is a pickle, imported only when its source is trusted.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from ..._jsonio import dumps, sweep_stale
from ...engine._loading import (
    JOBLIB_FILE,
    SKOPS_FILE,
    load_model_bytes,
    pick_model_file,
    read_model_bytes,
)
from ...errors import InvalidInputError
from ...scopes._config import MlflowOrigin, ModelMeta, read_json_model
from ...scopes._discovery import META_FILE, Scope, load_scope
from ...store._sql import public_url
from ...vocabulary import GROUPS, is_regression
from ._client import first_line, is_not_found, missing_dependency, mlflow_client
from ._mirroring import STAGE_TAG

#: Version (or run) tags read on import to describe a model.
GROUP_TAG = "group"
MODEL_TYPE_TAG = "model_type"
#: Where an estimator's module says which group it belongs to, when no tag says so.
GROUP_BY_MODULE: tuple[tuple[str, str], ...] = (
    ("sklearn.ensemble", "tree"), ("sklearn.tree", "tree"), ("xgboost", "tree"),
    ("lightgbm", "tree"), ("catboost", "tree"), ("sklearn.neural_network", "neural"),
    ("sklearn.linear_model", "linear"), ("sklearn.svm", "linear"),
    ("sklearn.naive_bayes", "linear"), ("sklearn.discriminant_analysis", "linear"),
    ("sklearn.dummy", "linear"),
)
#: The sklearn flavor's safe format (MLflow's default); every other format is a pickle.
SKOPS_FORMAT = "skops"


@dataclass(frozen=True)
class ImportedVersion:
    """What importing one registered version did."""

    registered_model: str
    version: int
    model_name: str
    action: Literal["imported", "replaced", "unchanged", "refused"]
    path: str | None  # None when refused: nothing was written
    reason: str | None = None  # why it was refused

    def describe(self) -> str:
        source = f"MLflow model '{self.registered_model}' version {self.version}"
        if self.action == "refused":
            return f"{self.model_name}: not imported: {self.reason}"
        if self.action == "unchanged":
            return f"{self.model_name}: unchanged ({source} already imported), nothing written"
        return f"{self.model_name}: {self.action} {source} as {self.path}"


def import_mlflow_versions(models_dir: Path, scope_name: str, *,
                           registered_model: str | None = None,
                           tracking_uri: str | None = None,
                           versions: list[int] | None = None,
                           group: str | None = None,
                           trust_pickle: bool = False) -> list[ImportedVersion]:
    """Bring registered versions (``None``: all) into the scope as model folders; a version
    that cannot be imported is returned as ``refused`` with its reason, and the others go on.

    A version logged with the sklearn flavor in skops format is loaded like any
    ``model.skops`` (``promotion.engine._loading``, the scope's trusted types) and its
    verified bytes are copied as ``model.skops``. Any other artifact is a pickle: refused unless
    ``trust_pickle``, then loaded with MLflow's own loader and written as ``model.joblib``,
    with ``meta.json`` field ``training.trusted_pickle`` set. The model must have
    ``predict_proba`` (``predict`` in a regression scope). Each folder is written under a
    temporary name renamed into place; a version already imported unchanged is left alone.
    The registered model and tracking URI default to the scope's ``mlflow`` setting.
    """
    scope = load_scope(models_dir, scope_name)
    settings = scope.config.mlflow
    registered_model = registered_model or (settings.registered_model if settings else None)
    tracking_uri = tracking_uri or (settings.tracking_uri if settings else None)
    if not registered_model or not tracking_uri:
        missing = "--model" if not registered_model else "--tracking-uri"
        raise InvalidInputError(f"which MLflow model? Hint: pass {missing}, or set scope.json "
                                f"field 'mlflow' of scope '{scope.name}'")
    if group is not None and group not in GROUPS:
        raise InvalidInputError(f"unknown group '{group}'. Hint: groups are {', '.join(GROUPS)}")
    sweep_killed_imports(scope.folder)
    with mlflow_client(tracking_uri) as (mlflow, client):
        found = _registered_versions(client, registered_model, tracking_uri)
        chosen = _choose(found, versions, registered_model)
        return [_import_or_refuse(mlflow, client, scope, tracking_uri, found[number], group,
                                  trust_pickle) for number in chosen]


def _import_or_refuse(mlflow: ModuleType, client: Any, scope: Scope, tracking_uri: str,
                      version: Any, group: str | None, trust_pickle: bool) -> ImportedVersion:
    """One version imported, or refused with the reason: a refusal writes nothing and does
    not stop the versions after it."""
    try:
        return _import_version(mlflow, client, scope, tracking_uri, version, group,
                               trust_pickle)
    except InvalidInputError as err:
        number = int(version.version)
        return ImportedVersion(version.name, number, folder_name(version.name, number),
                               "refused", None, str(err))


def _registered_versions(client: Any, name: str, tracking_uri: str) -> dict[int, Any]:
    from mlflow.exceptions import MlflowException

    if "'" in name:
        raise InvalidInputError(f"MLflow model name {name!r}: quotes are not supported "
                                "(argument --model)")
    try:
        client.get_registered_model(name)
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException as err:
        if is_not_found(err):
            raise InvalidInputError(f"MLflow at {public_url(tracking_uri)} has no registered "
                                    f"model '{name}' (argument --model)") from None
        raise InvalidInputError(f"MLflow at {public_url(tracking_uri)}: "
                                f"{first_line(err)}") from None
    return {int(v.version): v for v in found}


def _choose(found: dict[int, Any], versions: list[int] | None, name: str) -> list[int]:
    if versions is None:
        ready = sorted(n for n, v in found.items() if str(v.status).upper() == "READY")
        if not ready:
            raise InvalidInputError(f"MLflow model '{name}' has no version ready to import")
        return ready
    available = ", ".join(map(str, sorted(found))) or "(none)"
    for number in versions:
        if number not in found:
            raise InvalidInputError(f"MLflow model '{name}' has no version {number} "
                                    f"(argument --versions). Hint: versions are {available}")
        if str(found[number].status).upper() != "READY":
            raise InvalidInputError(f"MLflow model '{name}' version {number} is "
                                    f"{found[number].status}, not READY")
    return sorted(set(versions))


def folder_name(registered_model: str, version: int) -> str:
    """The model folder an imported version gets: ``<name>_v<version>``, filesystem-safe."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", registered_model).strip("._-") or "mlflow"
    return f"{safe}_v{version}"


def _origin(version: Any, tracking_uri: str) -> dict[str, Any]:
    return {"registered_model": version.name, "version": int(version.version),
            "run_id": version.run_id or None, "source": version.source or "",
            "tracking_uri": public_url(tracking_uri),
            "created_ms": int(version.creation_timestamp)
            if version.creation_timestamp is not None else None}


@dataclass(frozen=True)
class _Artifact:
    """A version's model, loaded: verified skops bytes to copy, or an object to re-save."""

    estimator: Any
    file_name: str  # model.skops or model.joblib
    payload: bytes | None  # the skops bytes the estimator was built from
    serialization: str  # how MLflow stored it: skops, pickle, cloudpickle, or a flavor name


def _import_version(mlflow: ModuleType, client: Any, scope: Scope, tracking_uri: str,
                    version: Any, group: str | None, trust_pickle: bool) -> ImportedVersion:
    number = int(version.version)
    name = folder_name(version.name, number)
    final = scope.folder / name
    origin = _origin(version, tracking_uri)
    if final.exists() and _already_imported(final, scope, origin):
        return ImportedVersion(version.name, number, name, "unchanged", scope.shown(final))
    action: Literal["imported", "replaced"] = "replaced" if final.exists() else "imported"
    label = f"MLflow model '{version.name}' version {number}"
    artifact = _load_artifact(mlflow, client, scope, tracking_uri, version.name, number,
                              label, trust_pickle)
    run_tags, params = _run_facts(client, version.run_id)
    meta = _describe(artifact, version, run_tags, params, origin, group, label)
    _write_model_folder(scope.folder, final, artifact, meta)
    return ImportedVersion(version.name, number, name, action, scope.shown(final))


def _already_imported(folder: Path, scope: Scope, origin: dict[str, Any]) -> bool:
    """True when ``folder`` holds this very version, unchanged. False when the registered
    model was made anew since (same number, other version) or the file is gone: replace it.
    Any other folder of that name is refused, never overwritten. A ``model.joblib`` counts
    only when it was imported with ``trust_pickle`` (one written before that choice existed is
    replaced, or refused when its artifact is a pickle)."""
    try:
        meta: ModelMeta | None = read_json_model(folder / META_FILE, ModelMeta,
                                                 scope.shown(folder / META_FILE))
    except InvalidInputError:
        meta = None
    existing: MlflowOrigin | None = meta.mlflow if meta is not None else None
    if existing is None or (existing.registered_model, existing.version) != \
            (origin["registered_model"], origin["version"]):
        raise InvalidInputError(
            f"{scope.shown(folder)}: exists and is not an import of MLflow model "
            f"'{origin['registered_model']}' version {origin['version']}; not overwritten. "
            "Hint: rename that folder")
    unchanged = (existing.source, existing.run_id, existing.created_ms) == \
        (origin["source"], origin["run_id"], origin["created_ms"])
    file_name = pick_model_file(folder, meta.model_file if meta else None, scope.shown(folder))
    vetted = file_name == SKOPS_FILE or (meta is not None
                                         and meta.training.get("trusted_pickle") is True)
    return unchanged and vetted and (folder / file_name).is_file()


def _load_artifact(mlflow: ModuleType, client: Any, scope: Scope, tracking_uri: str,
                   name: str, number: int, label: str, trust_pickle: bool) -> _Artifact:
    """The version's model. Its MLmodel file (plain YAML) says how it is stored: a skops file
    is loaded with the scope's trusted types, never MLflow's, whose list comes from that same
    MLmodel file, written by the model's author; anything else is unpickling, so it needs
    ``trust_pickle``."""
    with tempfile.TemporaryDirectory(prefix="promotion-mlflow-") as tmp:
        try:
            # Where the files are, asked of our client: MLflow resolves a models:/ URI
            # against its process-wide default store (an mlflow.db in the working folder),
            # whatever registry_uri it is given.
            location = client.get_model_version_download_uri(name, str(number))
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=tmp, tracking_uri=tracking_uri)
            flavors = mlflow.models.Model.load(local).flavors
        except ImportError as err:
            raise missing_dependency(err) from None
        except Exception as err:  # any download or MLmodel failure is this version's, named
            raise InvalidInputError(f"{label}: cannot be loaded ({first_line(err)})") \
                from None
        sklearn_conf = flavors.get("sklearn")
        if isinstance(sklearn_conf, dict):
            # MLflow's own default when the key is missing is pickle.
            serialization = str(sklearn_conf.get("serialization_format", "pickle"))
        else:
            serialization = next(iter(flavors), "unknown") if flavors else "unknown"
        if serialization == SKOPS_FORMAT and isinstance(sklearn_conf, dict):
            return _load_skops_artifact(Path(local), sklearn_conf, scope, label)
        if not trust_pickle:
            what = (f"logged in {serialization} format" if isinstance(sklearn_conf, dict)
                    else f"a '{serialization}' model, not the sklearn flavor")
            raise InvalidInputError(
                f"{label}: {what}; loading it would unpickle it, which runs any code it "
                "holds, so it is not imported. Hint: log it with mlflow.sklearn.log_model(..., "
                'serialization_format="skops"), or pass --trust-pickle if you trust its source')
        try:
            if isinstance(sklearn_conf, dict):
                estimator = mlflow.sklearn.load_model(local)
            else:
                estimator = mlflow.pyfunc.load_model(local).get_raw_model()
        except ImportError as err:
            raise missing_dependency(err) from None
        except Exception as err:  # any loader failure is this version's problem, named
            raise InvalidInputError(f"{label}: cannot be loaded ({first_line(err)})") \
                from None
    method = _method(scope)
    if not callable(getattr(estimator, method, None)):
        what = "regressors" if method == "predict" else "classifiers"
        raise InvalidInputError(
            f"{label}: a {type(estimator).__name__} has no {method}. Hint: only "
            f"scikit-learn-API {what} can be ranked in scope '{scope.name}' "
            f"({scope.task})")
    return _Artifact(estimator, JOBLIB_FILE, None, serialization)


def _load_skops_artifact(local: Path, conf: dict[str, Any], scope: Scope,
                         label: str) -> _Artifact:
    """The skops file the flavor names, checked and loaded as the project loads model.skops."""
    named = conf.get("pickled_model")
    if not isinstance(named, str) or not named:
        raise InvalidInputError(f"{label}: its MLmodel file names no model file (sklearn "
                                "flavor field 'pickled_model')")
    shown = f"{label} ({named})"
    # The download folder is the root: a name with '..' or a symlink out is refused.
    payload = read_model_bytes(local / named, local, shown)
    estimator = load_model_bytes(payload, SKOPS_FILE, shown, scope.config.trusted_types,
                                 needs=_method(scope))
    return _Artifact(estimator, SKOPS_FILE, payload, SKOPS_FORMAT)


def _method(scope: Scope) -> str:
    """What a model of ``scope`` must answer with: class probabilities, or values."""
    return "predict" if is_regression(scope.task) else "predict_proba"


def _run_facts(client: Any, run_id: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """The logging run's tags and parameters; a deleted or unreadable run gives nothing."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return {}, {}
    try:
        data = client.get_run(run_id).data
    except MlflowException:
        return {}, {}
    return dict(data.tags), dict(data.params)


def _describe(artifact: _Artifact, version: Any, run_tags: dict[str, str],
              params: dict[str, str], origin: dict[str, Any], group: str | None,
              label: str) -> dict[str, Any]:
    """``meta.json`` of an imported version: tags first, then what the estimator shows."""
    tags = {**run_tags, **dict(version.tags or {})}
    estimator = artifact.estimator
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    module = type(final).__module__
    chosen_group = tags.get(GROUP_TAG) or group or next(
        (g for prefix, g in GROUP_BY_MODULE if module.startswith(prefix)), None)
    if chosen_group not in GROUPS:
        raise InvalidInputError(
            f"{label}: group of a {type(final).__name__} unknown"
            + (f" (tag '{GROUP_TAG}' is {chosen_group!r})" if chosen_group else "")
            + f". Hint: tag the version {GROUP_TAG}={'|'.join(GROUPS)}, or pass --group")
    model_type = tags.get(MODEL_TYPE_TAG) or \
        re.sub(r"(?<!^)(?=[A-Z])", "_", type(final).__name__).lower()
    kept = {k: str(v) for k, v in (version.tags or {}).items()
            if k != STAGE_TAG and not k.startswith("promotion.")}
    training: dict[str, Any] = {"imported_from": "mlflow",
                                "mlflow_format": artifact.serialization}
    if artifact.file_name == JOBLIB_FILE:
        training["trusted_pickle"] = True  # only reachable with trust_pickle
    return {"model_type": model_type, "group": chosen_group,
            "description": version.description or "", "params": params, "tags": kept,
            "training": training, "mlflow": origin, "model_file": artifact.file_name}


_LEFT_BY_AN_IMPORT = re.compile(r"\.(?P<model>.+)\.(?:import|replaced)-[0-9a-f]{8}")


def sweep_killed_imports(scope_dir: Path) -> list[Path]:
    """Remove the hidden folders that killed imports left (``_write_model_folder``'s names,
    older than STALE_TEMP_SECONDS); return them.

    Only where the model folder they were for exists: an import killed between its two
    renames leaves the model only in these folders, and they are kept for a person to look at.
    """
    def left_by_an_import(candidate: Path) -> bool:
        match = _LEFT_BY_AN_IMPORT.fullmatch(candidate.name)
        return (match is not None and candidate.is_dir() and not candidate.is_symlink()
                and (scope_dir / match["model"]).is_dir())

    return sweep_stale(filter(left_by_an_import, scope_dir.glob(".*-*")), shutil.rmtree)


def _write_model_folder(scope_dir: Path, final: Path, artifact: _Artifact,
                        meta: dict[str, Any]) -> None:
    """Write the folder under a hidden name, then rename it into place (no half folder)."""
    ModelMeta.model_validate(meta)  # never write a meta.json discovery would refuse
    tmp = scope_dir / f".{final.name}.import-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        if artifact.payload is not None:  # the very bytes verified, never re-serialized
            (tmp / artifact.file_name).write_bytes(artifact.payload)
        else:
            import joblib

            joblib.dump(artifact.estimator, tmp / artifact.file_name)
        (tmp / META_FILE).write_text(dumps(meta) + "\n", encoding="utf-8")
        if final.exists():
            old = scope_dir / f".{final.name}.replaced-{uuid.uuid4().hex[:8]}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
