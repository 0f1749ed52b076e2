"""Cost of the prediction log against the batch's prediction time, on the demo digits scope.

Three models exported in champion mode (every model scores every row; the champion answers).
Direct figure: within each logged ``serve`` call, the time of all the work logging adds
(packing the batch and writing it) against the rest of the call (the prediction), median
over the runs. End-to-end figure: the same batch served by an engine that logs and one that
does not, interleaved in alternating order; the median of the paired differences against
the median unlogged time. It is noisy here: a batch's prediction alone varies by ±10%.
Target (monitoring issue): the log costs at most 10% of the batch's prediction time.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _util import promoted_digits, record  # noqa: E402

from promotion.engine import PredictionEngine  # noqa: E402
from promotion.usecases import change_stage, deploy  # noqa: E402

MEMBERS = ("xgboost", "mlp_large", "logistic_regression")
TARGET = 0.10
RUNS = 31


def main() -> dict:
    root, store = promoted_digits("bench-predlog-", MEMBERS, "log benchmark")
    change_stage(root, "digits", store, MEMBERS[0], "champion", actor="bench",
                           reason="log benchmark", override=True)
    deploy(root, "digits", store, "champion", actor="bench", reason="shadow")
    store.close()
    holdout = pd.read_csv(root / "digits" / "holdout.csv").drop(columns="digit")
    logged = PredictionEngine.load("digits", root)
    bare = PredictionEngine.load("digits", root, log=False)
    write = logged._log
    spent: list[float] = []

    def timed_write(*args) -> None:  # the log's own time, inside the real call
        started = time.perf_counter()
        write(*args)
        spent.append(time.perf_counter() - started)

    logged._log = timed_write
    result: dict = {"members": list(MEMBERS), "mode": "champion", "target_share": TARGET}
    for rows in (100, 1000, 10_000):
        batch = holdout.sample(rows, replace=True, random_state=0).reset_index(drop=True)
        with_log, without, shares = [], [], []
        for run in range(RUNS):
            ids = [f"{rows}-{run}-{i}" for i in range(rows)]
            # Whichever call goes second in a pair runs measurably slower or faster here, so
            # the order alternates and the bias cancels in the median.
            for engine in (bare, logged) if run % 2 == 0 else (logged, bare):
                started = time.perf_counter()
                engine.serve(batch, ids)
                (with_log if engine is logged else without).append(
                    time.perf_counter() - started)
            shares.append(spent[-1] / (with_log[-1] - spent[-1]))
        base = statistics.median(without)
        added = statistics.median(w - b for w, b in zip(with_log, without, strict=True))
        result[f"rows_{rows}"] = {
            "log_ms_median": round(statistics.median(spent[-RUNS:]) * 1000, 2),
            "log_share_of_prediction": round(statistics.median(shares), 4),
            "end_to_end_predict_ms": round(base * 1000, 2),
            "end_to_end_added_ms": round(added * 1000, 2),
            "end_to_end_share": round(added / base, 4)}
    logged.close()
    result["within_target"] = all(result[f"rows_{n}"]["log_share_of_prediction"] <= TARGET
                                  for n in (100, 1000, 10_000))
    record("predlog", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
