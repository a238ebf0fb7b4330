"""How fast does the queue react? With a real worker process on a temporary home:

- pickup: from `submit` returning to the job's status saying `running` (target: median <= 1 s);
- rounds -> status: from a round's line landing in rounds.jsonl to status.json reporting it.

    python benchmarks/queue_latency.py [--jobs 5] [--rounds 3] [--quick]

--quick: one job of one pruning round: the same code path in seconds, for tests/test_benchmarks.py;
its numbers mean little.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # benchmarks/_common.py: the command line they share
from jobs import queue
from lottery_engine.foundations import runfolder

ROOT = Path(__file__).resolve().parents[1]
JOB = """
run: {{name: latency-{i}, seed: {i}, device: cpu}}
data: {{source: bundled, name: digits, image_size: [16, 16], channels: 1, limit_total: 300}}
train: {{arch: lenet, epochs: 2, batch_size: 16}}
imp: {{prune_rate: 0.2, num_rounds: {rounds}}}
"""


def watch(home: Path, job_id: str, submitted: float, poll: float) -> tuple[float, list[float]]:
    """Poll the job's files until it ends; return pickup latency and per-round status lags."""
    pickup, line_seen, status_seen = None, {}, {}
    while True:
        now = time.time()
        status = queue.read_status(home / job_id)
        if pickup is None and status.get("state") != queue.QUEUED:
            pickup = now - submitted
        for record in runfolder.read_rounds(home / job_id):
            line_seen.setdefault(record["round"], now)
        for r in range(status.get("rounds_done", 0)):
            status_seen.setdefault(r, now)
        if status.get("state") in queue.FINISHED:
            return pickup, [status_seen[r] - line_seen[r] for r in line_seen if r in status_seen]
        time.sleep(poll)


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll", type=float, default=0.005, help="observer's poll period, s")
    args = _common.parse(parser, jobs=1, rounds=1)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        worker = subprocess.Popen([sys.executable, "-m", "jobs.cli", "worker", "--home",
                                   tmp, "--device", "cpu"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pickups, lags = [], []
        try:
            time.sleep(2.0)  # let the idle worker reach its polling loop
            for i in range(args.jobs):
                job_id = queue.submit(JOB.format(i=i, rounds=args.rounds), home)
                pickup, round_lags = watch(home, job_id, time.time(), args.poll)
                pickups.append(pickup)
                lags += round_lags
                print(f"job {i + 1}/{args.jobs}: pickup {pickup:.3f} s, rounds->status "
                      + ", ".join(f"{lag:.3f}" for lag in round_lags) + " s", flush=True)
        finally:
            worker.terminate()
            worker.wait(30)
    print(f"\npickup latency: median {statistics.median(pickups):.3f} s, max {max(pickups):.3f} s "
          f"over {len(pickups)} jobs (target median <= 1 s)")
    print(f"rounds.jsonl -> status.json: median {statistics.median(lags):.3f} s, "
          f"max {max(lags):.3f} s over {len(lags)} rounds")


if __name__ == "__main__":
    main()
