"""Which units of a Keras model can be removed exactly, and every way each reaches a consumer.

A unit is a Dense layer's output unit or a Conv layer's output channel (filter). Its layer may lose
units where its output reaches only Dense/Conv layers (the consumers) through channel-wise layers
(activations, Rescaling, BatchNormalization, pooling, Flatten, Dropout, ZeroPadding, a depthwise
conv with one filter per channel): removing the unit then removes its slice of each layer between
(a BatchNorm's statistics, a depthwise conv's filter) and its incoming rows in each consumer, and
nothing else. Everything else keeps its width, with the reason: the model's output layer, a layer
feeding a residual Add, a Concatenate, a Reshape or a nested model, every layer inside a nested
model. Compact export (export/compact.py) drops the units a ticket no longer uses along these
paths; channel pruning (pruning/channels.py) chooses whole units along the same paths, so what it
prunes is exactly what export removes.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from ..foundations import keras_internals
from . import prunable

# built-in activations that act on each value alone (softmax, glu and friends mix units)
_ELEMENTWISE = {
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "swish",
    "sigmoid", "hard_sigmoid", "hard_silu", "hard_swish", "tanh", "softplus", "softsign",
    "exponential", "mish", "log_sigmoid", "squareplus", "sparse_plus", "soft_shrink",
    "hard_shrink", "tanh_shrink", "hard_tanh", "sparse_sigmoid",
}
_PRODUCERS = (layers.Dense, layers.Conv1D, layers.Conv2D, layers.Conv3D)
_POOLS = (layers.MaxPooling1D, layers.MaxPooling2D, layers.MaxPooling3D,
          layers.AveragePooling1D, layers.AveragePooling2D, layers.AveragePooling3D)
_GLOBAL_POOLS = (layers.GlobalMaxPooling1D, layers.GlobalMaxPooling2D, layers.GlobalMaxPooling3D,
                 layers.GlobalAveragePooling1D, layers.GlobalAveragePooling2D,
                 layers.GlobalAveragePooling3D)
_IDENTITY_AT_INFERENCE = (layers.Dropout, layers.SpatialDropout1D, layers.SpatialDropout2D,
                          layers.SpatialDropout3D, layers.GaussianDropout, layers.GaussianNoise,
                          layers.AlphaDropout, layers.ActivityRegularization, layers.Identity)
VALUEWISE = (layers.Activation, layers.ReLU, layers.LeakyReLU, layers.ELU, layers.Rescaling)
PADDINGS = (layers.ZeroPadding1D, layers.ZeroPadding2D, layers.ZeroPadding3D)  # spatial only
DEPTHWISE = (layers.DepthwiseConv1D, layers.DepthwiseConv2D)  # channel c from channel c alone


@dataclass
class Step:
    """A channel-wise layer between a unit's layer and its consumers; `spread` is how many
    features each unit has at this layer's output (1, or the positions a Flatten laid out)."""

    layer: keras.layers.Layer
    spread: int


@dataclass
class Branch:
    path: list[Step]
    consumer: keras.layers.Layer
    spread: int


@dataclass
class Group:
    """A layer whose units may be removed, and every way its output reaches a consumer."""

    producer: keras.layers.Layer
    branches: list[Branch]
    before: int
    dropped: int = 0
    folded: int = 0


def _is_elementwise(activation) -> bool:
    name = getattr(activation, "__name__", None)
    return name in _ELEMENTWISE and keras.activations.get(name) is activation


def _training_forced(node) -> bool:
    return node.arguments.kwargs.get("training") is True


def _channels_last(layer: keras.layers.Layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _not_producer(layer: keras.layers.Layer, graph: "_Graph") -> str | None:
    """Why a Dense/Conv layer's units cannot go whatever follows it (None: they may)."""
    if id(graph.node_of[id(layer)].outputs[0]) in graph.outputs:
        return "its output is the model's output"
    if not _is_elementwise(layer.activation):
        name = getattr(layer.activation, "__name__", type(layer.activation).__name__)
        return f"its activation ({name}) mixes units"
    if graph.calls[id(layer)] > 1:
        return "it is called more than once"
    if not _channels_last(layer) or getattr(layer, "groups", 1) != 1:
        return "a channels-first or grouped convolution keeps its width"
    if not _plain(layer):
        return "a LoRA-enabled or quantized layer keeps its width"
    return None


def _plain(layer: keras.layers.Layer) -> bool:
    """Its weights are a float kernel and bias (no LoRA factors, no quantized kernel)."""
    return not getattr(layer, "lora_enabled", False) and not getattr(layer, "quantization_mode",
                                                                     None)


def _is_consumer(layer: keras.layers.Layer, spread: int) -> bool:
    if type(layer) is layers.Dense:
        return _plain(layer)
    return (type(layer) in _PRODUCERS and _channels_last(layer) and layer.groups == 1
            and spread == 1 and _plain(layer))


def _last_axis(layer: keras.layers.BatchNormalization, node) -> bool:
    return layer.axis in (-1, len(node.input_tensors[0].shape) - 1)


def _step_spread(layer: keras.layers.Layer, node, spread: int) -> int | None:
    """Units' spread after `layer` when it is channel-wise (None when units cannot pass it)."""
    if not _channels_last(layer):
        return None
    if isinstance(layer, layers.Flatten):
        shape = node.input_tensors[0].shape
        return spread if len(shape) <= 2 else spread * int(np.prod(shape[1:-1]))
    if isinstance(layer, (*_POOLS, *_GLOBAL_POOLS, *PADDINGS)):
        return spread if spread == 1 else None
    if isinstance(layer, layers.BatchNormalization):
        return spread if _last_axis(layer, node) else None
    if isinstance(layer, DEPTHWISE):
        alone = layer.depth_multiplier == 1 and _is_elementwise(layer.activation)
        return spread if spread == 1 and alone and _plain(layer) else None
    if isinstance(layer, layers.Rescaling):
        scalar = np.size(layer.scale) == 1 and np.size(layer.offset) == 1
        return spread if scalar else None
    if isinstance(layer, layers.Activation):
        return spread if _is_elementwise(layer.activation) else None
    if isinstance(layer, (*VALUEWISE, *_IDENTITY_AT_INFERENCE)):
        return spread
    return None


class _Graph:
    """Who consumes each tensor of a model's graph, and how often each layer is called in it."""

    def __init__(self, model: keras.Model):
        graph = keras_internals.functional_graph(model)
        self.outputs = {id(t) for t in graph.outputs}
        self.consumers: dict[int, list] = {}
        self.calls: dict[int, int] = {}
        self.node_of: dict[int, object] = {}
        for node in keras_internals.graph_nodes(graph):
            if node.operation is None or node.is_input:
                continue
            self.calls[id(node.operation)] = self.calls.get(id(node.operation), 0) + 1
            self.node_of[id(node.operation)] = node
            for tensor in node.input_tensors:
                self.consumers.setdefault(id(tensor), []).append(node)

    def follow(self, tensor, spread: int, path: list[Step], out: list[Branch]) -> str | None:
        """Collect the branches from `tensor` to its consumers; a reason if a path cannot pass."""
        if id(tensor) in self.outputs:
            return "its output reaches the model's output"
        nodes = self.consumers.get(id(tensor), [])
        if not nodes:
            return "its output reaches no Dense or Conv layer"
        for node in nodes:
            layer = node.operation
            if self.calls[id(layer)] > 1:
                return f"it feeds '{layer.name}', which is called more than once"
            if isinstance(layer, keras.Model):
                return f"it feeds the nested model '{layer.name}', whose inputs keep their width"
            if _training_forced(node):
                return f"it feeds '{layer.name}', which is called with training=True"
            if _is_consumer(layer, spread):
                out.append(Branch(path, layer, spread))
                continue
            new_spread = _step_spread(layer, node, spread)
            if new_spread is None:
                return (f"it feeds '{layer.name}' ({type(layer).__name__}), through which units "
                        f"cannot be removed exactly")
            reason = self.follow(node.outputs[0], new_spread, [*path, Step(layer, new_spread)],
                                 out)
            if reason:
                return reason
        return None


def analyse(model: keras.Model) -> tuple[list[Group], dict[str, str]]:
    """The layers whose units may go, and for each other prunable kernel why it keeps its width."""
    graph = _Graph(model)
    groups, reasons = [], {}
    for layer in model.layers:
        if id(layer) not in graph.node_of or type(layer) not in _PRODUCERS:
            continue
        branches: list[Branch] = []
        reason = _not_producer(layer, graph) or graph.follow(
            graph.node_of[id(layer)].outputs[0], 1, [], branches)
        if reason:
            reasons[layer.name] = reason
        else:
            groups.append(Group(layer, branches, int(layer.kernel.shape[-1])))
    compacted = {group.producer.name for group in groups}
    top = {id(layer) for layer in model.layers}
    kept = {}
    for kernel in prunable.candidates(model):
        if id(kernel.layer) not in top:
            kept[kernel.name] = "it is inside a nested model"
        elif kernel.layer.name not in compacted:
            kind = type(kernel.layer).__name__
            kept[kernel.name] = reasons.get(kernel.layer.name, f"{kind} layers keep their width")
    return groups, kept


def foldable(branch: Branch) -> bool:
    """Whether the consumer sees a constant unit's value everywhere: no zeros padded in between
    or by the consumer itself, and no depthwise conv between (it pads, and weighs positions)."""
    if any(isinstance(step.layer, (*PADDINGS, *DEPTHWISE)) for step in branch.path):
        return False
    return isinstance(branch.consumer, layers.Dense) or branch.consumer.padding == "valid"
