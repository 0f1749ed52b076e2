"""App cold start with a built and evaluated zoo: `streamlit run` until the health endpoint
answers and a real browser shows the first Leaderboard page.

Target (scale issue): at most 5 s. ``BENCH_ZOO_DIR`` reuses the zoo of bench_zoo.py.

Both the server and Chromium run on this host's two cores, and this host's speed varies by a
quarter from hour to hour. So the result also records a yardstick taken at the same time: how
long a fresh interpreter takes to ``import streamlit``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from _util import app_process, record, summary  # noqa: E402
from browser import CHROMIUM, CHROMIUM_ARGS, free_port, wait_healthy  # noqa: E402

from demo import build_demo_zoo  # noqa: E402
from promotion.evaluation import evaluate_scope  # noqa: E402
from promotion.scopes import discover_scopes  # noqa: E402
from promotion.store import open_store  # noqa: E402

RUNS = 7


def main() -> dict:
    from playwright.sync_api import sync_playwright

    root = Path(os.environ.get("BENCH_ZOO_DIR") or tempfile.mkdtemp(prefix="bench-cs-")) / "models"
    build_demo_zoo(root, progress=lambda _: None)
    store = open_store(root)
    for scope in discover_scopes(root):  # served means evaluated: fill the cache
        evaluate_scope(scope, store)
    store.close()
    healthy, rendered = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for _ in range(RUNS):
            health_s, page_s = _one_start(root, browser)
            healthy.append(health_s)
            rendered.append(page_s)
        browser.close()
    result = {"runs": RUNS, "health_answering": summary(healthy),
              "first_page_rendered": summary(rendered), "target_s": 5.0,
              "host_streamlit_import_s": _streamlit_import_s()}
    record("app_cold_start", result)
    return result


def _streamlit_import_s() -> float:
    """Median wall time of ``import streamlit`` in a fresh interpreter, of 5."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import streamlit"], check=True)
        times.append(time.perf_counter() - started)
    return round(sorted(times)[2], 3)


def _one_start(root: Path, browser) -> tuple[float, float]:
    port = free_port()
    started = time.perf_counter()
    process = app_process(root, port)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, 60)
        health_s = time.perf_counter() - started
        page = browser.new_page()
        page.goto(f"{url}/?scope=digits")
        page.get_by_text("Promoted Models Summary").first.wait_for(timeout=60_000)
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
            timeout=60_000)
        page_s = time.perf_counter() - started
        page.close()
        return health_s, page_s
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
