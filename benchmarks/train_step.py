"""Is the engine's own training step faster than Keras' fit, and does it find the same tickets?

1. Speed: training steps per second of one series (the run's own epoch order, batch 60, Adam,
   validation left out) on Keras' fit (`train.step: keras`, the former path) and on the fused
   step in graph mode and with XLA, for LeNet-300-100 and the conv LeNet on Fashion-MNIST, with
   1 and 2 TensorFlow threads. Each (network, threads) runs in a subprocess of its own (the thread
   count is fixed when TensorFlow starts) and times the paths in alternating repeats, best of
   --repeats. Targets at one thread: fused >= 1.6x fit on both networks. The last column is
   `train.stack`'s: a round's ticket and both controls trained as one stack of 3 (series-steps
   per second, so comparable with the others); target >= 1.8x fit for a run with both controls.
2. Statistics: the published protocol's LeNet-300-100 (configs/fashion_lenet_300_100.yaml,
   early stopping; --arch lenet: configs/fashion_lenet.yaml) for --seeds seeds x --rounds rounds
   with both controls, on two paths (--compare NEW OLD: fused fit by default, or stacked fused).
   Per round, the paired differences of test accuracy at early stop (NEW - OLD, one pair per seed:
   the mean of its series) with their 95% t intervals: the new path must find tickets of the
   same quality; an interval that excludes 0 is a difference. The two paths cannot agree bit
   for bit (a ulp anywhere grows to ~1e-2 in the weights within 200 steps).

    python benchmarks/train_step.py [--steps 900] [--repeats 3] [--seeds 3] [--first-seed 0]
                                    [--rounds 6] [--epochs 15] [--part speed|stats|both] [--quick]
                                    [--compare NEW OLD] [--arch lenet_300_100|lenet] [--save F]

--quick: 1,200 images, a few steps, one thread, one seed, one round of one epoch: the same code paths in
seconds, for tests/test_benchmarks.py; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402  # benchmarks/_common.py: the command line they share
from lottery_engine.foundations import quiet_import  # noqa: E402

quiet_import.tensorflow()
import tensorflow as tf  # noqa: E402

from lottery_engine import pipeline  # noqa: E402
from lottery_engine import preflight  # noqa: E402
from lottery_engine.config import load as config_lib  # noqa: E402
from lottery_engine.data import dataset as data_lib  # noqa: E402
from lottery_engine.evaluation import significance  # noqa: E402
from lottery_engine.foundations import runfolder  # noqa: E402
from lottery_engine.lottery import runtime  # noqa: E402
from lottery_engine.lottery.trainer import Trainer  # noqa: E402
from lottery_engine.training import round as training  # noqa: E402
from lottery_engine.training.stacked_step import StackedStep  # noqa: E402

PATHS = {"keras fit": ["train.step=keras"],
         "fused, graph": ["train.step=fused", "train.jit_compile=false"],
         "fused, XLA": ["train.step=fused", "train.jit_compile=true"]}
STACKED = "stacked x3"  # series-steps per second of a stack of 3 (train.stack)
STACKED_XLA = "stacked x3, XLA"


class NoValidation:
    """The step clock without validation: a speed measurement of training steps alone."""

    def reached(self, step: int) -> bool:
        return False


def _config(arch: str, overrides: list[str], limit: int) -> config_lib.Config:
    limited = [f"data.limit_total={limit}"] if limit else []
    return preflight.load(ROOT / "configs" / f"fashion_{arch}.yaml", overrides + limited)


def speed_worker(arch: str, threads: int, steps: int, repeats: int, limit: int) -> dict:
    """Steps per second of each path, in this process (its thread count already set)."""
    runtime.setup_runtime("cpu")
    base = _config(arch, [], limit)
    data = data_lib.load(base.data, base.run.seed)
    order = training.epoch_order(base.run.seed, 0, len(data.y_train))[:steps * 60]
    best = {name: float("inf") for name in [*PATHS, STACKED, STACKED_XLA]}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {name: Trainer(_config(arch, overrides, limit), data, Path(tmp))
                    for name, overrides in PATHS.items()}
        for name, trainer in list(trainers.items()):  # trace and compile outside the timing
            try:
                trainer.epoch_trainer()(order, 0, NoValidation())
            except config_lib.ConfigError:  # XLA refuses the model (max pooling)
                del trainers[name]
        # the ticket and both controls as one stack: three series per step
        model, masks = trainers["keras fit"].model, trainers["keras fit"].manager
        rows = order.reshape(-1, 60)
        chunks = [rows[i:i + 30] for i in range(0, len(rows), 30)]
        stacks = {}
        for name, jit in ((STACKED, False), (STACKED_XLA, True)):
            stack = StackedStep(model, masks.kernel_variables, 3,
                                (tf.constant(data.x_train), tf.constant(data.y_train)),
                                base.train, jit_compile=jit)
            stack.load([model.get_weights()] * 3, [masks.masks] * 3)
            try:
                stack.run(chunks[0], 0)  # traces and compiles
            except tf.errors.UnimplementedError:  # XLA refuses the model (max pooling)
                continue
            stacks[name] = stack
        for _ in range(repeats):
            for name, trainer in trainers.items():
                train_epoch = trainer.epoch_trainer()
                start = time.perf_counter()
                train_epoch(order, 0, NoValidation())
                best[name] = min(best[name], time.perf_counter() - start)
            for name, stack in stacks.items():
                start = time.perf_counter()
                for chunk in chunks:
                    stack.run(chunk, 0)
                best[name] = min(best[name], (time.perf_counter() - start) / 3)
    return {name: len(order) / 60 / seconds if seconds < float("inf") else None
            for name, seconds in best.items()}


def speed(args: argparse.Namespace) -> None:
    print(f"1. steps per second of one series (batch 60, Adam, {args.steps} steps, best of "
          f"{args.repeats} alternating repeats; validation left out)")
    print(f"{'network':<15}{'threads':>8}" + "".join(f"{name:>15}" for name in PATHS)
          + f"{'fused/fit':>11}{STACKED:>12}{STACKED_XLA:>17}{'stacked/fit':>13}")
    for arch in ("lenet_300_100", "lenet"):
        for threads in args.threads:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", arch, str(threads), "--steps",
                 str(args.steps), "--repeats", str(args.repeats), "--limit", str(args.limit)],
                check=True, capture_output=True, text=True).stdout
            rates = json.loads(out.strip().splitlines()[-1])
            fused = max(rates["fused, graph"], rates["fused, XLA"] or 0)
            stacked = max(rates[STACKED], rates[STACKED_XLA] or 0)
            print(f"{arch:<15}{threads:>8}"
                  + "".join(f"{rates[name]:>15.0f}" if rates[name] else
                            f"{'refused':>15}" for name in PATHS)
                  + f"{fused / rates['keras fit']:>10.2f}x{rates[STACKED]:>12.0f}"
                  + (f"{rates[STACKED_XLA]:>17.0f}" if rates[STACKED_XLA] else f"{'refused':>17}")
                  + f"{stacked / rates['keras fit']:>12.2f}x")


# the paths the statistics part can compare: the config overrides of each
STATS_PATHS = {"fit": ["train.step=keras"],
               "fused": ["train.step=fused", "train.stack=false"],
               "stacked": ["train.step=fused", "train.stack=true"]}


def stats(args: argparse.Namespace) -> None:
    new, old = args.compare
    print(f"\n2. test accuracy at early stop, {new} - {old}, {args.arch}, {args.seeds} seeds from "
          f"{args.first_seed} x {args.rounds} rounds, both controls; the seed is the unit of "
          f"pairing")
    records: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in (old, new):
            start = time.perf_counter()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                cfg = _config(args.arch, [
                    f"run.seed={seed}", *STATS_PATHS[name], f"train.epochs={args.epochs}",
                    f"imp.num_rounds={args.rounds}", "report.html=false"], args.limit)
                folder = Path(tmp) / f"{name}-{seed}"
                pipeline.execute(cfg, folder)
                for series, rounds in runfolder.series(folder).items():
                    for record in rounds:
                        records.setdefault(name, {})[(seed, series, record["round"])] = record
            paths = sorted({str(r.get("train_step")) for r in records[name].values()})
            print(f"{name}: {time.perf_counter() - start:.0f} s, records of {', '.join(paths)}")
    if args.save:
        Path(args.save).write_text(json.dumps(
            [{"path": name, "seed": seed, "series": series, "round": round_index,
              **{key: record[key] for key in ("early_stop_test_accuracy", "early_stop_step",
                                              "early_stop_val_loss", "steps")}}
             for name, by_key in records.items()
             for (seed, series, round_index), record in sorted(by_key.items())], indent=1))
    contain = True
    seeds = sorted({key[0] for key in records[old]})
    for round_index in range(args.rounds + 1):
        # the seed is the unit: a seed's series share masks and data, so they are not
        # independent pairs; each seed gives the mean of its series' differences
        present = sorted({key[1] for key in records[old] if key[2] == round_index})
        per_series = {series: [[records[name][(seed, series, round_index)]
                                ["early_stop_test_accuracy"] for seed in seeds]
                               for name in (new, old)]
                      for series in (present if round_index else ["imp"])}  # round 0: shared
        averaged = significance.paired(*(
            [sum(values[side][i] for values in per_series.values()) / len(per_series)
             for i in range(len(seeds))] for side in (0, 1)))
        contain &= not averaged.significant
        print(f"round {round_index}: {averaged.text()}, the mean of its series per seed")
        for series, (ours, theirs) in per_series.items() if round_index else ():
            print(f"    {series}: {significance.paired(ours, theirs).text()}")
    print(f"every interval contains 0: {contain}")


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--save", help="a .json file for every record's test accuracy, early-stop step and val loss")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--compare", nargs=2, metavar=("NEW", "OLD"), default=["fused", "fit"],
                        choices=list(STATS_PATHS), help="the two paths of the statistics part")
    parser.add_argument("--arch", default="lenet_300_100", choices=["lenet_300_100", "lenet"],
                        help="the network of the statistics part")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--limit", type=int, default=0, help="train + val images (0: all)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--part", choices=["speed", "stats", "both"], default="both")
    parser.add_argument("--worker", nargs=2, metavar=("ARCH", "THREADS"), help=argparse.SUPPRESS)
    args = _common.parse(parser, steps=8, repeats=1, seeds=1, rounds=1, epochs=1,
                         limit=1200, threads=[1])
    if args.worker:
        threads = int(args.worker[1])
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        print(json.dumps(speed_worker(args.worker[0], threads, args.steps, args.repeats,
                                      args.limit)))
        return
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if args.part in ("speed", "both"):
        speed(args)
    if args.part in ("stats", "both"):
        stats(args)


if __name__ == "__main__":
    main()
