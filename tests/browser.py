"""Running the real app in a subprocess and driving Debian's Chromium against it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = ROOT / "test-artifacts"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(models_dir: Path, extra_env: dict[str, str] | None = None,
                timeout: float = 120.0, script: Path | None = None,
                streamlit_args: tuple[str, ...] = (), port: int | None = None) -> Iterator[str]:
    """Serve ``script`` (default: app.py) with ``streamlit run`` on a free port (or ``port``),
    with ``streamlit_args`` (e.g. ``--secrets.files``); yields its base URL."""
    port = port or free_port()
    env = {**os.environ, "PROMOTION_MODELS_DIR": str(models_dir), "PROMOTION_USER": "ana",
           **(extra_env or {})}
    env.pop("PROMOTION_DB_URL", None) if "PROMOTION_DB_URL" not in (extra_env or {}) else None
    log = (models_dir.parent / f"streamlit-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script or ROOT / "app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false",
         *streamlit_args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wait_healthy(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        try:  # wait a little between polls, returning at once if streamlit exits
            process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
    raise TimeoutError(f"{url} did not answer its health check in {timeout:.0f}s")


def launched_chromium() -> Iterator[object]:
    """Debian's Chromium under Playwright, headless, for one test module's fixture."""
    import pytest

    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: ./scripts/test installs it with apt-get")
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
