"""Which kernels of any Keras model are prunable, their names, and their FLOPs from real shapes."""

from __future__ import annotations

import keras
import pytest
from keras import layers

from lottery_engine.evaluation import flops
from lottery_engine.pruning import prunable


@pytest.fixture(scope="module")
def every_kind() -> keras.Model:
    """One layer of each prunable kind, plus ones that must never be pruned."""
    keras.utils.set_random_seed(0)
    frozen = keras.Sequential([layers.Conv2D(3, 1, name="conv")], name="base")
    frozen.trainable = False
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    t = layers.Embedding(50, 4, name="embed")(tokens)  # (6, 4)
    t = layers.Conv1D(5, 3, name="conv1d")(t)  # (4, 5)
    t = layers.EinsumDense("abc,cd->abd", output_shape=(4, 7), name="einsum")(t)  # (4, 7)
    t = layers.Dense(3, name="seq_dense")(t)  # a Dense on a sequence: 4 positions
    images = keras.Input((8, 8, 2), name="images")
    x = frozen(images)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise")(x)
    x = layers.SeparableConv2D(4, 3, name="separable")(x)  # (6, 6, 4)
    x = layers.Conv2DTranspose(2, 3, strides=2, name="up")(x)  # applied at 6x6 input positions
    x = layers.BatchNormalization(name="bn")(x)
    frozen_dense = layers.Dense(3, name="frozen_dense", trainable=False)
    x = frozen_dense(layers.GlobalAveragePooling2D()(x))
    merged = layers.Concatenate()([x, layers.Flatten()(t)])
    return keras.Model([tokens, images], layers.Dense(2, name="out")(merged))


def test_every_kind_of_kernel_is_found_and_nothing_else(every_kind):
    names = list(prunable.select(every_kind, None))
    assert sorted(names) == sorted(["conv1d", "einsum", "seq_dense", "depthwise", "out",
                                    "separable:depthwise", "separable:pointwise", "up"])
    everything = [k.name for k in prunable.all_kernels(every_kind)]
    assert "conv" in everything and "frozen_dense" in everything  # seen, never pruned


def test_flops_come_from_each_layers_real_shapes(every_kind):
    per_layer = flops.layer_flops(every_kind, {"seq_dense": 0.5})
    assert per_layer["conv1d"] == 2 * (3 * 4 * 5) * 4
    assert per_layer["einsum"] == 2 * (5 * 7) * 4
    assert per_layer["seq_dense"] == (2 * 7 * 3 * 4) // 2  # at half density
    assert per_layer["depthwise"] == 2 * (3 * 3 * 3 * 2) * 64
    assert per_layer["separable:depthwise"] == 2 * (3 * 3 * 6 * 1) * 36
    assert per_layer["separable:pointwise"] == 2 * (6 * 4) * 36
    assert per_layer["up"] == 2 * (3 * 3 * 2 * 4) * 36
    assert per_layer["out"] == 2 * (3 + 4 * 3) * 2
    assert "base" not in per_layer  # a frozen base counts only when asked
    assert flops.layer_flops(every_kind, {}, include_frozen_base=True)["base"] == 2 * 2 * 3 * 64
