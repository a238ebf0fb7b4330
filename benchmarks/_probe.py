"""The dashboard as a user's browser sees it: `make run`'s processes on a free port, and Debian's
Chromium driven by Playwright. Shared by the browser tests (tests/test_browser*.py,
tests/app/test_serve.py) and benchmarks/run_page.py, so both measure the same thing; not part of the
app, which never imports it. A helper, not a benchmark: `make bench` and tests/test_benchmarks.py
run benchmarks/ files whose names do not start with an underscore."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


# the Run page of a finished run is complete when its fifth chart and the ticket download show
RUN_PAGE_COMPLETE = [".js-plotly-plot >> nth=4", "[data-testid=stDownloadButton]"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(home: Path, log: Path, port: int | None = None) -> Iterator[str]:
    """`python -m app.serve` (dashboard + one CPU worker) on 127.0.0.1; yields its URL."""
    port = port or free_port()
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.serve", "--home", str(home),
                                 "--port", str(port), "--device", "cpu"], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(Path(log).read_text()[-2000:]) from None
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def browser_missing() -> str | None:
    """Why a browser cannot be driven here, or None."""
    if not os.path.exists(CHROMIUM):
        return "Debian's chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS)


def timed_load(page, url: str, first: str, complete: list[str],
               timeout: float = 60_000) -> tuple[float, float]:
    """Seconds from navigation to the first `first` element visible, and to every selector of
    `complete` visible (each a Playwright selector; a Plotly chart counts once drawn)."""
    start = time.perf_counter()
    page.goto(url)
    page.locator(first).first.wait_for(state="visible", timeout=timeout)
    first_seen = time.perf_counter() - start
    for selector in complete:
        page.locator(selector).last.wait_for(state="visible", timeout=timeout)
    return first_seen, time.perf_counter() - start


def cold_load(browser, url: str, first: str, complete: list[str], timeout: float = 60_000,
              link: tuple[float, float] | None = None,
              headers: dict[str, str] | None = None) -> tuple[float, float]:
    """`timed_load` as a first visit sees it: a new browser context (an empty cache, as a person
    opening a shared link in a fresh browser), closed afterwards. `link` (Mbit/s, round trip in
    ms) emulates a network between browser and server, which on this machine is none at all;
    `headers` are sent with every request (e.g. an Accept-Encoding)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1800},
                                  extra_http_headers=headers)
    try:
        page = context.new_page()
        if link:
            cdp = context.new_cdp_session(page)
            cdp.send("Network.enable")
            mbit, rtt = link
            cdp.send("Network.emulateNetworkConditions", {
                "offline": False, "latency": rtt, "downloadThroughput": mbit * 1e6 / 8,
                "uploadThroughput": mbit * 1e6 / 8})
        return timed_load(page, url, first, complete, timeout)
    finally:
        context.close()
