"""Serving side by side with MLflow (registry + pyfunc), then the HTTP server, in one run.

The same 3-member digits export (xgboost, mlp_large, logistic_regression from the demo zoo).
Targets (serving issue): engine single-row weighted ensemble p95 ≤ 0.5 ms and ≥ 20× ahead of
MLflow pyfunc's; loading the three for serving ≤ 1/3 of MLflow's; HTTP single-row p95 ≤ 3 ms
on loopback; 20 exports while requests run: 0 failed. Also: the export's compile cost, each
compiled member's load and single-row time against its native file, and the throughput of N
concurrent HTTP clients (a bounded number of requests each).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _util import promoted_digits, record  # noqa: E402

from promotion.engine import PredictionEngine  # noqa: E402
from promotion.engine._onnx import load_onnx  # noqa: E402
from promotion.lifecycle._transitions import apply_move  # noqa: E402
from promotion.usecases import export_scope  # noqa: E402

MEMBERS = ("xgboost", "mlp_large", "logistic_regression")
SINGLE_ROWS = 300
HTTP_REQUESTS = 1000
CLIENTS = 4
REQUESTS_PER_CLIENT = 250
SWAP_EXPORTS = 20


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def timed_median(call, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def mlflow_side(root: Path, cards: list[dict], singles: list[pd.DataFrame]) -> dict:
    """Register the three native models in MLflow, then time what a team would do with it."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="bench-serving-mlflow-"))
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    # Artifacts in the temporary folder too (the default is ./mlruns in the working folder).
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(
        "serving", artifact_location=(folder / "artifacts").as_uri()))
    client = MlflowClient()
    weights = {}
    for card in cards:
        model = joblib.load(root.parent / card["model_path"])
        with mlflow.start_run():
            mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle",
                                     pyfunc_predict_fn="predict_proba",
                                     registered_model_name=f"digits_{card['model_name']}")
        weights[card["model_name"]] = card["ensemble_weight"]
    names = [f"digits_{n}" for n in weights]

    def promote(i: int) -> None:  # a durable decision: the alias and a tag
        name = names[i % len(names)]
        client.set_registered_model_alias(name, "champion", "1")
        client.set_model_version_tag(name, "1", "stage", f"champion {i}")

    promote_times = []
    for i in range(30):
        started = time.perf_counter()
        promote(i)
        promote_times.append(time.perf_counter() - started)

    def load() -> list:
        return [mlflow.pyfunc.load_model(f"models:/{n}@champion") for n in names]

    load()  # imports and the registry's first reads
    load_s = timed_median(load, 5)
    models = load()
    shares = list(weights.values())
    times = []
    for row in singles:
        started = time.perf_counter()
        sum(model.predict(row) * w for model, w in zip(models, shares, strict=True))
        times.append(time.perf_counter() - started)
    return {"version": mlflow.__version__, "promote_median_ms": p(promote_times, 50),
            "load_three_s": load_s, "single_row_p50_ms": p(times, 50),
            "single_row_p95_ms": p(times, 95)}


def project_side(root: Path, store, singles: list[pd.DataFrame]) -> dict:
    times = []
    for i in range(30):  # the same kind of decision: one durable move with its history row
        started = time.perf_counter()
        with store.decision("bench_serving") as decision:
            apply_move(decision, "model_a", "production" if i % 2 == 0 else "archived",
                       actor="bench", reason=f"run {i}", model_sha256="a" * 64)
        times.append(time.perf_counter() - started)
    PredictionEngine.load("digits", root, log=False)  # imports (onnxruntime) once
    load_s = timed_median(lambda: PredictionEngine.load("digits", root, log=False), 7)
    engine = PredictionEngine.load("digits", root, log=False)
    logged = PredictionEngine.load("digits", root)
    arrays = [row.to_numpy(dtype=float) for row in singles]
    frame_t, array_t, logged_t = [], [], []
    for row, array in zip(singles * 2, arrays * 2, strict=True):  # interleaved
        for served, given, out in ((engine, row, frame_t), (engine, array, array_t),
                                   (logged, row, logged_t)):
            started = time.perf_counter()
            served.predict_proba(given)
            out.append(time.perf_counter() - started)
    logged.close()
    return {"promote_median_ms": p(times, 50), "load_three_s": load_s,
            "single_row_p50_ms": p(frame_t, 50), "single_row_p95_ms": p(frame_t, 95),
            "single_row_array_p95_ms": p(array_t, 95), "single_row_logged_p95_ms":
            p(logged_t, 95), "compiled": [m.card.model_name for m in engine.members
                                          if m.card.compiled_path]}


def members_side(root: Path, cards: list[dict], singles: list[pd.DataFrame]) -> dict:
    """Each member: its compiled ONNX file against its native file, load and one row."""
    out = {}
    for card in cards:
        native_path = root.parent / card["model_path"]
        member = {"native_load_ms": timed_median(
            lambda path=native_path: joblib.load(path), 5) * 1000}
        native = joblib.load(native_path)
        member["native_single_row_p50_ms"] = p(
            [_time(lambda r=r, m=native: m.predict_proba(r)) for r in singles[:100]], 50)
        if card.get("compiled_path"):
            payload = (root.parent / card["compiled_path"]).read_bytes()
            member["onnx_size_mb"] = len(payload) / 1e6
            member["onnx_load_ms"] = timed_median(
                lambda data=payload: load_onnx(data, "m"), 5) * 1000
            onnx = load_onnx(payload, "m")
            arrays = [r.to_numpy(dtype=np.float32) for r in singles]
            member["onnx_single_row_p50_ms"] = p(
                [_time(lambda a=a, m=onnx: m.predict_proba(a)) for a in arrays], 50)
            member["max_delta"] = card["compiled_max_delta"]
        member["note"] = card.get("compiled_note")
        out[card["model_name"]] = member
    return out


def _time(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def start_server(root: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "promotion", "serve", "--scope", "digits", "--models-dir",
         str(root), "--port", "0"], cwd=HERE.parent, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    line = process.stderr.readline()
    found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
    if not found:
        process.kill()
        raise SystemExit(f"serve did not start: {line}{process.stderr.read()}")
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process, found[1]


def server_side(root: Path, store, records: list[dict]) -> dict:
    import httpx

    process, url = start_server(root)
    try:
        with httpx.Client(base_url=url) as client:
            for record_ in records[:50]:  # warm-up
                client.post("/predict", json={"rows": [record_]})
            times = []
            for k in range(HTTP_REQUESTS):
                body = {"rows": [records[k % len(records)]]}
                started = time.perf_counter()
                answer = client.post("/predict", json=body)
                times.append(time.perf_counter() - started)
                answer.raise_for_status()
        failures: list[int] = []

        def client_loop(count: int, statuses: list[int]) -> None:
            with httpx.Client(base_url=url) as own:
                for k in range(count):
                    statuses.append(own.post("/predict", json={
                        "rows": [records[k % len(records)]]}).status_code)

        statuses: list[int] = []
        threads = [threading.Thread(target=client_loop, args=(REQUESTS_PER_CLIENT, statuses))
                   for _ in range(CLIENTS)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        throughput = len(statuses) / (time.perf_counter() - started)
        failures += [s for s in statuses if s != 200]

        # Requests run while 20 exports land; every answer must be a 200.
        swap_statuses: list[int] = []
        exports_seen: set[str] = set()
        stop = threading.Event()

        def asker() -> None:
            with httpx.Client(base_url=url) as own:
                while not stop.is_set():
                    try:
                        answer = own.post("/predict", json={"rows": records[:1]})
                        swap_statuses.append(answer.status_code)
                        exports_seen.add(answer.json().get("export"))
                    except httpx.HTTPError:
                        swap_statuses.append(0)

        thread = threading.Thread(target=asker)
        thread.start()
        export_times = []
        try:
            for k in range(SWAP_EXPORTS):
                started = time.perf_counter()
                export_scope(root, "digits", store, ("score", "equal")[k % 2])
                export_times.append(time.perf_counter() - started)
        finally:
            time.sleep(1.0)  # the last export is picked up
            stop.set()
            thread.join()
    finally:
        process.terminate()
        process.wait(10)
    return {"http_single_row_p50_ms": p(times, 50), "http_single_row_p95_ms": p(times, 95),
            "clients": CLIENTS, "throughput_requests_s": throughput,
            "concurrent_failed": len(failures), "swap_exports": SWAP_EXPORTS,
            "swap_requests": len(swap_statuses),
            "swap_failed": sum(1 for s in swap_statuses if s != 200),
            "swap_exports_served": len(exports_seen),
            "export_cached_median_s": statistics.median(export_times)}


def main() -> dict:
    load_before = os.getloadavg()[0]
    root, store = promoted_digits("bench-serving-", MEMBERS, "serving benchmark")
    started = time.perf_counter()
    paths = export_scope(root, "digits", store)  # compiles the three
    first_export_s = time.perf_counter() - started
    started = time.perf_counter()
    export_scope(root, "digits", store)  # unchanged members: compiled results reused
    second_export_s = time.perf_counter() - started
    cards = json.loads(paths.model_cards.read_text())
    holdout = pd.read_csv(root / "digits" / "holdout.csv").drop(columns="digit")
    singles = [holdout.iloc[[i]] for i in range(SINGLE_ROWS)]
    mlflow = mlflow_side(root, cards, singles)
    ours = project_side(root, store, singles)
    members = members_side(root, cards, singles)
    server = server_side(root, store, holdout.head(200).to_dict(orient="records"))
    store.close()
    result = {
        "members": list(MEMBERS), "export_first_s": first_export_s,
        "export_second_s": second_export_s, "mlflow": mlflow, "project": ours,
        "member_files": members, "server": server,
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "engine_p95_target_ms": 0.5, "http_p95_target_ms": 3.0,
        "ratio_single_row_p95": mlflow["single_row_p95_ms"] / ours["single_row_p95_ms"],
        "ratio_load": ours["load_three_s"] / mlflow["load_three_s"],
        "sha_of_cards": hashlib.sha256(paths.model_cards.read_bytes()).hexdigest()[:12],
    }
    result["within_targets"] = bool(
        ours["single_row_p95_ms"] <= 0.5 and result["ratio_single_row_p95"] >= 20
        and result["ratio_load"] <= 1 / 3 and server["http_single_row_p95_ms"] <= 3.0
        and server["swap_failed"] == 0)
    record("serving", json.loads(json.dumps(result, default=float)))
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, default=float))
