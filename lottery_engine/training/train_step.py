"""The engine's own compiled training step: k optimizer steps per call, fused updates, masks after.

Why not Keras `fit` (the `train.step: keras` path, kept as the reference): on LeNet-300-100 a Keras
step ran at 30-41% of what its matmuls reach alone. Keras' Adam in graph mode makes about ten passes
over memory per variable, and `fit` pays for an input pipeline and callbacks on every call. Here:
- batches are gathered in-graph from the resident training tensors by the rows of an index matrix
  (the run's (seed, epoch) order, cut into batches by the caller), k rows per call;
- the update is one fused TensorFlow kernel per variable, each optimizer's in its own unit
  (fused_updates.py), the same arithmetic as Keras' Adam and SGD, or PyTorch's SGD; the
  learning rate and augmentation (recipes.py) are functions of round 0's step clock, so a
  late-rewound round continues both from step k;
- right after the update each variable's constraint runs: for a prunable kernel that is the
  MaskConstraint (a user's constraint, then the mask), so a pruned weight is exactly 0 after
  every step, as on the Keras path.
The step may be compiled with XLA (`jit_compile`); `choose_jit` times both on the run's own shapes.
"""

from __future__ import annotations

import time
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from ..config.schema import ConfigError, TrainConfig
from . import recipes
from .fused_updates import FUSED_UPDATES


def decays(variable: keras.Variable) -> bool:
    """Whether `variable` is a kernel (dense, conv, depthwise, pointwise): what `weight_decay_on:
    kernels` decays, leaving biases and BatchNorm's scales and shifts. Under `all` (the default)
    FusedOptimizer decays every variable it updates whatever this says, as OpenLTH's
    torch.optim.SGD(weight_decay=...) and Keras' AdamW do."""
    return variable.name.endswith("kernel")


def each_step(step: Callable[[tf.Tensor, tf.Tensor], None], batches: tf.Tensor,
              first_step: tf.Tensor) -> None:
    """In a traced function: `step(batch, global step)` for each row of `batches` (example
    indices), the first being global step `first_step` of round 0's clock."""
    for i in tf.range(tf.shape(batches)[0]):
        step(batches[i], first_step + tf.cast(i, tf.int64))


def batch_of(step: "FusedStep", batch: tf.Tensor, global_step: tf.Tensor
             ) -> tuple[tf.Tensor, tf.Tensor]:
    """A step's examples, gathered in-graph from the resident training tensors and augmented as
    recipes.py draws it from (seed, epoch, step). `step` is a FusedStep or a StackedStep."""
    x, y = (tf.gather(tensor, batch) for tensor in step.train)
    if step.augment:
        x = recipes.augment(x, step.seed, global_step // step.steps_per_epoch, global_step,
                            step.augment)
    return x, y


class FusedOptimizer:
    """The configured optimizer (fused_updates.py: Adam, AdamW or SGD with momentum or
    Nesterov) over `variables` as one fused TensorFlow kernel per variable: the update Keras'
    optimizer computes in several passes over memory.

    Elementwise, so it updates a stack of S networks' variables (stacked_step.py) exactly as S
    separate ones. Weight decay is the optimizer's own (`FusedUpdate.decay`: L2 added to the
    gradient, decoupled for adamw); it reaches every variable (`weight_decay_on: all`) or those
    `kernels` marks (`decays`), so one network and a stack of them, each passing its own
    variables and kernel flags, decay alike.
    """

    def __init__(self, cfg: TrainConfig, variables: list[tf.Variable], kernels: list[bool]):
        self.cfg, self.variables = cfg, variables
        self.fused = FUSED_UPDATES[cfg.optimizer](cfg)
        self.decayed = [bool(cfg.weight_decay) and (cfg.weight_decay_on == "all" or kernel)
                        for kernel in kernels]
        self.slots = [[tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False)
                       for v in variables] for _ in range(self.fused.slots)]
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False)

    def reset(self) -> None:
        """Zero moments and step count 0: a fresh optimizer without tracing again."""
        for slot in self.slots:
            for variable in slot:
                variable.assign(tf.zeros_like(variable))
        self.iterations.assign(0)

    def apply(self, gradients: list[tf.Tensor], learning_rate: tf.Tensor) -> None:
        """One step (in a traced function): every variable updated by its gradient."""
        self.iterations.assign_add(1)
        for index, gradient in enumerate(gradients):
            variable = self.variables[index]
            if self.decayed[index]:
                gradient = self.fused.decay(variable, gradient, learning_rate)
            self.fused.update(variable, [slot[index] for slot in self.slots], gradient,
                              learning_rate, self.iterations)


class FusedStep:
    """A model's compiled train step with its own optimizer state and training-loss sums.

    `reset()` gives a fresh optimizer without tracing again, so every round and series starts
    from zero moments at no cost.
    """

    def __init__(self, model: keras.Model, train: tuple[tf.Tensor, tf.Tensor], cfg: TrainConfig,
                 logits: bool, jit_compile: bool, steps_per_epoch: int = 1,
                 augment: tuple[str, ...] = (), seed: int = 0):
        self.model, self.cfg, self.logits, self.jit_compile = model, cfg, logits, jit_compile
        self.steps_per_epoch, self.augment, self.seed = steps_per_epoch, tuple(augment), seed
        self.variables = list(model.trainable_variables)
        self.train = train  # the resident (x, y) training tensors
        self._binary = model.outputs[0].shape[-1] == 1
        self.optimizer = FusedOptimizer(cfg, [v.value for v in self.variables],
                                        [decays(v) for v in self.variables])
        self._sums = tf.Variable(tf.zeros(3, tf.float64), trainable=False)  # loss·n, correct, n
        self._function = tf.function(
            self._steps, jit_compile=jit_compile, reduce_retracing=True,
            input_signature=[tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([], tf.int64)])

    def reset(self) -> None:
        """A fresh optimizer: zero moments, step count 0, and new training-loss sums."""
        self.optimizer.reset()
        self._sums.assign(tf.zeros(3, tf.float64))

    @property
    def iterations(self) -> int:
        """Optimizer steps since the last reset."""
        return int(self.optimizer.iterations.numpy())

    @property
    def traces(self) -> int:
        """How often the step was traced: once per batch shape, never again per round."""
        return self._function.experimental_get_tracing_count()

    def run(self, batches: np.ndarray, first_step: int) -> None:
        """Train one step per row of `batches` (example indices), the first being global step
        `first_step` of round 0's clock."""
        try:
            self._function(tf.constant(batches, tf.int64), tf.constant(first_step, tf.int64))
        except tf.errors.UnimplementedError as error:  # XLA lacks a deterministic kernel
            if not self.jit_compile:
                raise
            reason = error.message.splitlines()[0]
            raise ConfigError(f"train.jit_compile: XLA cannot compile this model's step "
                              f"({reason}); use jit_compile: false or auto") from None

    def learning_rate(self, step: int) -> float:
        """The rate of global step `step`, as the step computes it."""
        return float(recipes.learning_rate(self.cfg, step, self.steps_per_epoch))

    def take_logs(self) -> dict[str, float]:
        """Mean training loss and accuracy since the last call (Keras' per-epoch `history`:
        batch means weighted by batch size, regularisation losses included)."""
        loss_n, correct, n = self._sums.numpy()
        self._sums.assign(tf.zeros(3, tf.float64))
        return {"loss": float(loss_n / max(n, 1)), "accuracy": float(correct / max(n, 1))}

    def _steps(self, batches: tf.Tensor, first_step: tf.Tensor) -> None:
        each_step(self._step, batches, first_step)

    def _step(self, batch: tf.Tensor, step: tf.Tensor) -> None:
        x, y = batch_of(self, batch, step)
        with tf.GradientTape() as tape:
            predicted = self.model(x, training=True)
            loss = self._loss(y, predicted)
            total = loss + tf.add_n(self.model.losses) if self.model.losses else loss
        gradients = tape.gradient(total, [v.value for v in self.variables])
        self.optimizer.apply(gradients, recipes.learning_rate(self.cfg, step,
                                                              self.steps_per_epoch))
        for variable in self.variables:
            if variable.constraint is not None:
                variable.assign(variable.constraint(variable.value))
        n = tf.cast(tf.shape(batch)[0], tf.float64)
        self._sums.assign_add(tf.stack([tf.cast(loss, tf.float64) * n,
                                        tf.cast(self._correct(y, predicted), tf.float64), n]))

    def _loss(self, y: tf.Tensor, predicted: tf.Tensor) -> tf.Tensor:
        if self._binary:
            return tf.reduce_mean(keras.losses.binary_crossentropy(
                tf.cast(tf.reshape(y, [-1, 1]), predicted.dtype), predicted,
                from_logits=self.logits))
        return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            y, predicted, from_logits=self.logits))

    def _correct(self, y: tf.Tensor, predicted: tf.Tensor) -> tf.Tensor:
        if self._binary:
            guess = tf.cast(predicted[:, 0] > (0.0 if self.logits else 0.5), y.dtype)
        else:
            guess = tf.cast(tf.argmax(predicted, axis=-1), y.dtype)
        return tf.reduce_sum(tf.cast(tf.equal(guess, tf.reshape(y, [-1])), tf.int64))


def _seconds_per_call(step: FusedStep, batches: np.ndarray, calls: int) -> float:
    step.run(batches, 0)  # traces and compiles
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        step.run(batches, 0)
        best = min(best, time.perf_counter() - start)
    return best


def choose_jit(make: Callable[[bool], FusedStep], batches: np.ndarray,
               variables: list[keras.Variable], calls: int = 3) -> tuple[FusedStep, dict]:
    """Time the step with and without XLA on `batches` (the run's own shapes) and keep the faster.

    XLA fuses a dense net's small ops well but its CPU convolutions are slow, so neither choice
    is right for every network and machine; timing a few calls decides. The probe trains, so every
    variable in `variables` (the model's, with BatchNorm statistics and seed states) is put back
    afterwards, and the kept step is reset: the run goes on as if the probe never happened.
    """
    saved = [np.array(v.numpy()) for v in variables]
    steps = {jit: make(jit) for jit in (False, True)}
    seconds = {False: _seconds_per_call(steps[False], batches, calls)}
    try:
        seconds[True] = _seconds_per_call(steps[True], batches, calls)
    except ConfigError as error:  # e.g. max pooling has no deterministic XLA gradient
        seconds[True], refused = float("inf"), str(error)
    for variable, value in zip(variables, saved):
        variable.assign(value)
    jit = seconds[True] < seconds[False]
    steps[jit].reset()
    probe = {"jit_compile": jit, "probe_ms_per_step": {
        way: 1000 * seconds[key] / len(batches) if seconds[key] < float("inf") else None
        for way, key in (("xla", True), ("graph", False))}}
    return steps[jit], probe if seconds[True] < float("inf") else {**probe, "xla_refused": refused}
