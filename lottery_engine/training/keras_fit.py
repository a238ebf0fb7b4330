"""The Keras path (`train.step: keras`, the reference): a round's epochs on Keras' own `fit`,
reporting to the same Monitor (round.py) as the engine's own step, and the compiled model with a
fresh optimizer that every round starts from.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..config.schema import TrainConfig
from .fused_updates import FUSED_UPDATES
from .round import EpochTrainer, Monitor


class _KerasCallback(keras.callbacks.Callback):
    """The Keras path's bridge from `fit`'s batch ends to the monitor."""

    def __init__(self) -> None:
        super().__init__()
        self.monitor: Monitor | None = None
        self.first = self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        # with steps_per_execution, `batch` is the last step of the call (past the data at the end)
        if self.monitor.reached(self.first + min(batch + 1, self.steps)):
            self.model.stop_training = True


def keras_epochs(model: keras.Model, train: tuple[tf.Tensor, tf.Tensor],
                 batch_size: int) -> EpochTrainer:
    """Epochs on Keras' `fit` (compiled by the caller): the reference path, one `fit` per epoch
    on an index dataset, so the traced train step is reused throughout."""
    callback = _KerasCallback()

    def train_epoch(order: np.ndarray, first: int, monitor: Monitor) -> dict[str, float]:
        callback.monitor, callback.first = monitor, first
        callback.steps = -(-len(order) // batch_size)
        fitted = model.fit(_batches(*train, order, batch_size), epochs=1, verbose=0,
                           shuffle=False, callbacks=[callback])
        return {**{key: values[-1] for key, values in fitted.history.items()},
                "learning_rate": float(model.optimizer.learning_rate.numpy())}

    return train_epoch


def _batches(x: tf.Tensor, y: tf.Tensor, order: np.ndarray, batch_size: int) -> tf.data.Dataset:
    indices = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
    return indices.map(lambda i: (tf.gather(x, i), tf.gather(y, i)))


def compile_model(model: keras.Model, cfg: TrainConfig, logits: bool,
                  steps_per_execution: int = 1) -> None:
    """Compile with a fresh optimizer of the run's kind (Keras' twin of its fused update; the
    Keras fit path runs only adam or sgd with momentum 0.9, validation._keras_step): IMP rounds
    never carry optimizer state over. One output
    unit is binary cross-entropy, N units sparse categorical, from logits where the model ends
    in them."""
    optimizer = FUSED_UPDATES[cfg.optimizer](cfg).keras_optimizer()
    if model.outputs[0].shape[-1] == 1:
        loss = keras.losses.BinaryCrossentropy(from_logits=logits)
        accuracy = keras.metrics.BinaryAccuracy("accuracy", threshold=0.0 if logits else 0.5)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=logits)
        accuracy = keras.metrics.SparseCategoricalAccuracy("accuracy")
    model.compile(optimizer=optimizer, loss=loss, metrics=[accuracy],
                  steps_per_execution=steps_per_execution)


def compile_to_save(model: keras.Model, cfg: TrainConfig, logits: bool) -> None:
    """Compile a model about to be saved, so that `load_model(...).evaluate(x, y)` works as on
    the user's own file; its fresh optimizer is built for the model's variables, or loading the
    file warns that the saved optimizer has fewer variables than the model needs."""
    compile_model(model, cfg, logits)
    model.optimizer.build(model.trainable_variables)


def optimizer_state(model: keras.Model) -> list[np.ndarray]:
    """The compiled optimizer's variables before its first step (built here if need be):
    step 0, zero moments, the learning rate."""
    model.optimizer.build(model.trainable_variables)
    return [np.array(v.numpy()) for v in model.optimizer.variables]


def reset_optimizer(model: keras.Model, state: list[np.ndarray]) -> None:
    """Put the optimizer back to `state`: a fresh optimizer in all but name, so the traced train
    step is reused instead of traced again (compile() would drop it)."""
    for variable, value in zip(model.optimizer.variables, state):
        variable.assign(value)
