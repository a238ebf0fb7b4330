"""FLOPs per layer, read from the layers' real shapes (never hard-coded).

Dense: 2·in·out·density. Conv2D: 2·kH·kW·inC·outC·outH·outW·density. A nested model (a frozen base)
counts the dense FLOPs of its own conv and dense layers. Pooling and activations are not counted.
"""

from __future__ import annotations

import keras


def _layer_flops(layer: keras.layers.Layer) -> int:
    if isinstance(layer, keras.layers.Dense):
        fan_in, fan_out = layer.kernel.shape
        return 2 * int(fan_in) * int(fan_out)
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw, cin, cout = (int(s) for s in layer.kernel.shape)
        _, out_h, out_w, _ = layer.output.shape
        return 2 * kh * kw * cin * cout * int(out_h) * int(out_w)
    return 0


def model_flops(model: keras.Model) -> int:
    """Dense FLOPs of every conv and dense layer, nested models included."""
    total = 0
    for layer in model.layers:
        total += model_flops(layer) if isinstance(layer, keras.Model) else _layer_flops(layer)
    return total


def layer_flops(model: keras.Model, densities: dict[str, float],
                include_frozen_base: bool = False, base_flops: int | None = None
                ) -> dict[str, int]:
    """FLOPs of each top-level counted layer at the given mask densities (1.0 where not pruned);
    `base_flops` replaces the computed figure of a frozen base (the plan's override)."""
    out = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            if include_frozen_base:
                out[layer.name] = base_flops or model_flops(layer)
            continue
        dense = _layer_flops(layer)
        if dense:
            out[layer.name] = int(round(dense * densities.get(layer.name, 1.0)))
    return out


def flops_until(model: keras.Model, name: str) -> tuple[int, bool]:
    """Dense FLOPs of the conv and dense layers up to and including `name` (nested models too),
    and whether `name` was found; the cost of computing that layer's output for one input."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            inner, found = flops_until(layer, name)
            total += inner
            if found:
                return total, True
        else:
            total += _layer_flops(layer)
            if layer.name == name:
                return total, True
    return total, False
