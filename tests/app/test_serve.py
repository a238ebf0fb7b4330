"""`make run` (app.serve): a worker that dies is restarted, and the log a user reads is ours."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from benchmarks import _probe as probe
from jobs import queue

from tests.jobs_helpers import tiny_yaml, wait_for, wait_state


def _worker_pids(log) -> list[int]:
    text = log.read_text()
    return [int(p) for p in re.findall(r"\(worker pid (\d+)", text)
            + re.findall(r"worker restarted: pid (\d+)", text)]


def test_a_dead_worker_is_restarted_and_startup_noise_stays_out_of_the_log(tmp_path):
    home, log = tmp_path / "home", tmp_path / "serve.log"
    with probe.served(home, log):
        first = wait_for(lambda: _worker_pids(log), timeout=30)[0]
        os.kill(first, signal.SIGKILL)
        restarted = wait_for(lambda: len(_worker_pids(log)) > 1 and _worker_pids(log)[-1],
                             timeout=30)
        assert f"worker pid {first} exited with code -9; restarting it" in log.read_text()
        job_id = queue.submit(tiny_yaml("after-restart", rounds=1), home)
        status = wait_state(home, job_id, timeout=240)
        assert status["state"] == "done" and status["pid"] == restarted  # the new worker ran it
    text = log.read_text()
    for noise in ("oneDNN custom operations", "absl::InitializeLog", "cuda drivers"):
        assert noise not in text, noise


def test_ctrl_c_stops_the_dashboard_and_its_worker_without_a_traceback(tmp_path):
    """A terminal's Ctrl-C sends SIGINT to the whole process group: serve, worker, Streamlit."""
    port, log = probe.free_port(), tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "app.serve", "--home", str(tmp_path),
                                 "--port", str(port), "--device", "cpu"], cwd=probe.ROOT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def healthy() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                          timeout=2).status == 200
        except OSError:
            return False

    wait_for(healthy, timeout=60)
    wait_for(lambda: "serving" in log.read_text(), timeout=60)  # the worker is up too
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 0
    assert "Traceback" not in log.read_text() and "KeyboardInterrupt" not in log.read_text()
