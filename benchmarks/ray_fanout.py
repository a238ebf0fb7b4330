"""The same small jobs through one local worker and through a two-node local Ray cluster, side by
side in one run: wall time of each way and the cost per job of going through Ray.

    python benchmarks/ray_fanout.py [--jobs 4] [--rounds 3] [--epochs 2] [--quick]

The jobs: the conv LeNet on the bundled digits (16x16), one-thread each. The local worker runs them
one after another (`lottery worker --threads 1`); the Ray worker runs two at a time on two one-CPU
nodes (`lottery worker --ray ADDRESS --max-jobs 2`). Per job, "outside the engine" is the time from
claim to recorded end minus the engine's own time (progress.json's `elapsed`): process start and
TensorFlow import for both ways, plus Ray's scheduling, shipping and streaming for Ray. The Ray
overhead per job is the difference of the two means. Cluster start-up is printed, not counted.

--quick: two jobs of one pruning round, one epoch each: the same code path (a real two-node local
cluster) in well under a minute, for tests/test_benchmarks.py; its numbers mean little.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402  # benchmarks/_common.py: the command line they share
from jobs import queue, ray_local  # noqa: E402

CONFIG = """
run: {{name: fanout-{i}, seed: {i}, device: cpu}}
data: {{source: bundled, name: digits, image_size: [16, 16], channels: 1}}
train: {{arch: lenet, epochs: {epochs}, batch_size: 32}}
imp: {{prune_rate: 0.2, num_rounds: {rounds}, target_sparsity: 0.99}}
"""


def run_jobs(home: Path, n: int, rounds: int, epochs: int, worker_args: list[str]) -> dict:
    """Submit n jobs, serve them with one worker process, return wall time and per-job costs."""
    home.mkdir(parents=True)
    ids = [queue.submit(CONFIG.format(i=i, rounds=rounds, epochs=epochs), home) for i in range(n)]
    start = time.perf_counter()
    worker = subprocess.Popen([sys.executable, "-m", "jobs.cli", "worker", "--home",
                               str(home), *worker_args], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL,
                              env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        while not all(queue.get(j, home)["state"] in queue.FINISHED for j in ids):
            if worker.poll() is not None:
                raise SystemExit(f"the worker ({worker_args}) ended with {worker.returncode}")
            time.sleep(0.2)
        wall = time.perf_counter() - start
    finally:
        worker.terminate()
        worker.wait()
    statuses = [queue.get(j, home) for j in ids]
    failed = [s for s in statuses if s["state"] != queue.DONE]
    if failed:
        raise SystemExit(f"jobs did not finish: {failed}")
    outside = [s["finished"] - s["claimed"] - s["elapsed"] for s in statuses]
    nodes = {s["node"]["id"][:8] for s in statuses if s.get("node")}
    return {"wall": wall, "outside": statistics.mean(outside), "nodes": len(nodes)}


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    args = _common.parse(parser, jobs=2, rounds=1, epochs=1)
    shape = (args.jobs, args.rounds, args.epochs)
    with tempfile.TemporaryDirectory() as tmp:
        local = run_jobs(Path(tmp) / "local", *shape, ["--threads", "1"])
        began = time.perf_counter()
        cluster = ray_local.start(nodes=2, cpus=1, head_cpus=0)
        print(f"two-node Ray cluster started in {time.perf_counter() - began:.1f} s")
        try:
            remote = run_jobs(Path(tmp) / "ray", *shape, ["--ray", cluster.address,
                                                           "--max-jobs", "2"])
        finally:
            cluster.stop()
    print(f"{args.jobs} jobs of {args.rounds + 1} rounds x {args.epochs} epochs")
    print(f"  one local worker:       {local['wall']:6.1f} s wall, "
          f"{local['outside']:.2f} s per job outside the engine")
    print(f"  Ray, 2 nodes x 1 CPU:   {remote['wall']:6.1f} s wall, "
          f"{remote['outside']:.2f} s per job outside the engine, on {remote['nodes']} nodes")
    print(f"  speed-up {local['wall'] / remote['wall']:.2f}x; Ray overhead per job "
          f"(scheduling + shipping + streaming) {remote['outside'] - local['outside']:+.2f} s")


if __name__ == "__main__":
    main()
