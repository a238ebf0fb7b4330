"""The private Keras attributes the engine reads, one function each, in this one file.

Keras 3 has no public API for walking a model's layer tree below `model.layers` or its call
graph: which layers sit inside a custom layer, which tensors a layer was called on, which call made
a tensor, the graph inside a Sequential. The engine needs each of them (prunable kernels of nested
layers, a user model's output layer, FLOPs before a layer, channel compaction), so it reads them
here and nowhere else. A Keras upgrade that renames one fails tests/foundations/test_keras_internals.py first,
which names the Keras version these were checked on.

Nothing is imported at module level (no TensorFlow here, as in the rest of foundations/): the
functions take the Keras objects they are given.
"""

from __future__ import annotations

from typing import Any


def child_layers(layer: Any) -> list:
    """The layers a layer (or model) holds directly, input layers included, in the order Keras
    tracks them. Missing publicly: `Model.layers` exists for models only, not for a custom layer
    that holds layers of its own (Layer._flatten_layers(recursive=False))."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


def all_layers(model: Any) -> list:
    """Every layer below a model, nested ones too, depth first in the order Keras tracks them.
    Missing publicly: a recursive walk of layers (Layer._flatten_layers(recursive=True))."""
    return list(model._flatten_layers(include_self=False, recursive=True))


def call_tensors(layer: Any, which: str = "input", node_index: int = -1) -> list:
    """The `which` ("input" or "output") tensors of one call of a layer in a functional graph
    (its last call unless `node_index` says which); [] for a layer never called symbolically.
    Missing publicly: `layer.input` / `layer.output` raise for a layer called more than once and
    name no call (Layer._inbound_nodes[i].input_tensors / .output_tensors)."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    return list(getattr(nodes[node_index], f"{which}_tensors")) if nodes else []


def made_by(tensor: Any) -> tuple[Any, int, int]:
    """The call that made a symbolic tensor: (layer, its call's index, the tensor's index among
    that call's outputs). Missing publicly: a tensor's producer (KerasTensor._keras_history)."""
    layer, node_index, tensor_index = tensor._keras_history
    return layer, node_index, tensor_index


def functional_graph(model: Any) -> Any:
    """The functional model behind a model: a Sequential keeps one inside once built, any other
    model is its own graph. Missing publicly: a Sequential exposes no graph of its own
    (Sequential._functional)."""
    import keras

    return model._functional if isinstance(model, keras.Sequential) else model


def graph_nodes(graph: Any) -> list:
    """Every node (one call of one layer) of a functional model's graph, from the outputs' depth
    up to the inputs', each depth in Keras' order. Missing publicly: the graph's nodes
    (Functional._nodes_by_depth)."""
    return [node for nodes in graph._nodes_by_depth.values() for node in nodes]
