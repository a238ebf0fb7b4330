"""What does keeping pruned weights at zero cost per epoch?

In one process, the same LeNet on the same data is trained
  (a) dense, no masks;
  (b) with a per-batch Python callback that re-multiplies every kernel by its mask (the slow design);
  (c) with the engine's enforcement: a mask constraint applied inside the compiled train step.
Each design trains REPEATS times one warm-up epoch (tracing) plus EPOCHS timed epochs, interleaved in
a rotating order so that machine noise (large on a shared VM) hits all three alike. Prints median epoch seconds and the ratios c/a and b/a.

    python benchmarks/mask_overhead.py [--size 64] [--epochs 3] [--repeats 6] [--quick]

--quick: 16x16 images, one timed epoch, one repeat: the same code path in seconds, for
tests/test_benchmarks.py; its numbers mean nothing.
"""

from __future__ import annotations

import gc
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import _common  # noqa: E402  # benchmarks/_common.py: the command line they share
from lottery_engine.config.architectures import prunable_layers  # noqa: E402
from lottery_engine.config.load import DataConfig, TrainConfig  # noqa: E402
from lottery_engine.data import dataset as data_lib  # noqa: E402
from lottery_engine.lottery import runtime  # noqa: E402
from lottery_engine.models import builders as models  # noqa: E402
from lottery_engine.pruning.masks import MaskManager, magnitude_prune  # noqa: E402
from lottery_engine.pruning.prunable import select  # noqa: E402
from lottery_engine.training import keras_fit  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


class RemaskEveryBatch(keras.callbacks.Callback):
    """The design this project replaces: Python re-applies masks after every batch."""

    def __init__(self, kernels_and_masks):
        super().__init__()
        self.kernels_and_masks = kernels_and_masks

    def on_train_batch_end(self, batch, logs=None):
        for kernel, mask in self.kernels_and_masks:
            kernel.assign(kernel * mask)


def epoch_times(design: str, x, y, epochs: int, batch_size: int) -> list[float]:
    keras.utils.set_random_seed(0)
    model = models.build(TrainConfig(arch="lenet"), x.shape[1:], 10)
    prunable = prunable_layers("lenet")
    callbacks: list[keras.callbacks.Callback] = []
    if design == "engine":
        manager = MaskManager(model, select(model, prunable))
        manager.prune(0.8, "global", {})
        manager.rewind()
    elif design == "callback":
        kernels = {n: model.get_layer(n).kernel for n in prunable}
        masks = magnitude_prune({n: k.numpy() for n, k in kernels.items()},
                                {n: np.ones(k.shape, np.float32) for n, k in kernels.items()}, 0.8)
        pairs = [(kernels[n], keras.ops.convert_to_tensor(masks[n])) for n in prunable]
        for kernel, mask in pairs:
            kernel.assign(kernel * mask)
        callbacks.append(RemaskEveryBatch(pairs))
    keras_fit.compile_model(model, TrainConfig(), False)
    timer = EpochTimer()
    model.fit(x, y, batch_size=batch_size, epochs=epochs + 1, verbose=0, shuffle=True,
              callbacks=callbacks + [timer])
    return timer.seconds[1:]


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--size", type=int, default=64, help="image side (default 64)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    args = _common.parse(parser, size=16, epochs=1, repeats=1)
    runtime.setup_runtime("cpu")
    dataset = data_lib.load(DataConfig(image_size=[args.size, args.size]), seed=0)
    x, y = dataset.x_train, dataset.y_train
    times: dict[str, list[float]] = {"dense": [], "callback": [], "engine": []}
    designs = list(times)
    for repeat in range(args.repeats):
        for design in designs[repeat % 3:] + designs[:repeat % 3]:  # rotate: no design always first
            keras.backend.clear_session()
            gc.collect()
            times[design] += epoch_times(design, x, y, args.epochs, args.batch_size)
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    median = {d: statistics.median(t) for d, t in times.items()}
    batches = -(-len(y) // args.batch_size)
    print(f"\nLeNet at {args.size}x{args.size}x1, {len(y)} images, {batches} batches/epoch, "
          f"{args.repeats}x{args.epochs} timed epochs per design")
    for design, label in (("dense", "(a) dense, no masks"),
                          ("callback", "(b) per-batch callback"),
                          ("engine", "(c) engine: mask in the train step")):
        print(f"  {label:<38} median epoch {median[design]:.3f} s")
    print(f"  ratio c/a = {median['engine'] / median['dense']:.3f}   (target <= 1.05)")
    print(f"  ratio b/a = {median['callback'] / median['dense']:.3f}")


if __name__ == "__main__":
    main()
