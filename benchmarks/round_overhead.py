"""What does a fresh optimizer per round cost? Rebuilding the training step (a new FusedStep with
new optimizer variables, so TensorFlow traces it again) against resetting its optimizer state to
zero (the engine's way), on the same small run, side by side in one process.

    python benchmarks/round_overhead.py [--rounds 8] [--repeats 2] [--quick]

Prints seconds per trained series-round for each and the ratio; the results must be identical
(tests/lottery/test_pipeline.py checks that too). --quick: one round, one repeat: the same code path in
seconds, for tests/test_benchmarks.py; its numbers mean nothing.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _common  # noqa: E402  # benchmarks/_common.py: the command line they share
from lottery_engine import pipeline  # noqa: E402
from lottery_engine import preflight  # noqa: E402
from lottery_engine.foundations import runfolder  # noqa: E402
from lottery_engine.lottery.trainer import Trainer  # noqa: E402
from lottery_engine.training import round as training  # noqa: E402

CONFIG = {
    "run": {"name": "overhead", "seed": 1, "device": "cpu"},
    "data": {"source": "bundled", "name": "digits", "image_size": [8, 8], "limit_total": 300},
    # one series after another: each series-round takes the fused step afresh (a stack is
    # traced once per size and loaded, not reset)
    "train": {"arch": "lenet_300_100", "epochs": 1, "batch_size": 64, "stack": False},
    "imp": {"prune_rate": 0.2, "target_sparsity": 0.999,
            "controls": ["random_reinit", "random_prune"]},
    "report": {"html": False},
}


RESET_WAY = Trainer.epoch_trainer


def rebuild_every_round(self: Trainer) -> training.EpochTrainer:
    self._step = None
    return RESET_WAY(self)


def one_run(rounds: int, folder: Path) -> tuple[float, list[float]]:
    cfg = preflight.from_dict({**CONFIG, "imp": {**CONFIG["imp"], "num_rounds": rounds}})
    start = time.perf_counter()
    pipeline.execute(cfg, folder)
    seconds = time.perf_counter() - start
    trainings = 1 + 3 * rounds  # round 0, then the ticket and two controls per round
    series = runfolder.series(folder)
    return seconds / trainings, [r["val_accuracy"] for s in series.values() for r in s]


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = _common.parse(parser, rounds=1, repeats=1)
    times: dict[str, list[float]] = {"rebuild": [], "reset": []}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for way in ("rebuild", "reset") if repeat % 2 == 0 else ("reset", "rebuild"):
                Trainer.epoch_trainer = (rebuild_every_round if way == "rebuild"
                                         else RESET_WAY)
                per_round, accuracies = one_run(args.rounds, Path(tmp) / f"{way}-{repeat}")
                times[way].append(per_round)
                results[way] = accuracies
    Trainer.epoch_trainer = RESET_WAY
    rebuild, reset = (statistics.median(times[w]) for w in ("rebuild", "reset"))
    print(f"{args.rounds} rounds x (ticket + 2 controls), {args.repeats} repeats, rotating order")
    print(f"rebuild per round: {rebuild:.3f} s/series-round; reset: {reset:.3f} s; "
          f"reset/rebuild = {reset / rebuild:.3f}; saved {rebuild - reset:.3f} s per "
          f"series-round")
    print(f"identical val accuracies: {results['rebuild'] == results['reset']}")


if __name__ == "__main__":
    main()
