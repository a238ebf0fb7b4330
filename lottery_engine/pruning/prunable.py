"""Which weights of a Keras model IMP may prune, found in any model, however nested.

Prunable: the kernels of Dense, EinsumDense, Conv1D/2D/3D, Conv*Transpose, the depthwise kernel of
DepthwiseConv*, both kernels of SeparableConv*. Never: biases, normalisation, embeddings, and any
layer that is frozen itself or sits inside a frozen block (a pretrained base is a fixed function).

Names: a layer's own name where it is unique among the model's kernels, else its path of layer
names joined by "/" (`block_1/conv`); a separable conv's two kernels are `name:depthwise` and
`name:pointwise`. Patterns in a config (`prunable_layers`, `layer_rates`) are globs matched against
the name and against the full path.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import keras
from keras import layers

from ..config.schema import ConfigError
from ..foundations import keras_internals

# layer type -> (kernel attribute, name suffix); the most specific types first
_KERNELS: list[tuple[type, list[tuple[str, str]]]] = [
    (layers.SeparableConv1D, [("depthwise_kernel", ":depthwise"), ("pointwise_kernel", ":pointwise")]),
    (layers.SeparableConv2D, [("depthwise_kernel", ":depthwise"), ("pointwise_kernel", ":pointwise")]),
    (layers.DepthwiseConv1D, [("kernel", "")]),  # Keras 3 names the depthwise kernel `kernel`
    (layers.DepthwiseConv2D, [("kernel", "")]),
    (layers.Dense, [("kernel", "")]),
    (layers.EinsumDense, [("kernel", "")]),
    (layers.Conv1D, [("kernel", "")]),
    (layers.Conv2D, [("kernel", "")]),
    (layers.Conv3D, [("kernel", "")]),
    (layers.Conv1DTranspose, [("kernel", "")]),
    (layers.Conv2DTranspose, [("kernel", "")]),
    (layers.Conv3DTranspose, [("kernel", "")]),
]


@dataclass
class Kernel:
    """One kernel of the model: its display name, full path, layer and variable."""

    name: str
    path: str
    layer: keras.layers.Layer
    variable: keras.Variable
    frozen: bool  # the layer or a block around it is not trainable

    def matches(self, pattern: str) -> bool:
        return fnmatch.fnmatchcase(self.name, pattern) or fnmatch.fnmatchcase(self.path, pattern)


def _kernel_attrs(layer: keras.layers.Layer) -> list[tuple[str, str]]:
    for cls, attrs in _KERNELS:
        if isinstance(layer, cls):
            return attrs
    return []


def _children(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    return [child for child in keras_internals.child_layers(layer)
            if not isinstance(child, layers.InputLayer)]


def _walk(layer: keras.layers.Layer, prefix: str, frozen: bool, out: list) -> None:
    for child in _children(layer):
        path = f"{prefix}{child.name}"
        child_frozen = frozen or not child.trainable
        for attr, suffix in _kernel_attrs(child):
            variable = getattr(child, attr, None)
            if variable is not None:
                out.append((f"{child.name}{suffix}", f"{path}{suffix}", child, variable,
                            child_frozen))
        _walk(child, f"{path}/", child_frozen, out)


def all_kernels(model: keras.Model) -> list[Kernel]:
    """Every Dense/Conv-family kernel of the model in layer order, frozen ones included."""
    found: list = []
    _walk(model, "", not model.trainable, found)
    counts: dict[str, int] = {}
    for name, *_ in found:
        counts[name] = counts.get(name, 0) + 1
    return [Kernel(name if counts[name] == 1 else path, path, layer, variable, frozen)
            for name, path, layer, variable, frozen in found]


def candidates(model: keras.Model) -> list[Kernel]:
    """The kernels IMP may prune: every trainable Dense/Conv-family kernel."""
    return [k for k in all_kernels(model) if not k.frozen]


def _no_match(key: str, pattern: str, kernels: list[Kernel]) -> ConfigError:
    names = ", ".join(k.name for k in kernels) or "none"
    return ConfigError(f"{key}: {pattern!r} matches no prunable layer of this model. "
                        f"Prunable layers: {names}.")


def select(model: keras.Model, patterns: list[str] | None) -> dict[str, keras.Variable]:
    """The kernels to prune, by name: those matching any pattern (all candidates for None).
    A pattern that matches nothing is a ConfigError listing the prunable layers."""
    kernels = candidates(model)
    if patterns is None:
        return {k.name: k.variable for k in kernels}
    for pattern in patterns:
        if not any(k.matches(pattern) for k in kernels):
            raise _no_match("imp.prunable_layers", pattern, kernels)
    return {k.name: k.variable for k in kernels if any(k.matches(p) for p in patterns)}


def expand_rates(model: keras.Model, selected: list[str], rates: dict[str, float]
                 ) -> dict[str, float]:
    """`imp.layer_rates` by kernel name: each pattern's rate for the selected kernels it matches
    (the first matching pattern wins). A pattern that matches no selected kernel raises."""
    kernels = [k for k in candidates(model) if k.name in selected]
    out: dict[str, float] = {}
    for pattern, rate in rates.items():
        hits = [k.name for k in kernels if k.matches(pattern)]
        if not hits:
            raise _no_match(f"imp.layer_rates.{pattern}", pattern, kernels)
        for name in hits:
            out.setdefault(name, rate)
    return out
