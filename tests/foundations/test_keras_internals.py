"""The private Keras and LiteRT attributes the engine reads (foundations/keras_internals.py and
export/tflite_export.op_names), each on a tiny functional model, a Sequential and a TFLite file.

Checked on Keras 3.15.1 and ai-edge-litert 2.3.0 (CHECKED_ON; a failure prints them beside the
installed versions): after an upgrade that moves one of them, this file fails first and names the
function; fix that one function, then update CHECKED_ON.
"""

from __future__ import annotations

import importlib.metadata

import keras
import numpy as np
import pytest
from keras import layers

from lottery_engine.foundations import keras_internals
from lottery_engine.export import tflite_export

CHECKED_ON = {"keras": "3.15.1", "ai-edge-litert": "2.3.0"}


class Block(layers.Layer):
    """A custom layer holding a layer of its own: `model.layers` does not show it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = layers.Dense(3, name="inner")

    def call(self, x):
        return self.inner(x)


@pytest.fixture(scope="module")
def functional():
    x = keras.Input((4,), name="x")
    shared = layers.Dense(4, name="shared")
    block = Block(name="block")
    hidden = shared(shared(x))  # called twice: two calls, two nodes
    out = layers.Dense(2, activation="softmax", name="out")(block(hidden))
    return keras.Model(x, out, name="tiny"), shared, block


@pytest.fixture(scope="module")
def sequential():
    return keras.Sequential([keras.Input((4,), name="first"), layers.Dense(3, name="a"),
                             layers.Dense(2, name="b")], name="seq")


@pytest.fixture(autouse=True)
def _versions(request):
    """A failure here reports the versions this file last passed on beside the installed ones."""
    installed = {"keras": keras.__version__,
                 "ai-edge-litert": importlib.metadata.version("ai-edge-litert")}
    request.node.add_report_section("call", "versions",
                                    f"checked on {CHECKED_ON}; installed {installed}")


def test_child_and_all_layers_see_inside_a_custom_layer(functional, sequential):
    model, shared, block = functional
    assert [layer.name for layer in keras_internals.child_layers(block)] == ["inner"]
    assert keras_internals.child_layers(block.inner) == []
    names = [layer.name for layer in keras_internals.all_layers(model)]
    assert names == ["x", "shared", "block", "inner", "out"]
    assert [layer.name for layer in keras_internals.child_layers(sequential)] == ["first", "a", "b"]


def test_call_tensors_name_each_call_of_a_shared_layer(functional):
    model, shared, _ = functional
    first_in, last_in = (keras_internals.call_tensors(shared, "input", i) for i in (0, -1))
    [first_out] = keras_internals.call_tensors(shared, "output", 0)
    assert [t.name for t in first_in] == ["x"] and last_in == [first_out]
    assert tuple(first_out.shape) == (None, 4)
    assert keras_internals.call_tensors(layers.Dense(1), "input") == []  # never called


def test_made_by_walks_from_an_output_back_to_the_input(functional):
    model, shared, block = functional
    layer, node_index, tensor_index = keras_internals.made_by(model.outputs[0])
    assert (layer.name, node_index, tensor_index) == ("out", 0, 0)
    [hidden] = keras_internals.call_tensors(block, "input", 0)
    assert keras_internals.made_by(hidden)[:2] == (shared, 1)  # the second call


def test_the_graph_of_a_sequential_and_of_a_functional_model(functional, sequential):
    model = functional[0]
    assert keras_internals.functional_graph(model) is model
    graph = keras_internals.functional_graph(sequential)
    assert isinstance(graph, keras.Model) and graph is not sequential
    nodes = keras_internals.graph_nodes(graph)
    assert [n.operation.name for n in nodes if not n.is_input] == ["b", "a"]  # outputs first
    calls = [n.operation.name for n in keras_internals.graph_nodes(model) if not n.is_input]
    assert sorted(calls) == ["block", "out", "shared", "shared"]


def test_litert_names_the_ops_it_runs(sequential):
    content = tflite_export.convert(sequential, None, sparse=False)
    runner = tflite_export.Runner(content, 1)
    ops = tflite_export.op_names(runner.interpreter)
    assert ops and ops == sorted(set(ops)) and all(isinstance(op, str) for op in ops)
    assert runner(np.zeros((1, 4), np.float32)).shape == (1, 2)
