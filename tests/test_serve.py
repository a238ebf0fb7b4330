"""`make run` (app.serve): a worker that dies is restarted, and the log a user reads is ours."""

from __future__ import annotations

import os
import re
import signal

from benchmarks import _probe as probe
from jobs import queue

from .jobs_helpers import tiny_yaml, wait_for, wait_state


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
