"""FLOPs per kernel, read from the layers' real shapes (never hard-coded), for any Keras model.

A kernel applied at P output positions costs 2·size·P: Dense 2·in·out (times the positions of a
sequence), Conv 2·kH·kW·inC·outC·outH·outW, a transposed conv at each input position, depthwise
and separable kernels likewise; masked kernels count at their density. A frozen nested model (a
pretrained base) counts as one entry with its dense FLOPs. Pooling, activations, normalisation and
attention's non-kernel matmuls are not counted.
"""

from __future__ import annotations

import logging
import math

import keras
from keras import layers

from ..foundations import keras_internals
from ..pruning.prunable import Kernel, all_kernels

log = logging.getLogger("lottery")

_TRANSPOSED = (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)


def _shape(layer: keras.layers.Layer, which: str) -> tuple | None:
    """The layer's (first) symbolic input or output shape; None where it was never traced."""
    try:
        return tuple(getattr(layer, which).shape)
    except (AttributeError, ValueError):
        tensors = keras_internals.call_tensors(layer, which, node_index=0)
        return tuple(tensors[0].shape) if tensors else None


def _einsum_positions(layer: keras.layers.Layer, out: tuple) -> int:
    """Output positions of an EinsumDense: its output size over the kernel's output dims."""
    spec = layer.equation.split("->")
    kernel_letters = spec[0].split(",")[1].replace("...", "")
    out_letters = spec[1].replace("...", "")
    dims = dict(zip(out_letters, out[len(out) - len(out_letters):]))
    kernel_out = math.prod(int(dims[c]) for c in out_letters if c in kernel_letters)
    return math.prod(int(d) for d in out[1:]) // max(kernel_out, 1)


def _positions(layer: keras.layers.Layer) -> int:
    shape = _shape(layer, "input" if isinstance(layer, _TRANSPOSED) else "output")
    if shape is None or any(d is None for d in shape[1:]):
        log.warning("FLOPs: layer %s has no traced shape; counted at one position", layer.name)
        return 1
    if isinstance(layer, layers.EinsumDense):
        return _einsum_positions(layer, shape)
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return math.prod(int(d) for d in shape[2:])
    return math.prod(int(d) for d in shape[1:-1])


def kernel_flops(kernel: Kernel) -> int:
    """Dense FLOPs of one kernel for one input example."""
    size = math.prod(int(d) for d in kernel.variable.shape)
    return 2 * size * _positions(kernel.layer)


def model_flops(model: keras.Model) -> int:
    """Dense FLOPs of every conv and dense kernel, nested models included."""
    return sum(kernel_flops(k) for k in all_kernels(model))


def _frozen_bases(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers
            if isinstance(layer, keras.Model) and not layer.trainable]


def layer_flops(model: keras.Model, densities: dict[str, float],
                include_frozen_base: bool = False, base_flops: int | None = None
                ) -> dict[str, int]:
    """FLOPs of each kernel at the given mask densities (1.0 where not pruned); a frozen base is
    one entry, counted only with `include_frozen_base`, and `base_flops` replaces its computed
    figure (the plan's override)."""
    bases = _frozen_bases(model)
    out: dict[str, int] = {}
    for kernel in all_kernels(model):
        base = kernel.path.split("/")[0]
        if base in bases and "/" in kernel.path:
            if include_frozen_base:
                out[base] = base_flops or out.get(base, 0) + kernel_flops(kernel)
            continue
        out[kernel.name] = int(round(kernel_flops(kernel) * densities.get(kernel.name, 1.0)))
    return out


def flops_until(model: keras.Model, name: str) -> tuple[int, bool]:
    """Dense FLOPs of the conv and dense kernels up to and including layer `name` (nested models
    too), and whether `name` was found; the cost of computing that layer's output for one input."""
    total = 0
    kernels = all_kernels(model)
    for layer in keras_internals.all_layers(model):
        total += sum(kernel_flops(k) for k in kernels if k.layer is layer)
        if layer.name == name:
            return total, True
    return total, False
