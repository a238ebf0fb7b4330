"""Masks over prunable kernels: magnitude pruning, rewinding, and enforcement inside the train step.

Enforcement uses a Keras constraint that holds the mask in a non-trainable variable, applied right
after each update inside the compiled train step: by Keras' own `optimizer.apply` on the Keras-fit
path (`train.step: keras`), by the engine's fused step after its update of each variable
(training/train_step.py). A pruned weight is exactly 0.0 after every step, with no Python work per
batch. A new round only assigns new values to the mask variables, so nothing is rebuilt. The
stacked step (training/stacked_step.py) keeps one mask per series and multiplies by it itself.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np


class MaskConstraint(keras.constraints.Constraint):
    """The kernel's own constraint (a user's max-norm, non-neg), if any, then the mask: a pruned
    weight is exactly 0 whatever the constraint does."""

    def __init__(self, mask: keras.Variable, inner: keras.constraints.Constraint | None = None):
        self.mask, self.inner = mask, inner

    def __call__(self, w):
        if self.inner is not None:
            w = self.inner(w)
        return w * keras.ops.cast(self.mask, w.dtype)


def _prune_counts(alive: dict[str, int], rate: float, scope: str,
                  layer_rates: dict[str, float]) -> tuple[dict[str, int], int]:
    """How many weights each layerwise-pruned layer loses, and how many go in the global pool."""
    per_layer = {}
    global_alive = 0
    for name, count in alive.items():
        if scope == "layerwise" or name in layer_rates:
            per_layer[name] = int(round(layer_rates.get(name, rate) * count))
        else:
            global_alive += count
    return per_layer, int(round(rate * global_alive))


def _smallest(magnitudes: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` smallest values; ties go to the lower index, deterministically."""
    return np.argsort(magnitudes, kind="stable")[:count]


def magnitude_prune(weights: dict[str, np.ndarray], masks: dict[str, np.ndarray], rate: float,
                    scope: str = "global", layer_rates: dict[str, float] | None = None
                    ) -> dict[str, np.ndarray]:
    """New masks pruning exactly round(rate * alive) of the surviving weights, smallest |w| first.

    Global scope ranks all surviving weights of the layers without an override together;
    layers named in `layer_rates` (and every layer under layerwise scope) lose their own share.
    """
    layer_rates = layer_rates or {}
    alive = {name: int(mask.sum()) for name, mask in masks.items()}
    per_layer, global_count = _prune_counts(alive, rate, scope, layer_rates)
    new = {name: mask.copy() for name, mask in masks.items()}
    for name, count in per_layer.items():
        flat = new[name].reshape(-1)
        live = np.flatnonzero(flat)
        flat[live[_smallest(np.abs(weights[name].reshape(-1)[live]), count)]] = 0
    pooled = [name for name in masks if name not in per_layer]
    if pooled and global_count:
        live = [np.flatnonzero(new[name].reshape(-1)) for name in pooled]
        magnitudes = np.concatenate([np.abs(weights[name].reshape(-1)[idx])
                                     for name, idx in zip(pooled, live)])
        chosen = _smallest(magnitudes, global_count)
        offsets = np.cumsum([0] + [len(idx) for idx in live])
        for i, name in enumerate(pooled):
            picked = chosen[(chosen >= offsets[i]) & (chosen < offsets[i + 1])] - offsets[i]
            new[name].reshape(-1)[live[i][picked]] = 0
    return new


def random_masks_like(masks: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Random masks with exactly the same number of survivors per layer (the random_prune control)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, mask in masks.items():
        flat = np.zeros(mask.size, dtype=np.float32)
        flat[rng.permutation(mask.size)[: int(mask.sum())]] = 1
        out[name] = flat.reshape(mask.shape)
    return out


def sparsity_report(masks: dict[str, np.ndarray]) -> dict:
    """Per-layer and global sparsity, and surviving weight counts."""
    total = sum(m.size for m in masks.values())
    alive = sum(int(m.sum()) for m in masks.values())
    return {
        "global_sparsity": 1.0 - alive / total,
        "layer_sparsity": {name: 1.0 - float(m.sum()) / m.size for name, m in masks.items()},
        "remaining_prunable": alive,
        "total_prunable": total,
    }


class MaskManager:
    """Masks and rewind weights of one model's prunable kernels.

    `kernel_variables` are those kernels (the model's own variables, by kernel name); each is
    constrained by a non-trainable mask variable of its own, which `set_masks` assigns.
    `rewind_weights` is the full list of model weights (kernels, biases, any BN statistics) that
    every round ≥ 1 starts from: θ0, or an early point of round 0 (late resetting).
    """

    def __init__(self, model: keras.Model, kernels: dict[str, keras.Variable]):
        self.model = model
        self.kernel_variables = kernels
        self.masks = {name: np.ones(kernel.shape, dtype=np.float32)
                      for name, kernel in kernels.items()}
        self._mask_variables = {}
        for i, (name, kernel) in enumerate(kernels.items()):
            variable = keras.Variable(self.masks[name], trainable=False, name=f"mask_{i}")
            kernel.constraint = MaskConstraint(variable, getattr(kernel, "constraint", None))
            self._mask_variables[name] = variable
        self.rewind_weights: list[np.ndarray] = [w.copy() for w in model.get_weights()]

    def kernels(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(kernel.numpy()) for name, kernel in self.kernel_variables.items()}

    def rewind_kernels(self, weights: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The kernel of each prunable layer in `weights` (default: the rewind point)."""
        weights = self.rewind_weights if weights is None else weights
        index = {id(v): i for i, v in enumerate(self.model.weights)}
        return {name: weights[index[id(kernel)]] for name, kernel in self.kernel_variables.items()}

    def set_masks(self, masks: dict[str, np.ndarray]) -> None:
        for name, mask in masks.items():
            self.masks[name] = mask.astype(np.float32)
            self._mask_variables[name].assign(self.masks[name])

    def apply(self) -> None:
        """Zero the pruned kernel entries of the model's current weights."""
        for name, kernel in self.kernel_variables.items():
            kernel.assign(kernel.numpy() * self.masks[name])

    def rewind(self, weights: list[np.ndarray] | None = None) -> None:
        """Put every weight back to the rewind point (or `weights`), then apply the masks."""
        self.model.set_weights(weights if weights is not None else self.rewind_weights)
        self.apply()

    def prune(self, rate: float, scope: str, layer_rates: dict[str, float]) -> None:
        self.set_masks(magnitude_prune(self.kernels(), self.masks, rate, scope, layer_rates))

    def report(self) -> dict:
        return sparsity_report(self.masks)

    def random_like(self, masks: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
        """The random_prune control's masks for `masks`: the same per-layer sparsity."""
        return random_masks_like(masks, seed)

    def save(self, path: Path, start: list[np.ndarray] | None = None) -> None:
        """Save masks and the kernels training started from (`start`, default the rewind point)
        as `mask_<layer>` / `init_<layer>` arrays in one .npz."""
        arrays = {f"mask_{n}": m for n, m in self.masks.items()}
        arrays |= {f"init_{n}": w for n, w in self.rewind_kernels(start).items()}
        np.savez_compressed(path, **arrays)


def load_masks(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {key[5:]: f[key] for key in f.files if key.startswith("mask_")}
