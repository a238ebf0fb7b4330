"""A model's class probabilities on one split, compiled once per run.

Why not `model.predict`: it builds an input pipeline on every call, which on LeNet-300-100's 6,000
validation images cost 0.36 s against 0.05 s for the same forward passes in one compiled
function over the resident split. With validation every 300 steps and the fused training step
running those steps in about 0.2 s, predict's overhead would be most of a round.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .metrics import as_probabilities


class SplitScorer:
    """The probabilities of `model` (as it is at each call) on `x`, in batches of `batch_size`
    inside one traced function: no input pipeline and no re-tracing across calls."""

    def __init__(self, model: keras.Model, x: np.ndarray, logits: bool, batch_size: int = 1000):
        self.model, self.logits, self.batch_size = model, logits, batch_size
        self._x = tf.constant(x)
        self._batches = -(-len(x) // batch_size)
        self._function = tf.function(self._outputs)

    def probabilities(self) -> np.ndarray:
        """(N, classes) float64, as metrics.predict_proba gives them."""
        return as_probabilities(self._function().numpy(), self.logits)

    def _outputs(self) -> tf.Tensor:
        parts = tf.TensorArray(tf.as_dtype(self.model.outputs[0].dtype), size=self._batches,
                               infer_shape=False)
        for i in tf.range(self._batches):
            start = i * self.batch_size
            parts = parts.write(i, self.model(self._x[start:start + self.batch_size],
                                              training=False))
        return parts.concat()
