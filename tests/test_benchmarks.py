"""Every script in benchmarks/ in its --quick mode, run as a user runs it: `python
benchmarks/X.py --quick` in a process of its own from the repository root. Quick mode is the full
benchmark's code path at tiny sizes (seconds, its numbers mean nothing), so an engine API change
that breaks a benchmark fails `make test` instead of waiting for the next `make bench`.

Resources a benchmark needs that a machine may lack (Ray, Fashion-MNIST, Chromium) skip its test
with the reason, except in CI (CI set), where they fail it, as in test_browser.py.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("[!_]*.py"))  # _name.py: a shared helper

# the result lines each benchmark must print (regular expressions, searched in its stdout)
RESULTS = {
    "data_scale.py": [r"first load \(decode \+ cache\) +[\d.]+ s",
                      r"cached load \(memmap\) +[\d.]+ s", r"cached load is [\d.]+x faster"],
    "experiment_throughput.py": [r"1 worker\(s\) x \d+ thread\(s\): .* series-epochs/min",
                                 r"\d+ worker\(s\) x 1 thread\(s\): .* series-epochs/min",
                                 r"ratio \(\d+ x 1 thread\) / \(1 x \d+ threads\): [\d.]+"],
    "export.py": [r"(?m)^\S+ r\d+ keras: .* ms/sample at batch 1",
                  r"(?m)^\S+ r\d+ tflite: .* ms/sample at batch 1",
                  r"compaction: \d+ of \d+ hidden units removed",
                  r"sparse tflite vs a dense float TFLite of the same ticket .* the size"],
    "mask_overhead.py": [r"ratio c/a = [\d.]+", r"ratio b/a = [\d.]+"],
    "queue_latency.py": [r"pickup latency: median [\d.]+ s",
                         r"rounds.jsonl -> status.json: median [\d.]+ s"],
    "queue_scale.py": [r"jobs in the home: heartbeat +[\d.]+ ms, claim +[\d.]+ ms",
                       r"lenet_300_100 at 28x28: .* MB of weights",
                       r"vgg16 at \d+x\d+: .* MB of weights"],
    "ray_fanout.py": [r"one local worker: +[\d.]+ s wall", r"Ray, 2 nodes x 1 CPU: +[\d.]+ s wall",
                      r"speed-up [\d.]+x; Ray overhead per job"],
    "recipes.py": [r"engine \(graph\): +[\d.]+ ms/step", r"keras fit \(graph\): +[\d.]+ ms/step",
                   r"same recipe: weights after \d+ steps from the same init differ by at most "
                   r"[\d.e+-]+ \(relative\); one weight one ulp off: [\d.e+-]+",
                   r"engine / keras fit = [\d.]+x \(graph mode on both; target <= 1.10x\)",
                   r"load average after: [\d.]+"],
    "round_overhead.py": [r"reset/rebuild = [\d.]+", r"identical val accuracies: True"],
    "run_page.py": [r"AppTest: first render .* ms; refresh median of \d+ [\d.]+ ms"],
    "steps_per_call.py": [r"one step per call: [\d.]+ s/epoch; engine \((\d+) steps per call\): "
                          r"[\d.]+ s/epoch; ratio [\d.]+x", r"identical records: True"],
    "structured.py": [r"(?m)^channel ticket: round \d+, [\d.]+% of the weights, [\d.]+% of "
                      r"the units left", r"(?m)^unstructured ticket: round \d+, [\d.]+% of the "
                      r"weights left", *(rf"(?m)^{ticket} +{fmt} +[\d.]+ [KMG]?B +\S+x +[\d.]+ "
                                         r"+\S+x +[\d.]+ +\S+x +[\d.]+%$"
                                         for ticket in ("dense", "channel", "unstructured")
                                         for fmt in ("compact", "tflite", "tflite-int8")),
                      r"timed 3 times in this call, batch 256: median [\d.]+ ms/sample, "
                      r"spread \d+%"],
    "train_step.py": [r"(?m)^lenet_300_100 +1 +\d+ +\d+ +\d+ +[\d.]+x +\d+ +\d+ +[\d.]+x$",
                      r"(?m)^lenet +1 +\d+ +\d+ +refused +[\d.]+x +\d+ +refused +[\d.]+x$",
                      r"round 1: [+-][\d.]+ points", r"every interval contains 0: (True|False)"],
    "vgg_round.py": [r"through the frozen base: +[\d.]+ s per round",
                     r"on cached features: +[\d.]+ s per round", r"speed-up per round: \d+x"],
}
BROWSER_RESULTS = [r"Chromium, Run page of the finished run, warm .* first chart [\d.]+ s",
                   r"Chromium, Run page of the finished run, cold .* first chart [\d.]+ s",
                   r"Run page cold over an emulated .* [\d.]+ s compressed, [\d.]+ s uncompressed",
                   r"Chromium, Runs page with \d+ jobs, .* table shown [\d.]+ s"]
# seconds; quick runs take 2-60 s on a 2-core machine (docs/benchmarks.md): these leave room
TIMEOUT = {"ray_fanout.py": 240, "experiment_throughput.py": 180, "recipes.py": 180,
           "structured.py": 180}
DEFAULT_TIMEOUT = 120


def _cannot_run(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"benchmark cannot run in CI: {reason}")
    pytest.skip(reason)


def _fashion_mnist_missing() -> str | None:
    from lottery_engine.data import dataset as data_lib
    from lottery_engine.data.keras_cache import keras_home

    cached = keras_home() / "datasets" / data_lib.KERAS_CACHE_DIRS["fashion_mnist"]
    if data_lib.DEBIAN_FASHION_MNIST.is_dir() or len(list(cached.glob("*-ubyte.gz"))) == 4:
        return None
    return ("Fashion-MNIST is not here: apt-get install dataset-fashion-mnist (or let Keras "
            "download it once)")


def _ray_missing() -> str | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed (pip install -e '.[ray]', as `make test` does)"
    return None


def _needs(script: str) -> str | None:
    """Why this machine cannot run the script's quick mode, or None."""
    if script in ("experiment_throughput.py", "steps_per_call.py"):
        return _fashion_mnist_missing()
    if script == "ray_fanout.py":
        return _ray_missing()
    return None


def _run(script: str, timeout: float) -> tuple[int, str, str, float]:
    """The benchmark in a session of its own; on timeout, Ctrl-C for the whole group (so its
    `finally` blocks stop workers and clusters), then SIGKILL."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, f"benchmarks/{script}", "--quick"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"{script} --quick ran past {timeout} s\nstdout:\n{out[-3000:]}\n"
                    f"stderr:\n{err[-3000:]}")
    return proc.returncode, out, err, time.monotonic() - start


def test_every_benchmark_has_its_result_lines_here():
    assert sorted(RESULTS) == SCRIPTS, "a benchmark without an entry in RESULTS (or a stale one)"


def test_make_bench_runs_every_benchmark():
    recipe = re.search(r"^bench:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile has no bench target"
    text = recipe.group(1)
    assert "benchmarks/[!_]*.py" in text or all(f"benchmarks/{s}" in text for s in SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_quick_mode_runs_and_prints_its_results(script, record_property):
    assert script in RESULTS, f"add the result lines {script} prints to RESULTS"
    reason = _needs(script)
    if reason:
        _cannot_run(reason)
    code, out, err, seconds = _run(script, TIMEOUT.get(script, DEFAULT_TIMEOUT))
    record_property("seconds", round(seconds, 1))
    assert code == 0, (f"{script} --quick exited {code}\nstdout:\n{out[-3000:]}\n"
                       f"stderr:\n{err[-3000:]}")
    for pattern in RESULTS[script]:
        assert re.search(pattern, out), f"{script} --quick did not print /{pattern}/:\n{out}"
    if script == "steps_per_call.py":  # quick mode still compares several steps per call with one
        assert int(re.search(RESULTS[script][0], out).group(1)) > 1, out
    if script == "run_page.py":
        from benchmarks import _probe as probe

        missing = probe.browser_missing()
        if missing:
            _cannot_run(f"the AppTest part ran; the Chromium part cannot: {missing}")
        for pattern in BROWSER_RESULTS:
            assert re.search(pattern, out), f"run_page.py --quick did not print /{pattern}/:\n{out}"
