"""A round's series trained together: S copies of one network as a single stack.

The ticket and its controls of one round train on the same batches in the same order (training.py),
so one step can train all of them: every kernel, bias, mask and optimizer slot gets a leading
series axis, a Dense layer becomes one matrix product per series in a single batched matmul (the
first one a single wide GEMM on the shared batch), and a Conv2D a grouped convolution whose group
g is series g. Small networks leave a CPU core mostly waiting on per-op overhead; a stack of three
does three networks' arithmetic for about one network's overhead.

What the stack can express: a Sequential model of Rescaling, Flatten, Dense, Conv2D (channels
last, one group, no softmax) and MaxPooling2D layers whose output is a softmax or logits over two
or more classes, every kernel with at most the engine's mask as constraint: the built-in LeNets.
`refusal` says why any other model cannot be stacked; the engine then trains its series one after
another (imp.py). The update is FusedOptimizer's, elementwise, so each series is updated exactly as
alone; the forward pass sums in another order than the unstacked model's, so stacked and single
training agree statistically, not bit for bit (benchmarks/train_step.py compares them).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from . import recipes
from .masks import MaskConstraint
from .schema import TrainConfig
from .train_step import FusedOptimizer, batch_of, decays, each_step

_PLAIN = (keras.layers.Rescaling, keras.layers.Flatten, keras.layers.MaxPooling2D)
_STACKABLE = (*_PLAIN, keras.layers.Dense, keras.layers.Conv2D)


def refusal(model: keras.Model) -> str | None:
    """Why `model` cannot be trained as a stack, or None when it can."""
    if not isinstance(model, keras.Sequential):
        return f"{model.name} is not a Sequential model"
    if model.outputs[0].shape[-1] < 2:
        return "one output unit (binary cross-entropy) has no stacked loss"
    if model.non_trainable_weights:
        return "the model has non-trainable weights"
    for layer in model.layers:
        if type(layer) not in _STACKABLE:
            return f"layer {layer.name} ({type(layer).__name__}) has no stacked form"
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            return f"layer {layer.name} is channels_first"
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and kernel.constraint is not None and not (
                isinstance(kernel.constraint, MaskConstraint) and kernel.constraint.inner is None):
            return f"layer {layer.name} has its own kernel constraint"
        if isinstance(layer, keras.layers.Conv2D) and (
                layer.groups != 1 or layer.activation is keras.activations.softmax):
            return f"layer {layer.name} is a grouped or softmax convolution"
    if model.layers[-1].activation not in (keras.activations.softmax, keras.activations.linear):
        return f"the output layer {model.layers[-1].name} is neither softmax nor logits"
    return None


def unprofitable(model: keras.Model, xla: bool) -> str | None:
    """Why stacking `model` would not pay (train.stack: auto), or None when it does. Measured at
    one thread (benchmarks/train_step.py): the conv LeNet's stack of three ran at 1.82x the
    series-steps per second of the fused step alone, LeNet-300-100's at 0.93-1.00x (its first
    layer is already one large matrix product; whole runs 269 against 232 s) and under XLA at
    0.86x one series under XLA."""
    if xla:
        return "the step runs with XLA, where one series at a time is faster"
    if not any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers):
        return "a network without convolutions trains as fast one series at a time"
    return None


class StackedStep:
    """`series` copies of `model` (which must pass `refusal`) in one compiled train step.

    The model's own variables are untouched; `load` puts each series' weights and masks into the
    stack, `weights(s)` gives series s back in the model's get_weights() order. `jit_compile`
    compiles the step with XLA: benchmarks/train_step.py times it; the engine stacks in graph
    mode (`unprofitable`).
    """

    def __init__(self, model: keras.Model, kernels: dict[str, keras.Variable], series: int,
                 train: tuple[tf.Tensor, tf.Tensor], cfg: TrainConfig, steps_per_epoch: int = 1,
                 augment: tuple[str, ...] = (), seed: int = 0, jit_compile: bool = False):
        self.series, self.cfg = series, cfg
        self.steps_per_epoch, self.augment, self.seed = steps_per_epoch, tuple(augment), seed
        self.train = train  # the resident (x, y) training tensors
        # per model weight (get_weights() order): its stack; per prunable kernel: its masks
        self._stacked = [tf.Variable(tf.zeros((series, *w.shape), w.dtype)) for w in model.weights]
        index = {id(w): i for i, w in enumerate(model.weights)}
        self._masks = {name: (index[id(kernel)], tf.Variable(tf.ones((series, *kernel.shape)),
                                                             trainable=False))
                       for name, kernel in kernels.items()}
        self._layers = [(layer, [self._stacked[index[id(w)]] for w in layer.weights])
                        for layer in model.layers]
        self.optimizer = FusedOptimizer(cfg, self._stacked, [decays(w) for w in model.weights])
        self._sums = tf.Variable(tf.zeros((series, 3), tf.float64), trainable=False)
        self._function = tf.function(
            self._steps, jit_compile=jit_compile, reduce_retracing=True,
            input_signature=[tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([], tf.int64)])
        self._scores = tf.function(self._logits, reduce_retracing=True)

    # --- moving series in and out ----------------------------------------------------------------

    def load(self, weights: list[list[np.ndarray]], masks: list[dict[str, np.ndarray]]) -> None:
        """Series s starts from `weights[s]` (get_weights() order) with `masks[s]` (by prunable
        layer name, as MaskManager keeps them), on a fresh optimizer."""
        for i, variable in enumerate(self._stacked):
            variable.assign(np.stack([w[i] for w in weights]))
        for name, (i, variable) in self._masks.items():
            variable.assign(np.stack([m[name] for m in masks]))
            self._stacked[i].assign(self._stacked[i] * variable)
        self.optimizer.reset()
        self._sums.assign(tf.zeros_like(self._sums))

    def weights(self, s: int) -> list[np.ndarray]:
        """Series s's weights, in the model's get_weights() order."""
        return [variable[s].numpy() for variable in self._stacked]

    def state(self, s: int) -> dict:
        """Series s's weights, masks, optimizer slots and training-loss sums: what `load_state`
        needs to go on with it."""
        return {"weights": self.weights(s), "sums": self._sums[s].numpy(),
                "masks": {name: m[s].numpy() for name, (_, m) in self._masks.items()},
                "slots": [[v[s].numpy() for v in slot] for slot in self.optimizer.slots]}

    def load_state(self, states: list[dict], iterations: int) -> None:
        """Go on training the series of `states` (from `state`) at step count `iterations`: a
        smaller stack after some series stopped (the stopped ones need no more work)."""
        self.load([st["weights"] for st in states], [st["masks"] for st in states])
        for k, slot in enumerate(self.optimizer.slots):
            for i, variable in enumerate(slot):
                variable.assign(np.stack([st["slots"][k][i] for st in states]))
        self.optimizer.iterations.assign(iterations)
        self._sums.assign(np.stack([st["sums"] for st in states]))

    # --- training ---------------------------------------------------------------------------------

    def run(self, batches: np.ndarray, first_step: int) -> None:
        """One step of every series per row of `batches` (example indices), the first being
        global step `first_step` of round 0's clock."""
        self._function(tf.constant(batches, tf.int64), tf.constant(first_step, tf.int64))

    def logs(self) -> list[dict[str, float]]:
        """Each series' mean training loss and accuracy since the last `clear_logs`."""
        return [{"loss": float(l_n / max(n, 1)), "accuracy": float(c / max(n, 1))}
                for l_n, c, n in self._sums.numpy()]

    def clear_logs(self) -> None:
        self._sums.assign(tf.zeros_like(self._sums))

    def probabilities(self, x: tf.Tensor, batch_size: int = 1000) -> np.ndarray:
        """(S, N, classes) class probabilities of every series on `x`, in batches."""
        parts = [self._scores(x[i:i + batch_size]) for i in range(0, int(x.shape[0]), batch_size)]
        return tf.nn.softmax(tf.concat(parts, axis=1)).numpy().astype(np.float64)

    def _steps(self, batches: tf.Tensor, first_step: tf.Tensor) -> None:
        each_step(self._step, batches, first_step)

    def _step(self, batch: tf.Tensor, step: tf.Tensor) -> None:
        x, y = batch_of(self, batch, step)
        with tf.GradientTape() as tape:
            logits = self._logits(x)  # (S, B, classes)
            labels = tf.broadcast_to(tf.cast(y, tf.int64)[None], tf.shape(logits)[:2])
            losses = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=logits), axis=1)  # each series' mean over its batch
            total = tf.reduce_sum(losses)  # series do not share weights: separate gradients
        gradients = tape.gradient(total, self._stacked)
        self.optimizer.apply(gradients, recipes.learning_rate(self.cfg, step,
                                                              self.steps_per_epoch))
        for i, mask in self._masks.values():
            self._stacked[i].assign(self._stacked[i] * mask)
        n = tf.cast(tf.shape(batch)[0], tf.float64)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=-1), labels), tf.float64),
                                axis=1)
        self._sums.assign_add(tf.stack([tf.cast(losses, tf.float64) * n, correct,
                                        tf.fill([self.series], n)], axis=1))

    def _logits(self, x: tf.Tensor) -> tf.Tensor:
        """The stack's forward pass: `h` is one tensor for the shared input, (B, H, W, S·C) in
        the convolutions (group s = series s), (S, B, F) after Flatten and in Dense layers."""
        h, form, s = tf.cast(x, tf.float32), "shared", self.series
        for position, (layer, weights) in enumerate(self._layers):
            kernel, bias = (weights + [None, None])[:2]
            if isinstance(layer, keras.layers.Flatten) and form == "grouped":
                b, hh, ww, c = tf.shape(h)[0], h.shape[1], h.shape[2], h.shape[3] // s
                h = tf.reshape(tf.transpose(tf.reshape(h, [b, hh, ww, s, c]), [3, 0, 1, 2, 4]),
                               [s, b, hh * ww * c])
                form = "stacked"
            elif isinstance(layer, _PLAIN):
                h = layer(h)
            elif isinstance(layer, keras.layers.Conv2D):
                kh, kw, c, o = kernel.shape[1:]
                filters = tf.reshape(tf.transpose(kernel, [1, 2, 3, 0, 4]), [kh, kw, c, s * o])
                h = tf.nn.conv2d(h, filters, layer.strides, layer.padding.upper())
                if bias is not None:
                    h = h + tf.reshape(bias, [s * o])
                h, form = layer.activation(h), "grouped"
            else:  # Dense
                if form == "shared":
                    i, o = kernel.shape[1:]
                    wide = tf.reshape(tf.transpose(kernel, [1, 0, 2]), [i, s * o])
                    h = tf.transpose(tf.reshape(h @ wide, [-1, s, o]), [1, 0, 2])
                    form = "stacked"
                else:
                    h = tf.matmul(h, kernel)
                if bias is not None:
                    h = h + bias[:, None, :]
                if position < len(self._layers) - 1:  # the output's softmax is in the loss
                    h = layer.activation(h)
        return h
