"""The error barrier between two trained networks (Frankle, Dziugaite, Roy & Carbin, ICML 2020):
the straight line between their weights, and how far the error along it rises above its ends.

Plain numpy, free of TensorFlow, so that the definition can be checked by hand on error curves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def alphas(points: int) -> list[float]:
    """`points` evenly spaced α from 0 to 1, both ends included (the endpoints themselves)."""
    return [float(a) for a in np.linspace(0.0, 1.0, points)]


def interpolate(a: list[np.ndarray], b: list[np.ndarray], alpha: float) -> list[np.ndarray]:
    """(1 − α)·a + α·b, weight by weight: at α = 0 exactly a, at α = 1 exactly b, and zero
    wherever both are zero (a pruned weight stays pruned along the whole line)."""
    return [((1.0 - alpha) * wa + alpha * wb).astype(wa.dtype) for wa, wb in zip(a, b)]


def barrier(errors: Sequence[float]) -> float:
    """The instability of a pair: the highest error along the line minus the mean of the two
    endpoints' errors (the curve's first and last values). Never negative, the ends being on
    the line; 0 for two endpoints of equal error with nothing higher between them."""
    if len(errors) < 2:
        raise ValueError("an error curve needs both endpoints: at least 2 points")
    return float(max(errors) - (errors[0] + errors[-1]) / 2.0)
