"""Load time and single-row predict time of each model file format, on the digits data.

Each file goes through ``promotion.engine.load_model_file`` (root and sha256 checks, then the
format's loader), as the evaluation and the engine load it. The same fitted models are saved in
several formats (xgboost as joblib, ubj and json; CatBoost as cbm and joblib; a random forest
as joblib and skops), so a row compares formats, not models.

Target (native formats): single-row predict_proba p95 through the loaded file ≤ 1.1× the
library's own fitted object's p95 + 0.2 ms (the project's mapping of a booster's output adds
next to nothing). Load times are reported, not targeted: they are the libraries' own parsers.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _util import record  # noqa: E402

from promotion.engine import load_model_file  # noqa: E402

LOADS = 15
SINGLE_ROWS = 300
TREES = 100


def _fitted() -> tuple[dict, pd.DataFrame, list[str]]:
    """(name -> (fitted object, file name, writer)), the holdout rows, the class labels."""
    import catboost
    import joblib
    import lightgbm
    import skops.io as sio
    import xgboost
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    digits = load_digits(as_frame=True)
    X, y = digits.data, digits.target.to_numpy()
    train, holdout = X.iloc[:1200], X.iloc[1200:]
    lgbm = lightgbm.LGBMClassifier(n_estimators=TREES, verbose=-1, random_state=0,
                                   n_jobs=1).fit(train, y[:1200])
    xgb = xgboost.XGBClassifier(n_estimators=TREES, max_depth=4, random_state=0,
                                n_jobs=1).fit(train, y[:1200])
    cat = catboost.CatBoostClassifier(iterations=TREES, depth=4, verbose=0, thread_count=1,
                                      allow_writing_files=False).fit(train, y[:1200])
    forest = RandomForestClassifier(n_estimators=TREES, random_state=0,
                                    n_jobs=1).fit(train, y[:1200])
    models = {
        "lightgbm model.txt": (lgbm, "model.txt", lambda p: lgbm.booster_.save_model(p)),
        "xgboost model.ubj": (xgb, "model.ubj", lambda p: xgb.get_booster().save_model(p)),
        "xgboost model.json": (xgb, "model.json", lambda p: xgb.get_booster().save_model(p)),
        "xgboost model.joblib": (xgb, "model.joblib", lambda p: joblib.dump(xgb, p)),
        "catboost model.cbm": (cat, "model.cbm", lambda p: cat.save_model(str(p))),
        "catboost model.joblib": (cat, "model.joblib", lambda p: joblib.dump(cat, p)),
        "random forest model.joblib": (forest, "model.joblib", lambda p: joblib.dump(forest, p)),
        "random forest model.skops": (forest, "model.skops", lambda p: sio.dump(forest, p)),
    }
    return models, holdout, [str(c) for c in range(10)]


def _single_row_ms(model, rows: list[pd.DataFrame]) -> list[float]:
    model.predict_proba(rows[0])  # warm-up
    times = []
    for row in rows:
        started = time.perf_counter_ns()
        model.predict_proba(row)
        times.append((time.perf_counter_ns() - started) / 1e6)
    return times


def main() -> dict:
    from promotion.engine._align import model_columns

    models, holdout, classes = _fitted()
    picks = np.random.default_rng(0).permutation(len(holdout))[:SINGLE_ROWS]
    rows = [holdout.iloc[[i]] for i in picks]
    root = Path(tempfile.mkdtemp(prefix="bench-formats-")) / "models"
    figures = {}
    for label, (fitted, file_name, write) in models.items():
        folder = root / "digits" / label.replace(" ", "_").replace(".", "_")
        folder.mkdir(parents=True)
        path = folder / file_name
        write(path)
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        trusted = ("sklearn.tree._tree.Tree",)
        loaded = load_model_file(path, root, label, expected_sha256=sha, trusted_types=trusted)
        load_s = []
        for _ in range(LOADS):
            started = time.perf_counter()
            load_model_file(path, root, label, expected_sha256=sha, trusted_types=trusted)
            load_s.append(time.perf_counter() - started)
        columns = model_columns(loaded.model, list(holdout.columns))
        ours = _single_row_ms(loaded.model, [r[columns] for r in rows])
        own = _single_row_ms(fitted, rows)
        got = loaded.model.predict_proba(holdout[columns])
        figures[label] = {
            "file_kb": round(path.stat().st_size / 1024, 1),
            "load_median_ms": round(statistics.median(load_s) * 1000, 2),
            "single_row_p50_ms": round(float(np.percentile(ours, 50)), 3),
            "single_row_p95_ms": round(float(np.percentile(ours, 95)), 3),
            "library_object_p95_ms": round(float(np.percentile(own, 95)), 3),
            "max_abs_diff_vs_library": float(np.abs(got - fitted.predict_proba(holdout)).max()),
        }
    native = {k: v for k, v in figures.items() if not k.endswith((".joblib", ".skops"))}
    result = {
        "rows": SINGLE_ROWS, "trees": TREES, "formats": figures,
        "native_within_target": all(
            v["single_row_p95_ms"] <= 1.1 * v["library_object_p95_ms"] + 0.2
            for v in native.values()),
    }
    record("formats", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
