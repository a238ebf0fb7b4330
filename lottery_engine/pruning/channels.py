"""Channel granularity (`imp.granularity: channel`): IMP that removes whole units, and IMP-Refill.

A unit is a Conv layer's output channel (filter) or a Dense layer's output unit, in the layers
whose units can be removed exactly (pruning/unit_graph.py: not the output layer, not a layer tied
to others through a residual Add or a Concatenate; those keep their width, and `ChannelPlan.kept`
says why). A channel mask is an ordinary weight mask whose removed filters are zero, so stacking,
resuming, FLOPs and reports work unchanged.

Coupling: a removed unit's incoming rows in each consumer kernel that is pruned too are masked as
well, and so is its filter in a pruned depthwise conv between (the weight count stays honest, and
compact export finds the unit dead and drops it with its BatchNorm slice); a consumer that is not
pruned must see the unit through a path where compact export can fold its constant output (a
Dense, or a `valid` conv), else the layer keeps its width.

Channel IMP ranks a unit by the L1 norm of its surviving incoming weights: the magnitude criterion
of weight IMP summed over a filter, so ties with the weight ranking are natural, and cheap and
data-free like it (Li et al. 2017 "Pruning Filters for Efficient ConvNets" use the same norm).
Under global scope each unit's norm is divided by the mean norm of its layer's surviving units:
norms grow with fan-in and with the initialiser's per-layer scale, so raw norms would empty the
narrow-fan-in layers first, while the ratio ranks a unit against its own layer's peers and lets a
layer whose norms are uneven lose more. Every layer keeps at least one unit.

IMP-Refill (Chen et al., ICML 2022, "Coarsening the Granularity"; their `criteria="remain"`): each
round prunes unstructured as weight IMP does; then per layer, in the model's order, the channels
holding the most surviving weights are kept, dense again, and the rest masked. The exact rule:
with `f` the entries of one channel that survive its inputs' removal and `n` the unstructured
round's surviving weights among those entries, the layer keeps `k = max(1, round(n / f))`
channels, so its surviving-weight count `k·f` is within `f / 2` of `n` (k = 1 excepted). Layers
that keep their width keep the unstructured mask, less the rows of removed inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from ..config.schema import ConfigError, ImpConfig
from .masks import MaskManager, magnitude_prune
from .unit_graph import DEPTHWISE, analyse, foldable


@dataclass
class Coupling:
    """A consumer kernel fed by a unit layer: the mask whose incoming rows go with the units."""

    kernel: str
    spread: int  # features per unit at the consumer (a Flatten spreads a channel over positions)
    dense: bool


@dataclass
class UnitLayer:
    kernel: str
    width: int
    couplings: list[Coupling] = field(default_factory=list)


@dataclass
class ChannelPlan:
    """The pruned kernels whose units may go, in the model's order, and why the others may not."""

    layers: dict[str, UnitLayer]
    kept: dict[str, str]


def plan(model: keras.Model, kernels: dict[str, keras.Variable]) -> ChannelPlan:
    """Which of the pruned `kernels` (by name) lose whole units, and what each couples to."""
    by_variable = {id(variable): name for name, variable in kernels.items()}
    groups, kept = analyse(model)
    units: dict[str, UnitLayer] = {}
    for group in groups:
        name = by_variable.get(id(group.producer.kernel))
        if name is None:
            continue
        layer = UnitLayer(name, group.before)
        for branch in group.branches:
            for step in branch.path:  # a depthwise conv's filter of the unit goes with it
                between = by_variable.get(id(getattr(step.layer, "kernel", None)))
                if between is not None and isinstance(step.layer, DEPTHWISE):
                    layer.couplings.append(Coupling(between, 1, False))
            consumer = by_variable.get(id(branch.consumer.kernel))
            if consumer is not None:
                layer.couplings.append(Coupling(consumer, branch.spread,
                                                isinstance(branch.consumer, keras.layers.Dense)))
            elif not foldable(branch):
                kept[name] = (f"it feeds '{branch.consumer.name}', which is not pruned and pads "
                              f"with zeros, so its units could not be removed exactly")
                break
        else:
            units[name] = layer
    return ChannelPlan(units, {name: why for name, why in kept.items() if name in kernels})


def checked_plan(model: keras.Model, kernels: dict[str, keras.Variable]) -> ChannelPlan:
    """`plan`, refused in one line where no pruned kernel can lose whole units."""
    found = plan(model, kernels)
    if not found.layers:
        why = "; ".join(f"{name}: {reason}" for name, reason in found.kept.items())
        raise ConfigError(f"imp.granularity: channel, but no pruned layer of this model can lose "
                          f"whole units ({why or 'none is pruned'}); use granularity: weight, or "
                          f"prune a hidden Dense or Conv layer")
    return found


def _columns(array: np.ndarray) -> np.ndarray:
    """A kernel as (fan-in entries, units)."""
    return array.reshape(-1, array.shape[-1])


def alive_units(mask: np.ndarray) -> np.ndarray:
    return _columns(mask).any(axis=0)


def _drop_rows(mask: np.ndarray, coupling: Coupling, dead: np.ndarray) -> None:
    """Zero, in place, the consumer's incoming rows from the `dead` units."""
    if coupling.dense:
        mask.reshape(coupling.spread, dead.size, -1)[:, dead, :] = 0
    else:
        mask[..., dead, :] = 0


def couple(masks: dict[str, np.ndarray], channel_plan: ChannelPlan) -> dict[str, np.ndarray]:
    """The masks with every dead unit's incoming rows in its consumers zeroed too."""
    out = {name: mask.copy() for name, mask in masks.items()}
    for layer in channel_plan.layers.values():
        dead = ~alive_units(out[layer.kernel])
        for coupling in layer.couplings:
            _drop_rows(out[coupling.kernel], coupling, dead)
    return out


def _unit_counts(alive: dict[str, int], rate: float, scope: str, layer_rates: dict[str, float]
                 ) -> tuple[dict[str, int], int]:
    """Units each layer with its own rate loses, and how many go from the global pool."""
    own = {name: min(int(round(layer_rates.get(name, rate) * count)), count - 1)
           for name, count in alive.items() if scope == "layerwise" or name in layer_rates}
    pooled = sum(count for name, count in alive.items() if name not in own)
    return own, int(round(rate * pooled))


def _pool_removals(scores: dict[str, np.ndarray], live: dict[str, np.ndarray], count: int
                   ) -> dict[str, list[int]]:
    """The `count` lowest scores of the pool, each normalised by its layer's mean; a layer's
    last unit is never taken; ties go to the earlier layer and unit."""
    names = list(scores)
    if not names:
        return {}
    normal = [scores[n] / m if (m := scores[n].mean()) > 0 else np.zeros_like(scores[n])
              for n in names]
    order = np.argsort(np.concatenate(normal), kind="stable")
    owner = np.concatenate([np.full(len(live[n]), i) for i, n in enumerate(names)])
    position = np.concatenate([np.arange(len(live[n])) for n in names])
    left = {n: len(live[n]) for n in names}
    out: dict[str, list[int]] = {n: [] for n in names}
    for index in order:
        if count == 0:
            break
        name = names[owner[index]]
        if left[name] > 1:
            out[name].append(int(live[name][position[index]]))
            left[name] -= 1
            count -= 1
    return out


def channel_prune(weights: dict[str, np.ndarray], masks: dict[str, np.ndarray],
                  channel_plan: ChannelPlan, rate: float, scope: str = "global",
                  layer_rates: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """New masks removing round(rate * alive) of the surviving units, lowest L1 norm first."""
    layer_rates = layer_rates or {}
    live, scores = {}, {}
    for name in channel_plan.layers:
        live[name] = np.flatnonzero(alive_units(masks[name]))
        norms = _columns(np.abs(weights[name]) * masks[name]).sum(axis=0)
        scores[name] = norms[live[name]].astype(np.float64)
    own, pooled_count = _unit_counts({n: len(ix) for n, ix in live.items()}, rate, scope,
                                     layer_rates)
    removed = {name: [int(i) for i in live[name][np.argsort(scores[name], kind="stable")[:count]]]
               for name, count in own.items()}
    pool = [name for name in live if name not in own]
    removed |= _pool_removals({n: scores[n] for n in pool}, {n: live[n] for n in pool},
                              pooled_count)
    new = {name: mask.copy() for name, mask in masks.items()}
    for name, units in removed.items():
        new[name][..., units] = 0
    return couple(new, channel_plan)


def allowed_entries(name: str, masks: dict[str, np.ndarray], channel_plan: ChannelPlan
                    ) -> np.ndarray:
    """The entries of kernel `name` that its inputs' removal leaves: ones less the dead rows."""
    allowed = np.ones_like(masks[name])
    for layer in channel_plan.layers.values():
        dead = ~alive_units(masks[layer.kernel])
        for coupling in layer.couplings:
            if coupling.kernel == name:
                _drop_rows(allowed, coupling, dead)
    return allowed


def refill(unstructured: dict[str, np.ndarray], channel_plan: ChannelPlan
           ) -> dict[str, np.ndarray]:
    """IMP-Refill's masks from an unstructured round's (module docstring: the exact rule)."""
    new = {name: mask.copy() for name, mask in unstructured.items()}
    for name in channel_plan.layers:  # the model's order: inputs are decided first
        allowed = allowed_entries(name, new, channel_plan)
        survivors = _columns(unstructured[name] * allowed).sum(axis=0)
        per_channel = float(_columns(allowed)[:, 0].sum())
        keep = max(1, int(round(survivors.sum() / per_channel))) if per_channel else 1
        chosen = np.argsort(-survivors, kind="stable")[:keep]
        mask = np.zeros_like(allowed)
        mask[..., chosen] = allowed[..., chosen]
        new[name] = mask
    return couple(new, channel_plan)


def random_channel_masks(masks: dict[str, np.ndarray], channel_plan: ChannelPlan, seed: int
                         ) -> dict[str, np.ndarray]:
    """The random_prune control at channel granularity: in each unit layer as many units as the
    ticket keeps, chosen at random, dense; a layer that keeps its width keeps its count of
    surviving weights, placed at random among the entries its inputs' removal leaves."""
    rng = np.random.default_rng(seed)
    new = {name: np.ones_like(mask) for name, mask in masks.items()}
    for name in channel_plan.layers:
        width = masks[name].shape[-1]
        chosen = rng.permutation(width)[: int(alive_units(masks[name]).sum())]
        new[name][..., np.setdiff1d(np.arange(width), chosen)] = 0
    new = couple(new, channel_plan)
    for name, mask in masks.items():
        if name in channel_plan.layers:
            continue
        slots = np.flatnonzero(new[name])
        flat = np.zeros(mask.size, dtype=mask.dtype)
        flat[rng.permutation(slots)[: min(int(mask.sum()), slots.size)]] = 1
        new[name] = flat.reshape(mask.shape)
    return new


def channel_report(masks: dict[str, np.ndarray], channel_plan: ChannelPlan) -> dict:
    """The record's channel fields: per unit layer the fraction of units removed, the units left
    of all unit layers' units, and why each other pruned kernel keeps its width."""
    alive = {name: int(alive_units(masks[name]).sum()) for name in channel_plan.layers}
    total = sum(layer.width for layer in channel_plan.layers.values())
    return {
        "layer_channel_sparsity": {name: 1.0 - alive[name] / layer.width
                                   for name, layer in channel_plan.layers.items()},
        "remaining_units": sum(alive.values()),
        "total_units": total,
        "kept_width": channel_plan.kept,
    }


def prune_round(weights: dict[str, np.ndarray], masks: dict[str, np.ndarray],
                channel_plan: ChannelPlan, refilled: bool, rate: float, scope: str,
                layer_rates: dict[str, float]) -> dict[str, np.ndarray]:
    """One round's new masks: IMP-Refill (`refilled`) or channel IMP."""
    if refilled:
        return refill(magnitude_prune(weights, masks, rate, scope, layer_rates), channel_plan)
    return channel_prune(weights, masks, channel_plan, rate, scope, layer_rates)


class ChannelMaskManager(MaskManager):
    """A MaskManager whose rounds remove whole units (or refill), whose random_prune control
    draws whole units, and whose report adds the channel fields."""

    def __init__(self, model: keras.Model, kernels: dict[str, keras.Variable], refilled: bool):
        super().__init__(model, kernels)
        self.plan = checked_plan(model, kernels)
        self.refilled = refilled

    def prune(self, rate: float, scope: str, layer_rates: dict[str, float]) -> None:
        self.set_masks(prune_round(self.kernels(), self.masks, self.plan, self.refilled, rate,
                                   scope, layer_rates))

    def random_like(self, masks: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
        return random_channel_masks(masks, self.plan, seed)

    def report(self) -> dict:
        return {**super().report(), **channel_report(self.masks, self.plan)}


def mask_manager(model: keras.Model, kernels: dict[str, keras.Variable], imp: ImpConfig
                 ) -> MaskManager:
    """The run's mask manager: weight granularity's, or channel granularity's."""
    if imp.granularity == "channel":
        return ChannelMaskManager(model, kernels, imp.refill)
    return MaskManager(model, kernels)
