"""Real worker processes for the queue and dashboard tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from jobs import queue

from tests.conftest import ROOT


def tiny_yaml(name: str = "tiny", rounds: int = 2, epochs: int = 1, limit: int = 200,
              extra: str = "") -> str:
    return f"""
run: {{name: {name}, seed: 3, device: cpu}}
data: {{source: bundled, name: digits, image_size: [16, 16], channels: 1, limit_total: {limit}}}
train: {{arch: lenet, epochs: {epochs}, batch_size: 16}}
imp: {{prune_rate: 0.2, num_rounds: {rounds}, target_sparsity: 0.99}}
{extra}"""


def start_worker(home: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    log = open(home / f"worker-{time.monotonic_ns()}.out", "w")
    return subprocess.Popen([sys.executable, "-m", "jobs.cli", "worker", "--home",
                             str(home), "--device", "cpu", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(predicate, timeout: float = 240.0, every: float = 0.1):
    """Poll until predicate() is truthy; return its value or fail with a timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"condition not met within {timeout} s")


def wait_state(home: Path, job_id: str, states=queue.FINISHED, timeout: float = 240.0) -> dict:
    return wait_for(lambda: (s := queue.get(job_id, home))["state"] in states and s, timeout)
