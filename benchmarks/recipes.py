"""Do the masks and the step clock stay cheap on a deep, BatchNorm-heavy network trained with the
literature's recipe? The engine's time per training step for ResNet-20 against plain Keras `fit` of
the same model and recipe, side by side in one process with one TensorFlow thread.

    python benchmarks/recipes.py [--steps 20] [--repeats 3] [--xla] [--quick]

The recipe on both: 32x32x3 generated images (a .npz, data.source arrays), batch 128, SGD with
Keras' momentum 0.9, weight decay 1e-4 (L2 on every trainable variable, through the gradient), a
step schedule (x0.1 at epochs 1 and 2) after 10 warm-up steps, flip + crop augmentation.

- engine: a Trainer on that config, its real path (`trainer.epoch_trainer()`: the fused step
  with the masks as constraints, the learning rate and augmentation on the step clock, `chunk`
  steps per call), validation left out;
- keras fit: the same network, unmasked, compiled with keras.optimizers.SGD (same momentum and
  Nesterov setting), a LearningRateSchedule computing recipes.learning_rate, the decay added to
  every trainable variable's gradient in a custom train_step, and recipes.augment in a tf.data
  map (the same function, keyed by the same step), `fit` with the engine's steps per call.

Both gather their batches from the same resident tensors in the same order. First both train 3
steps from the same θ0 and their weights are compared, beside the engine against itself with one
weight of θ0 one ulp off: the same recipe differs by no more than that noise floor (later weights
say nothing: at this rate one ulp grows to the weights' own size within 20 steps). Each path is then timed over --steps steps, best of --repeats
alternating repeats, after a warm-up call that traces and compiles. Graph mode on both; --xla
adds the engine under XLA (on a 2-core CPU it had not finished in 11 minutes; Keras 3 turns XLA off
under the op determinism the engine's runtime sets, so fit stays in graph mode). Target: engine
<= 1.10x Keras fit.
The load average is printed before and after: other work on the machine skews the numbers.

--quick: 16x16 images, batch 8, 2 steps, 1 repeat: the same code path in seconds, for
tests/test_benchmarks.py; its numbers mean nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402  # benchmarks/_common.py: the command line they share
from lottery_engine.foundations import quiet_import  # noqa: E402

quiet_import.tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from lottery_engine import preflight  # noqa: E402
from lottery_engine.data import dataset as data_lib  # noqa: E402
from lottery_engine.lottery import runtime  # noqa: E402
from lottery_engine.lottery.trainer import Trainer  # noqa: E402
from lottery_engine.models import builders as models  # noqa: E402
from lottery_engine.models import literature_models  # noqa: E402
from lottery_engine.training import recipes  # noqa: E402
from lottery_engine.training import round as training  # noqa: E402

TARGET = 1.10
CHECKED_STEPS = 3  # steps from the same θ0 after which both paths' weights are compared
RECIPE = ["train.arch=resnet20", "train.optimizer=sgd", "train.learning_rate=0.1",
          "train.momentum=0.9", "train.weight_decay=0.0001", "train.lr_schedule=step",
          "train.epochs=3", "train.milestones=[1, 2]", "train.gamma=0.1",
          "train.warmup_steps=10", "data.augment=[flip, crop]", "imp.rewind=init"]


class NoValidation:
    """The step clock without validation: a speed measurement of training steps alone."""

    def reached(self, step: int) -> bool:
        return False


class StepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The engine's learning rate (recipes.learning_rate) as a Keras schedule."""

    def __init__(self, cfg, steps_per_epoch: int):
        self.cfg, self.steps_per_epoch = cfg, steps_per_epoch

    def __call__(self, step):
        return recipes.learning_rate(self.cfg, tf.cast(step, tf.int64), self.steps_per_epoch)


class DecayedFit(keras.Model):
    """A network whose `fit` adds L2 weight decay to every trainable variable's gradient (Keras
    3's custom train_step pattern), as the engine's step does by default (weight_decay_on:
    all)."""

    def __init__(self, net: keras.Model, weight_decay: float):
        super().__init__()
        self.net, self.weight_decay = net, weight_decay

    def call(self, x, training=False):
        return self.net(x, training=training)

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            predicted = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=predicted, training=True)
        variables = self.trainable_variables
        gradients = tape.gradient(loss, variables)
        gradients = [g + self.weight_decay * v.value for g, v in zip(gradients, variables)]
        self.optimizer.apply(gradients, variables)
        return self.compute_metrics(x, y, predicted)


def generated_npz(path: Path, side: int, train: int, seed: int = 0) -> None:
    """Random uint8 images and labels; x_val and x_test given, so every train row trains."""
    rng = np.random.default_rng(seed)
    parts = {"train": train, "val": 64, "test": 64}
    arrays = {}
    for part, n in parts.items():
        arrays[f"x_{part}"] = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
        arrays[f"y_{part}"] = np.arange(n) % 10
    np.savez(path, **arrays)


def keras_fit(cfg, train: tuple[tf.Tensor, tf.Tensor], chunk: int):
    """Plain Keras fit of the same network and recipe: the network, and one epoch's training on
    an order."""
    keras.utils.set_random_seed(cfg.run.seed)
    net = literature_models.resnet20(tuple(train[0].shape[1:]), 10)
    model = DecayedFit(net, cfg.train.weight_decay)
    steps_per_epoch = -(-int(train[0].shape[0]) // cfg.train.batch_size)
    model.compile(optimizer=keras.optimizers.SGD(StepSchedule(cfg.train, steps_per_epoch),
                                                 momentum=cfg.train.momentum,
                                                 nesterov=cfg.train.nesterov),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=models.is_logits(net, "auto")),
                  metrics=["accuracy"], steps_per_execution=chunk, jit_compile=False)
    x, y = train
    kinds, seed = tuple(cfg.data.augment), cfg.run.seed

    def batch(step, rows):
        return recipes.augment(tf.gather(x, rows), seed, 0, step, kinds), tf.gather(y, rows)

    def train_epoch(order: np.ndarray) -> None:
        rows = tf.data.Dataset.from_tensor_slices(order).batch(cfg.train.batch_size)
        dataset = rows.enumerate().map(batch).prefetch(tf.data.AUTOTUNE)
        model.fit(dataset, epochs=1, verbose=0, shuffle=False)

    return net, train_epoch


def largest_difference(a: keras.Model, b: keras.Model) -> float:
    """The largest difference of two models' weights, relative to each variable's largest value
    (BatchNorm's moving variances of raw 0..255 images are in the thousands)."""
    return max(float(np.max(np.abs(u - v)) / max(np.max(np.abs(u)), 1e-12))
               for u, v in zip(a.get_weights(), b.get_weights()))


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--steps", type=int, default=20, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--side", type=int, default=32, help="image side")
    parser.add_argument("--xla", action="store_true", help="also time both paths under XLA")
    args = _common.parse(parser, steps=2, repeats=1, batch=8, side=16)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    runtime.setup_runtime("cpu")
    print(f"load average before: {load_average()}")
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "generated.npz"
        generated_npz(npz, args.side, args.steps * args.batch)
        base = RECIPE + ["data.source=arrays", f"data.path={npz}",
                         f"train.batch_size={args.batch}", "imp.controls=[]"]
        cfg = preflight.loads("{}", overrides=base)
        data = data_lib.load(cfg.data, cfg.run.seed)
        order = training.epoch_order(cfg.run.seed, 0, len(data.y_train))
        trainers = {jit: Trainer(preflight.loads(
            "{}", overrides=base + [f"train.jit_compile={str(jit).lower()}"]), data,
            Path(tmp) / str(jit)) for jit in ((False, True) if args.xla else (False,))}
        timed = {f"engine ({'XLA' if jit else 'graph'})":
                 lambda engine=trainer.epoch_trainer(): engine(order, 0, NoValidation())
                 for jit, trainer in trainers.items()}
        train = (tf.constant(trainers[False].inputs["train"]), tf.constant(data.y_train))
        net, fit = keras_fit(cfg, train, training.steps_per_execution(args.steps, None, 0))
        timed["keras fit (graph)"] = lambda: fit(order)
        # a few steps from the same θ0: fit against the engine, and the engine against itself
        # with one weight one ulp off (the noise floor); these calls also trace and compile
        first = order[:min(CHECKED_STEPS, args.steps) * args.batch]
        nudged = Trainer(trainers[False].cfg, data, Path(tmp) / "nudged")
        weights = nudged.model.get_weights()
        weights[0].flat[0] = np.nextafter(weights[0].flat[0], np.float32(np.inf))
        nudged.model.set_weights(weights)
        for trainer in (trainers[False], nudged):
            trainer.epoch_trainer()(first, 0, NoValidation())
        fit(first)
        same = largest_difference(trainers[False].model, net)
        floor = largest_difference(trainers[False].model, nudged.model)
        for run in timed.values():  # trace and compile the rest outside the timing
            run()
        for _ in range(args.repeats):
            for name, run in timed.items():
                start = time.perf_counter()
                run()
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    print(f"resnet20, {args.side}x{args.side}x3 generated images, batch {args.batch}, SGD + "
          f"momentum + weight decay + step schedule + warm-up + flip/crop, one thread, "
          f"{args.steps} steps, best of {args.repeats} alternating repeats")
    for name, seconds in best.items():
        print(f"{name + ':':<20} {1000 * seconds / args.steps:8.1f} ms/step")
    engine, fit = best["engine (graph)"], best["keras fit (graph)"]
    print(f"same recipe: weights after {min(CHECKED_STEPS, args.steps)} steps from the same "
          f"init differ by at most {same:.1e} (relative); one weight one ulp off: {floor:.1e}")
    print(f"engine / keras fit = {engine / fit:.3f}x (graph mode on both; target <= {TARGET:.2f}x)")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
