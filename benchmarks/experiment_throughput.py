"""Series-epochs per minute of one small experiment: one worker at all threads vs one single-thread
worker per core, side by side in one run.

    python benchmarks/experiment_throughput.py [--seeds 2] [--limit 0] [--epochs 3] [--quick]

The experiment: LeNet-300-100 on Fashion-MNIST (all of it by default), one pruning round, the random reinit
control, early stopping off so both ways train exactly the same steps. Each way submits it to a
fresh queue home and starts its workers through `lottery experiment --workers N --threads T`; wall
time is from submission to the last job's end, TensorFlow start-up included. A series-epoch is one
epoch of one series (ticket or control) of one round.

--quick: one seed, 600 images, one epoch: the same code path in under a minute, for
tests/test_benchmarks.py; its numbers mean nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402  # benchmarks/_common.py: the command line they share
from lottery_engine.foundations import runfolder  # noqa: E402
from lottery_engine.foundations.events import IMP  # noqa: E402


def series_epochs(home: Path) -> int:
    """Epochs trained, over every job, series and round (a control's round 0 is the ticket's)."""
    total = 0
    for job in home.iterdir():
        if (job / runfolder.ROUNDS).is_file():
            for name, records in runfolder.series(job).items():
                total += sum(r.epochs for r in records if name == IMP or r.round > 0)
    return total


def measure(spec: Path, workers: int, threads: int, work: Path) -> tuple[float, int]:
    home = work / f"home-{workers}x{threads}"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "experiment", "--config",
                           str(spec), "--home", str(home), "--workers", str(workers),
                           "--threads", str(threads), "--results",
                           str(work / f"results-{workers}x{threads}.md")],
                          cwd=ROOT, capture_output=True, text=True,
                          env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode:
        raise SystemExit(f"the experiment failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start, series_epochs(home)


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="train + val images (0: all)")
    parser.add_argument("--epochs", type=int, default=3)
    args = _common.parse(parser, seeds=1, limit=600, epochs=1)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec = work / "experiment.yaml"
        spec.write_text(
            "name: throughput\nruns:\n  - label: LeNet-300-100\n"
            f"    config: {ROOT / 'configs' / 'fashion_lenet_300_100.yaml'}\n"
            f"    seeds: {list(range(args.seeds))}\n"
            f"    set: ['data.limit_total={args.limit or 'null'}', 'imp.num_rounds=1', "
            f"'train.epochs={args.epochs}', 'train.early_stopping=false', "
            f"'imp.controls=[random_reinit]']\n")
        print(f"{args.seeds} jobs (seeds), {args.limit or 'all'} images, {args.epochs} epochs, "
              f"1 pruning round, ticket + random reinit; {cores} cores")
        rows = []
        for workers, threads in ((1, cores), (cores, 1)):
            seconds, epochs = measure(spec, workers, threads, work)
            rate = epochs / (seconds / 60)
            rows.append(rate)
            print(f"{workers} worker(s) x {threads} thread(s): {seconds:6.1f} s, {epochs} "
                  f"series-epochs, {rate:6.1f} series-epochs/min")
        print(f"ratio ({cores} x 1 thread) / (1 x {cores} threads): {rows[1] / rows[0]:.2f}")


if __name__ == "__main__":
    main()
