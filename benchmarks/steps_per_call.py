"""How much does running 30 training steps per call of the compiled step save? The engine's way
(Keras' steps_per_execution, chosen by `training.steps_per_execution`) against one step per call,
on the same run, side by side in one process with one TensorFlow thread (as experiment workers).

    python benchmarks/steps_per_call.py [--epochs 3] [--arch lenet_300_100] [--limit 0] [--quick]

The run: configs/fashion_<arch>.yaml (Fashion-MNIST, validation every 300 steps), round 0 and one
pruning round, no controls, no early stopping, so both ways train the same steps. Prints seconds
per epoch (validation included) and whether the two runs' records are identical.

--quick: 1,200 images, one epoch: the same code path in seconds (the engine still runs several
steps per call), for tests/test_benchmarks.py; its numbers mean nothing.
"""

from __future__ import annotations

import os
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
from lottery_engine.foundations import runfolder  # noqa: E402
from lottery_engine.training import round as training  # noqa: E402

KEYS = ("round", "val_accuracy", "test_accuracy", "early_stop_step", "global_sparsity")


def one_run(config: Path, epochs: int, limit: int, folder: Path) -> tuple[float, list[tuple]]:
    overrides = [f"train.epochs={epochs}", "train.early_stopping=false", "imp.num_rounds=1",
                 "imp.controls=[]", "report.html=false"]
    cfg = preflight.load(config, overrides + ([f"data.limit_total={limit}"] if limit else []))
    start = time.perf_counter()
    pipeline.execute(cfg, folder)
    records = runfolder.read_rounds(folder)
    per_epoch = (time.perf_counter() - start) / sum(r["epochs"] for r in records)
    return per_epoch, [tuple(r[k] for k in KEYS) for r in records]


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--arch", default="lenet_300_100", choices=["lenet_300_100", "lenet"])
    parser.add_argument("--limit", type=int, default=0, help="train + val images (0: all)")
    args = _common.parse(parser, epochs=1, limit=1200)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    config = ROOT / "configs" / f"fashion_{args.arch}.yaml"
    chosen, used = training.steps_per_execution, []

    def engine_way(*args_) -> int:  # the engine's choice, remembered for the printout
        used.append(chosen(*args_))
        return used[-1]

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for way in ("one step per call", "engine"):
            training.steps_per_execution = engine_way if way == "engine" else (lambda *_: 1)
            results[way] = one_run(config, args.epochs, args.limit,
                                   Path(tmp) / way.replace(" ", "-"))
    training.steps_per_execution = chosen
    one, engine = results["one step per call"], results["engine"]
    print(f"{args.arch}, {args.limit or 'all'} images, {args.epochs} epochs x 2 rounds, one "
          f"thread, validation every 300 steps")
    print(f"one step per call: {one[0]:.2f} s/epoch; engine ({used[0]} steps per "
          f"call): {engine[0]:.2f} s/epoch; ratio {one[0] / engine[0]:.2f}x")
    print(f"identical records: {one[1] == engine[1]}")


if __name__ == "__main__":
    main()
