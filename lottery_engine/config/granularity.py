"""The checks of `imp.granularity` and `imp.refill`, and which built-in layers can lose whole units.

Channel granularity removes whole units (pruning/channels.py) from the layers whose units can go
exactly: never the output layer, and in ResNet-20 only each block's first conv (the others feed a
residual Add, whose inputs keep their width: its registry entry's `unit_layers`). Knowing that
per built-in network lets preflight refuse a config that prunes none of them without building
the model; a user's model is refused in the same words when it is built (model_summary, and the
run's start).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from .architectures import ARCHITECTURES, prunable_layers
from .schema import GRANULARITIES, Config, Problems
from .values import check_bool, choice, fail


def _refill_needs_channel(imp: Any) -> None:
    if imp.refill is True and imp.granularity != "channel":
        fail("imp.refill", imp.refill, "IMP-Refill keeps whole channels, so it needs "
             "imp.granularity: channel; set granularity: channel or refill: false")


def check_granularity(cfg: Config, problems: Problems) -> None:
    """imp.granularity and imp.refill, each refusal collected in `problems`."""
    problems.check(choice, "imp.granularity", cfg.imp.granularity, GRANULARITIES)
    problems.check(check_bool, "imp.refill", cfg.imp.refill)
    problems.check(_refill_needs_channel, cfg.imp, needs=("imp.granularity", "imp.refill"))


def builtin_unit_layers(arch: str) -> list[str] | None:
    """The layers of a built-in network whose units channel pruning may remove (None for a
    user's model, known only once built)."""
    entry = ARCHITECTURES.get(arch)
    if entry is None or entry.own:
        return None
    if entry.unit_layers is not None:
        return list(entry.unit_layers)
    return [name for name in prunable_layers(arch) if name != "output"]


def check_unit_layers(cfg: Config) -> None:
    """A channel run of a built-in network prunes at least one layer that can lose units."""
    if cfg.imp.granularity != "channel":
        return
    units = builtin_unit_layers(cfg.train.arch)
    patterns = cfg.imp.prunable_layers
    if units is None or patterns is None:
        return
    if not any(fnmatch.fnmatchcase(name, p) for name in units for p in patterns):
        fail("imp.granularity", "channel", f"no pruned layer of {cfg.train.arch} can lose whole "
             f"units (the output layer keeps its units; those that can: {', '.join(units)}); "
             f"use granularity: weight, or add one of them to imp.prunable_layers")
