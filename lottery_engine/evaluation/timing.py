"""Wall time per sample of a call on one batch: the median of repeated calls after a warm-up call,
and the fastest and slowest of them. The export's latencies and each round's inference time are
timed alike, so that a round's line on the Run page says how far apart two numbers must be to
differ: a worker shares its machine with other jobs, and a single mean of three passes drew the
sparser tickets of one run 3x slower than its dense network (issue 33)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Timing:
    """Milliseconds per sample: the median call, and the fastest and slowest calls."""

    median: float
    low: float
    high: float

    def plus(self, ms: float) -> Timing:
        """The time of a model run after a fixed `ms` per sample (a frozen base's)."""
        return Timing(self.median + ms, self.low + ms, self.high + ms)


def time_per_sample(call: Callable[[Any], Any], batch: Any, size: int, repeats: int) -> Timing:
    """`repeats` timed calls of `call(batch)` after one warm-up call, per sample of `size`."""
    call(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(batch)
        times.append(1000.0 * (time.perf_counter() - start) / size)
    return Timing(statistics.median(times), min(times), max(times))
