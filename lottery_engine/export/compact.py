"""A ticket as a smaller dense Keras model: dead units removed, constant units folded away.

A masked ticket is a dense model full of zeros; a unit whose weights are all pruned on one side is
dead weight in every file and every multiply. Two kinds go, and only where removing them cannot
change an output:

- **dead**: every outgoing weight of the unit (its row in each consuming Dense kernel, its input
  slice in each consuming Conv kernel) is zero, so nothing downstream ever sees it. The unit is
  dropped with its incoming weights and bias, and with its slice of any BatchNormalization or
  depthwise conv between.
- **constant**: every incoming weight is zero, so the unit outputs `activation(bias)` for every
  input, everywhere in the image. That constant is carried through the channel-wise layers between
  (activations, Rescaling, BatchNormalization with its moving statistics, pooling, Flatten,
  Dropout), folded into each consuming layer's bias (a bias is added where the consumer had none),
  and the unit is dropped. Folding is done only where it is exact: into a Dense layer, or a Conv
  with `valid` padding (a `same` or `causal` padded conv sees zeros, not the constant, at its
  border), never through a ZeroPadding layer (the same zeros, made explicit: ResNet-20's strided
  convs) or a layer called with `training=True` (BatchNormalization would use batch statistics,
  Dropout would drop). Dead units pass a ZeroPadding layer: their channel is dropped whole.

Removing one unit can kill another (a folded unit takes its incoming weights with it, which may
have been another unit's last live outgoing weights), so both rules run until nothing changes.

Units are removed from a Dense or Conv1D/2D/3D layer (channels last, no groups, an element-wise
activation) whose output reaches only Dense/Conv layers, through channel-wise layers
(pruning/unit_graph.py finds them; channel pruning prunes along the same paths). Everything
else keeps its width and says why in `Compaction.kept`: the model's output layer, a layer feeding
a residual Add, a Concatenate, a Reshape or a nested model, and every layer inside a nested model
(the VGG16 base stays whole; its head is compacted). The result is a plain Keras model of built-in
layers (it loads with `safe_mode`) that computes what the ticket computes, to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
from keras import layers

from ..pruning.unit_graph import VALUEWISE, Branch, Group, Step, analyse, foldable


@dataclass
class Compaction:
    """The compact model and what was done: per compacted layer its units before and after, how
    many were dropped dead and how many folded as constants; per kernel kept whole, why."""

    model: keras.Model
    layers: dict[str, dict] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)

    @property
    def units_removed(self) -> int:
        return sum(entry["dropped"] + entry["folded"] for entry in self.layers.values())

    def to_json(self) -> dict:
        return {"layers": self.layers, "kept_width": self.kept, "units_removed": self.units_removed}


class _Weights:
    """Working copies of the weights being cut, and config changes, by layer name."""

    def __init__(self):
        self.arrays: dict[str, list[np.ndarray]] = {}
        self.config: dict[str, dict] = {}

    def of(self, layer: keras.layers.Layer) -> list[np.ndarray]:
        if layer.name not in self.arrays:
            self.arrays[layer.name] = [np.array(w) for w in layer.get_weights()]
        return self.arrays[layer.name]

    def kernel(self, layer: keras.layers.Layer) -> np.ndarray:
        return self.of(layer)[0]

    def bias(self, layer: keras.layers.Layer) -> np.ndarray:
        """The layer's bias; a zero one is added (and `use_bias` set) where it had none."""
        arrays = self.of(layer)
        if len(arrays) == 1:
            arrays.append(np.zeros(arrays[0].shape[-1], arrays[0].dtype))
            self.config.setdefault(layer.name, {})["use_bias"] = True
        return arrays[1]


def _outgoing_live(branch: Branch, weights: _Weights, width: int) -> np.ndarray:
    """Per unit: whether any of its weights in the branch's consumer is nonzero."""
    kernel = weights.kernel(branch.consumer)
    if isinstance(branch.consumer, layers.Dense):
        return kernel.reshape(branch.spread, width, -1).any(axis=(0, 2))
    return np.moveaxis(kernel, -2, 0).reshape(width, -1).any(axis=1)


def _through(step: Step, values: np.ndarray, width: int, weights: _Weights) -> np.ndarray:
    """A constant feature vector carried through one channel-wise layer at inference."""
    layer = step.layer
    if isinstance(layer, layers.Flatten):
        return np.tile(values, step.spread * width // values.size)
    if isinstance(layer, layers.BatchNormalization):
        arrays = dict(zip([w.name for w in layer.weights], weights.of(layer)))
        normal = (values - arrays["moving_mean"]) / np.sqrt(arrays["moving_variance"]
                                                            + layer.epsilon)
        return normal * arrays.get("gamma", 1.0) + arrays.get("beta", 0.0)
    if isinstance(layer, VALUEWISE):
        return np.asarray(layer.call(keras.ops.convert_to_tensor(values[None], "float32")))[0]
    return values  # pooling a constant, and layers that are the identity at inference


def _constants(group: Group, branch: Branch, weights: _Weights) -> np.ndarray:
    """What the consumer of `branch` receives from each unit whose incoming weights are all zero:
    activation(bias), carried along the path; (spread, width) float64."""
    producer = group.producer
    arrays = weights.of(producer)
    bias = arrays[1] if len(arrays) > 1 else np.zeros(arrays[0].shape[-1], np.float32)
    values = np.asarray(producer.activation(keras.ops.convert_to_tensor(bias, "float32")))
    width = values.size
    for step in branch.path:
        values = _through(step, values, width, weights)
    return np.asarray(values, np.float64).reshape(-1, width)


def _fold(group: Group, branch: Branch, constant: np.ndarray, weights: _Weights) -> None:
    """Add the constant units' contribution to the consumer's bias."""
    values = np.where(constant, _constants(group, branch, weights), 0.0)  # others may be inf
    kernel = weights.kernel(branch.consumer).astype(np.float64)
    width = constant.size
    if isinstance(branch.consumer, layers.Dense):
        delta = np.einsum("sc,sco->o", values, kernel.reshape(branch.spread, width, -1))
    else:
        delta = np.einsum("c,co->o", values[0],
                          np.moveaxis(kernel, -2, 0).reshape(width, -1, kernel.shape[-1]).sum(1))
    bias = weights.bias(branch.consumer)
    bias[:] = (bias.astype(np.float64) + delta).astype(bias.dtype)


def _cut(group: Group, keep: np.ndarray, weights: _Weights) -> None:
    """Drop the units not kept from the producer, the layers between and the consumers."""
    producer = group.producer
    arrays = weights.of(producer)
    arrays[0] = arrays[0][..., keep]
    if len(arrays) > 1:
        arrays[1] = arrays[1][keep]
    key = "units" if isinstance(producer, layers.Dense) else "filters"
    weights.config.setdefault(producer.name, {})[key] = int(keep.sum())
    width = keep.size
    done = set()
    for branch in group.branches:
        for step in branch.path:
            if step.layer.weights and step.layer.name not in done:
                rows = np.arange(step.spread * width).reshape(step.spread, width)[:, keep].ravel()
                weights.arrays[step.layer.name] = [w[rows] if w.ndim == 1 else w[..., rows, :]
                                                   for w in weights.of(step.layer)]
                done.add(step.layer.name)
        consumer = weights.of(branch.consumer)
        if isinstance(branch.consumer, layers.Dense):
            out = consumer[0].shape[-1]
            consumer[0] = consumer[0].reshape(branch.spread, width, out)[:, keep].reshape(-1, out)
        else:
            consumer[0] = consumer[0][..., keep, :]


def _shrink(group: Group, weights: _Weights) -> bool:
    """One pass of both rules over one layer; whether any unit went."""
    kernel = weights.kernel(group.producer)
    width = kernel.shape[-1]
    live_in = kernel.reshape(-1, width).any(axis=0)
    live_out = np.zeros(width, bool)
    for branch in group.branches:
        live_out |= _outgoing_live(branch, weights, width)
    constant = ~live_in & live_out & all(foldable(b) for b in group.branches)
    keep = live_out & ~constant
    if not keep.any():  # a layer keeps one unit, so the model stays a model
        keep[0], constant[0] = True, False
    if keep.all():
        return False
    if constant.any():
        for branch in group.branches:
            _fold(group, branch, constant, weights)
    group.folded += int(constant.sum())
    group.dropped += int((~keep & ~constant).sum())
    _cut(group, keep, weights)
    return True


def _rebuild(model: keras.Model, weights: _Weights) -> keras.Model:
    """A fresh model of the same layers, the cut ones narrower, carrying the cut weights."""
    made: dict[str, keras.layers.Layer] = {}

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = {**layer.get_config(), **weights.config.get(layer.name, {})}
        made[layer.name] = layer.__class__.from_config(config)
        return made[layer.name]

    compact = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name in made:  # not an InputLayer
            made[layer.name].set_weights(weights.arrays.get(layer.name, layer.get_weights()))
    return compact


def compact(model: keras.Model) -> Compaction:
    """The ticket without its dead and constant units (module docstring: what goes, and where)."""
    groups, kept = analyse(model)
    weights = _Weights()
    while any([_shrink(group, weights) for group in groups]):
        pass
    result = Compaction(_rebuild(model, weights), kept=kept)
    for group in groups:
        after = int(weights.kernel(group.producer).shape[-1])
        result.layers[group.producer.name] = {"units": [group.before, after],
                                              "dropped": group.dropped, "folded": group.folded}
    return result
