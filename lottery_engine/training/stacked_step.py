"""A round's series trained together: S copies of one network as a single stack.

The ticket and its controls of one round train on the same batches in the same order (round.py),
so one step can train all of them (copies for the instability analysis instead give each series
its own batches: the input then starts grouped, one group per series): every kernel, bias, mask and optimizer slot gets a leading
series axis, a Dense layer becomes one matrix product per series in a single batched matmul (the
first one a single wide GEMM on the shared batch), and a Conv2D a grouped convolution whose group
g is series g. Small networks leave a CPU core mostly waiting on per-op overhead; a stack of three
does three networks' arithmetic for about one network's overhead.

What the stack can express: a Sequential model of Rescaling, Flatten, Dense, Conv2D and
MaxPooling2D layers whose output is a softmax or logits over two or more classes: the built-in
LeNets. `refusal` reads each layer's settings against an allow-list of what the forward pass
(`_logits`) implements, and names the first layer and setting it does not (dilation, groups,
channels_first, regularizers, constraints, LoRA, anything a later Keras adds); `disagreement` then
runs the arithmetic: the stack's outputs and loss on one batch must be the model's. Either way
the engine trains the series one after another (lottery/controls.py) and the records say why. The update is
FusedOptimizer's, elementwise, so each series is updated exactly as alone; the forward pass sums
in another order than the unstacked model's, so stacked and single training agree statistically,
not bit for bit (benchmarks/train_step.py compares them).
"""

from __future__ import annotations

import functools
import re
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..config.schema import TrainConfig
from ..pruning.masks import MaskConstraint
from . import recipes
from .train_step import FusedOptimizer, batch_of, decays, each_step

_PLAIN = (keras.layers.Rescaling, keras.layers.Flatten, keras.layers.MaxPooling2D)
Setting = Callable[[object], bool]  # whether the stack computes a layer setting's value
TOLERANCE = 1e-5  # outputs and loss of stack and model on one batch (float32 sums in two orders)


def _any(value: object) -> bool:
    return True


def _one_of(*names: str) -> Setting:
    return lambda value: isinstance(value, str) and value in names


def _scalar(value: object) -> bool:
    return isinstance(value, (int, float))


def _float32(value: object) -> bool:
    return keras.dtype_policies.get(value).name == "float32"


# A convolution's activation runs on all series' channels at once, a Dense layer's on one vector
# per series and example: elementwise functions are right in both, softmax only in the latter.
_ELEMENTWISE = ("linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish",
                "mish", "tanh", "sigmoid", "hard_sigmoid", "hard_silu", "hard_swish", "softplus",
                "softsign", "exponential")
_INITIALIZERS = {"kernel_initializer": _any, "bias_initializer": _any}  # the weights are loaded
# Per layer type the stack takes: each setting `_logits` reads, or that cannot change what the
# layer computes, with the values it computes. Any other setting must keep Keras' default.
_IMPLEMENTED: dict[type, dict[str, Setting]] = {
    keras.layers.Rescaling: {"scale": _scalar, "offset": _scalar},
    keras.layers.Flatten: {},
    keras.layers.MaxPooling2D: {"pool_size": _any, "strides": _any, "padding": _any},
    keras.layers.Conv2D: {"filters": _any, "kernel_size": _any, "strides": _any,
                          "padding": _one_of("valid", "same"),
                          "activation": _one_of(*_ELEMENTWISE), "use_bias": _any,
                          **_INITIALIZERS},
    keras.layers.Dense: {"units": _any, "activation": _one_of(*_ELEMENTWISE, "softmax"),
                         "use_bias": _any, **_INITIALIZERS},
}
_EVERY_LAYER: dict[str, Setting] = {"name": _any, "trainable": _any, "dtype": _float32}
_REQUIRED = {keras.layers.Rescaling: {"scale": 1.0}, keras.layers.Dense: {"units": 1},
             keras.layers.Conv2D: {"filters": 1, "kernel_size": 1}}


def _settings(layer: keras.layers.Layer) -> dict:
    """A layer's config and its activity regularizer, which Dense's config leaves out."""
    return {"activity_regularizer": keras.regularizers.serialize(layer.activity_regularizer),
            **layer.get_config()}


@functools.cache
def _defaults(kind: type) -> dict:
    """The settings of a `kind` layer made with no options. Named, so that Keras' automatic
    names of the user's later layers (the masks' keys) stay as they would be."""
    return _settings(kind(name="default", **_REQUIRED.get(kind, {})))


def _shown(value: object) -> str:
    """A setting's value in a one-line reason: a serialized Keras object as Class(arguments),
    a float as the user wrote it rather than its float32 round trip."""
    if isinstance(value, dict) and "class_name" in value:
        arguments = ", ".join(f"{k}={_shown(v)}" for k, v in (value.get("config") or {}).items())
        return f"{value['class_name']}({arguments})"
    return f"{value:.7g}" if isinstance(value, float) else repr(value)


def _setting_refusal(layer: keras.layers.Layer) -> str | None:
    """The first setting of `layer` the stack does not compute, as a one-line reason."""
    implemented = {**_EVERY_LAYER, **_IMPLEMENTED[type(layer)]}
    default = _defaults(type(layer))
    for key, value in _settings(layer).items():
        if key in implemented:
            computed = implemented[key](value)
        else:
            computed = key in default and value == default[key]
        if not computed:
            return (f"layer {layer.name} ({type(layer).__name__}) has {key}={_shown(value)}, "
                    f"which the stack does not model")
    return None


def _constraint_refusal(layer: keras.layers.Layer) -> str | None:
    """A constraint on one of the layer's variables: the stack applies only the engine's masks
    (and those only where MaskManager put one on a kernel with no constraint of its own)."""
    for weight in layer.weights:
        constraint = weight.constraint
        if constraint is not None and not (isinstance(constraint, MaskConstraint)
                                           and constraint.inner is None):
            return (f"layer {layer.name} ({type(layer).__name__}) has a constraint on its "
                    f"{weight.name}, which the stack does not apply")
    return None


def _form_refusal(layer: keras.layers.Layer, split: bool) -> str | None:
    """Where the layer meets a tensor `_logits` does not hold in the form the layer needs: a
    Dense layer takes one vector per example, and once the stack has split into one tensor per
    series (`split`) a Flatten would fold the series into the batch."""
    if isinstance(layer, keras.layers.Dense) and len(layer.input.shape) != 2:
        return (f"layer {layer.name} (Dense) has a rank-{len(layer.input.shape)} input, which "
                f"the stack does not model")
    if isinstance(layer, keras.layers.Flatten) and split:
        return f"layer {layer.name} (Flatten) has a flat input, which the stack does not model"
    return None


def refusal(model: keras.Model) -> str | None:
    """Why `model` cannot be trained as a stack, or None when it can: the first layer and
    setting `_logits` does not compute as the model does, in one line."""
    if not isinstance(model, keras.Sequential):
        return f"{model.name} is not a Sequential model"
    if model.outputs[0].shape[-1] < 2:
        return "one output unit (binary cross-entropy) has no stacked loss"
    convolved = split = False  # as `_logits`' form: grouped after a Conv2D, stacked once split
    for layer in model.layers:
        if type(layer) not in _IMPLEMENTED:
            return f"layer {layer.name} ({type(layer).__name__}) has no stacked form"
        why = (_setting_refusal(layer) or _constraint_refusal(layer)
               or _form_refusal(layer, split))
        if why:
            return why
        convolved = convolved or isinstance(layer, keras.layers.Conv2D)
        split = split or isinstance(layer, keras.layers.Dense) or (
            isinstance(layer, keras.layers.Flatten) and convolved)
    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense) or last.activation not in (
            keras.activations.softmax, keras.activations.linear):
        return f"the output layer {last.name} is neither softmax nor logits"
    if model.non_trainable_weights:
        return "the model has non-trainable weights"
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
        self._ordered = tf.function(  # series s takes row s of each step's batches
            self._steps, jit_compile=jit_compile, reduce_retracing=True,
            input_signature=[tf.TensorSpec([None, series, None], tf.int64),
                             tf.TensorSpec([], tf.int64)])
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
        global step `first_step` of round 0's clock: (steps, B), one batch for all series, or
        (steps, S, B), series s its own (copies in their own data orders: instability.py)."""
        function = self._function if batches.ndim == 2 else self._ordered
        function(tf.constant(batches, tf.int64), tf.constant(first_step, tf.int64))

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

    def disagreement(self, model: keras.Model, logits: bool, x: tf.Tensor, y: tf.Tensor,
                     own_batches: bool = False) -> str | None:
        """Why the stack as loaded does not compute `model`, or None when it does: on (x, y),
        each series' outputs and loss must be the model's with that series' weights (its
        `model.losses` included, the loss as FusedStep takes it), to TOLERANCE. `refusal`
        reads settings; this runs the arithmetic, so a setting the allow-list gets wrong still
        cannot train another network than the user's. No step runs and no random number is
        drawn (training=False); the model's weights are put back. `own_batches` checks the
        form that gives each series its own batch (here all the same one)."""
        try:
            stacked, _, losses = self._forward(
                *((tf.stack([x] * self.series), tf.stack([y] * self.series)) if own_batches
                  else (x, y)))
        except (ValueError, tf.errors.OpError) as error:
            return f"the stack cannot compute {model.name}: {_first_line(error)}"
        outputs = stacked if logits else tf.nn.softmax(stacked)
        saved = model.get_weights()
        try:
            for s in range(self.series):
                model.set_weights(self.weights(s))
                why = _apart(model, logits, x, y, outputs[s].numpy(), float(losses[s]))
                if why:
                    return f"{why} (series {s + 1} of {self.series})"
        finally:
            model.set_weights(saved)
        return None

    def _batch(self, batch: tf.Tensor, step: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """A step's examples: one batch (B,) for every series, or (S, B), series s its own,
        each gathered and augmented as the fused step does it alone."""
        if batch.shape.rank == 1:
            return batch_of(self, batch, step)
        own = [batch_of(self, batch[s], step) for s in range(self.series)]
        return tf.stack([x for x, _ in own]), tf.stack([y for _, y in own])

    def _step(self, batch: tf.Tensor, step: tf.Tensor) -> None:
        x, y = self._batch(batch, step)
        with tf.GradientTape() as tape:
            logits, labels, losses = self._forward(x, y)
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

    def _forward(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Each series' logits (S, B, classes), the labels as (S, B), and each series' mean
        loss over the batch (S,): what a step trains on and `disagreement` checks. Labels
        (S, B) mean each series has its own batch, `x` then (S, B, ...)."""
        own = y.shape.rank == 2
        logits = self._logits(x, own)
        labels = tf.cast(y, tf.int64) if own else tf.broadcast_to(tf.cast(y, tf.int64)[None],
                                                                   tf.shape(logits)[:2])
        losses = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits), axis=1)
        return logits, labels, losses

    def _logits(self, x: tf.Tensor, own: bool = False) -> tf.Tensor:
        """The stack's forward pass: `h` is one tensor for the shared input, (B, H, W, S·C) in
        the convolutions (group s = series s), (S, B, F) after Flatten and in Dense layers.
        Series with their own inputs (`own`: x is (S, B, ...)) start grouped, or stacked when
        their inputs are flat."""
        h, form, s = tf.cast(x, tf.float32), "shared", self.series
        if own and h.shape.rank == 5:
            b, hh, ww, c = tf.shape(h)[1], h.shape[2], h.shape[3], h.shape[4]
            h, form = tf.reshape(tf.transpose(h, [1, 2, 3, 0, 4]), [b, hh, ww, s * c]), "grouped"
        elif own:
            form = "stacked"
        for position, (layer, weights) in enumerate(self._layers):
            kernel, bias = (weights + [None, None])[:2]
            if isinstance(layer, keras.layers.Flatten) and form == "stacked":
                continue  # own flat inputs (the shared form's Flatten here is refused)
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


def _first_line(error: Exception) -> str:
    """An error's first line without TensorFlow's function-node and op decorations."""
    return re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", str(error).splitlines()[0])


def _apart(model: keras.Model, logits: bool, x: tf.Tensor, y: tf.Tensor, stacked: np.ndarray,
           stacked_loss: float) -> str | None:
    """How the model's outputs and loss on (x, y) differ from one series' of the stack, or None
    when both agree to TOLERANCE."""
    output = model(x, training=False)
    loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, output,
                                                                      from_logits=logits))
    loss = float(loss + tf.add_n(model.losses)) if model.losses else float(loss)
    output = np.asarray(output)
    if output.shape != stacked.shape:
        return f"the stack's outputs are {stacked.shape}, the model's {output.shape}"
    if not np.allclose(stacked, output, rtol=TOLERANCE, atol=TOLERANCE):
        gap = float(np.abs(stacked - output).max())
        return f"the stack's outputs differ from the model's by up to {gap:.2g}"
    if not np.isclose(stacked_loss, loss, rtol=TOLERANCE, atol=TOLERANCE):
        return (f"the stack's loss is {stacked_loss:.6g}, the model's {loss:.6g} "
                f"({len(model.losses)} model.losses)")
    return None
