"""One VGG16 IMP round with the frozen-base feature cache off and on, side by side.

2,000 images at 128x128 (generated JPEG folder, flat cat/dog layout), `weights: none`, two epochs,
one pruned round (prune, rewind, fresh optimizer, train, evaluate). The cache's one-time fill is
reported apart from the round. Target: the round with the cache >= 20x faster.

    python benchmarks/vgg_round.py [--images 2000] [--size 128] [--epochs 2] [--quick]

--quick: 64 images at 32x32 (VGG16's smallest input), one epoch: the same code path in seconds,
for tests/test_benchmarks.py; its numbers mean nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_scale import generate  # noqa: E402

import _common  # noqa: E402  # benchmarks/_common.py: the command line they share
from lottery_engine import preflight  # noqa: E402
from lottery_engine.config import load as config_lib  # noqa: E402
from lottery_engine.data import dataset as data_lib  # noqa: E402
from lottery_engine.foundations.events import IMP  # noqa: E402
from lottery_engine.lottery import runtime  # noqa: E402
from lottery_engine.lottery.trainer import Trainer  # noqa: E402


def one_round(cfg: config_lib.Config, dataset: data_lib.Dataset, run_dir: Path) -> tuple[float, float]:
    """Seconds to set up (feature cache fill when on) and for one pruned round."""
    start = time.perf_counter()
    trainer = Trainer(cfg, dataset, run_dir)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    trainer.manager.prune(cfg.imp.prune_rate, cfg.imp.scope, cfg.imp.layer_rates)
    trainer.manager.rewind()
    result = trainer.train(1, IMP)
    record = trainer.evaluate(1, IMP, result)
    elapsed = time.perf_counter() - start
    print(f"  feature_cache={cfg.train.feature_cache!s:<5}  setup {setup:7.1f} s   round "
          f"{elapsed:7.1f} s   val acc {record.val_accuracy:.4f}", flush=True)
    return setup, elapsed


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2)
    args = _common.parse(parser, images=64, size=32, epochs=1)
    runtime.setup_runtime("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "train"
        folder.mkdir()
        generate(folder, args.images, args.size)
        os.environ["LOTTERY_CACHE"] = str(Path(tmp) / "cache")
        results = {}
        for cache in (False, True):
            cfg = preflight.from_dict({
                "run": {"name": "vgg-round", "seed": 0, "device": "cpu"},
                "data": {"source": "folder", "data_dir": str(folder),
                         "image_size": [args.size, args.size], "channels": 3},
                "train": {"arch": "vgg16", "weights": "none", "epochs": args.epochs,
                          "batch_size": 32, "feature_cache": cache},
                "imp": {"num_rounds": 1}})
            dataset = data_lib.load(cfg.data, cfg.run.seed)
            results[cache] = one_round(cfg, dataset, Path(tmp) / f"run-{cache}")
    (_, off), (fill, on) = results[False], results[True]
    print(f"\nVGG16 round, {args.images} images at {args.size}x{args.size}, {args.epochs} epochs:")
    print(f"  through the frozen base: {off:.1f} s per round")
    print(f"  on cached features:      {on:.1f} s per round (+ {fill:.1f} s once to fill the cache)")
    print(f"  speed-up per round: {off / on:.0f}x (target >= 20x)")


if __name__ == "__main__":
    main()
