"""Peak memory of ``python -m promotion predict`` on a 1,000,000-row CSV (issue 18).

Builds the tests' tiny factory scope (8 features, 6 classes), promotes ``logreg``, ``tree_d3``
and ``bayes`` and exports them with the command line of the source tree measured, writes a
CSV of ``--rows`` holdout rows drawn with replacement (about 153 MB for a million), then runs
``predict`` (logged, into an output file) in a fresh process and reads that process's peak
resident memory from ``wait4``.

    .venv/bin/python bench/bench_predict_memory.py                       # build, then measure
    .venv/bin/python bench/bench_predict_memory.py --root DIR            # measure again
    .venv/bin/python bench/bench_predict_memory.py --code OTHER_TREE     # another source tree

``--code`` runs every command from another source tree (e.g. ``git archive HEAD | tar -x -C
OTHER_TREE``), to compare before and after a change: build with the older tree (its cards
are readable by newer ones), then measure both on the same ``--root``. Not run by run_all.py:
one run takes about a minute and, before streaming, over 3 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from _util import run_promotion  # noqa: E402

SCOPE = "tiny"
MEMBERS = ("logreg", "tree_d3", "bayes")
WRITE_ROWS = 100_000


def run(code: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One command of the tree ``code``'s command line."""
    env = {k: v for k, v in os.environ.items() if k != "PROMOTION_DB_URL"}
    env["PYTHONPATH"] = str(code)
    done = subprocess.run([sys.executable, "-m", "promotion", *args], cwd=code, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:1])} failed ({done.returncode}): "
                         f"{done.stderr.strip()}")
    return done


def build(code: Path, rows: int) -> Path:
    """A models root with the exported tiny scope and ``rows.csv`` beside it."""
    import numpy as np
    import pandas as pd
    from factories import make_scope

    root = Path(tempfile.mkdtemp(prefix="bench-predict-memory-")) / "models"
    root.mkdir()
    make_scope(root, SCOPE)
    for name in MEMBERS:
        run(code, "promote", "--scope", SCOPE, "--model", name, "--reason",
            "memory benchmark", "--user", "bench", "--models-dir", str(root))
    run(code, "export", "--scope", SCOPE, "--models-dir", str(root))
    holdout = pd.read_csv(root / SCOPE / "holdout.csv").drop(columns="label")
    rng = np.random.default_rng(0)
    path = csv_path(root)
    for start in range(0, rows, WRITE_ROWS):  # in slices: this process stays small too
        picked = rng.integers(0, len(holdout), size=min(WRITE_ROWS, rows - start))
        holdout.iloc[picked].to_csv(path, index=False, header=start == 0,
                                    mode="w" if start == 0 else "a")
    print(f"built {root}: {rows:,} rows, {path.stat().st_size / 1e6:.0f} MB CSV", flush=True)
    return root


def csv_path(root: Path) -> Path:
    return root.parent / "rows.csv"


def peak_rss(root: Path, code: Path) -> dict:
    """Run ``predict`` from the tree ``code`` on ``root``'s CSV; its peak RSS and wall time."""
    from promotion.engine import log_path

    log = log_path(root, SCOPE)
    for stale in (log, log.with_name(log.name + "-wal"), log.with_name(log.name + "-shm")):
        stale.unlink(missing_ok=True)  # every run starts from an empty log
    out = root.parent / "predictions.csv"
    status, _, err, seconds, peak = run_promotion(
        ["predict", "--scope", SCOPE, "--input", str(csv_path(root)), "--output", str(out),
         "--models-dir", str(root)], code)
    if status != 0:
        raise SystemExit(f"predict failed: {err.strip()}")
    with out.open() as handle:
        answered = sum(1 for _ in handle) - 1
    return {"peak_rss_mb": peak, "seconds": round(seconds, 1), "rows_answered": answered,
            "code": str(code)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="a models root built by an earlier run")
    parser.add_argument("--code", type=Path, default=HERE.parent,
                        help="the source tree the commands run from (default: this one)")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    code = args.code.resolve()
    root = args.root or build(code, args.rows)
    result = {"csv_mb": round(csv_path(root).stat().st_size / 1e6, 1), "root": str(root),
              "measured_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
              **peak_rss(root, code)}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
