"""A real browser against the app and worker as `make run` starts them (app.serve).

Needs Debian's chromium and the playwright package. Outside CI a missing browser skips with the
reason; in CI (CI=true) it fails, because .ci/run installs both.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile

import pytest

from .conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = ROOT / "test-output" / "browser"


def _require_browser():
    reason = None
    if not os.path.exists(CHROMIUM):
        reason = "Debian's chromium is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (pip install playwright)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_app(tmp_path):
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "app.serve", "--home", str(tmp_path / "home"),
                             "--port", str(port), "--device", "cpu"], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError((tmp_path / "serve.log").read_text()[-2000:]) from None
            time.sleep(0.3)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def test_submit_watch_and_download_in_a_real_browser(served_app):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800}, accept_downloads=True)
        page.set_default_timeout(60_000)
        page.goto(served_app)  # the Launch page is the default
        for label, value in (("Image size (pixels, square)", "16"),
                             ("Limit total images (0 = all)", "200"),
                             ("Rounds", "2"), ("Epochs per round", "1")):
            field = page.get_by_label(label, exact=True)
            field.fill(value)
            field.press("Tab")
        page.get_by_role("button", name="Queue run").click()
        expect(page.get_by_text("Queued job")).to_be_visible()
        page.get_by_role("link", name="Watch").click()
        expect(page.get_by_text("Rounds finished")).to_be_visible()
        metric = page.get_by_test_id("stMetric").filter(has_text="Rounds finished")
        expect(metric).to_contain_text("3", timeout=240_000)
        expect(page.locator(".js-plotly-plot").first).to_be_visible()
        download_button = page.get_by_role("button", name="Download the winning ticket (.zip)")
        expect(download_button).to_be_visible(timeout=120_000)
        page.wait_for_timeout(1000)  # let the plots finish drawing for the screenshot
        page.screenshot(path=str(OUTPUT / "run_page.png"), full_page=True)
        with page.expect_download() as info:
            download_button.click()
        path = OUTPUT / info.value.suggested_filename
        info.value.save_as(path)
        browser.close()
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        assert "winning_ticket_model.keras" in archive.namelist()
