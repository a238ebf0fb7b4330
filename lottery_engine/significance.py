"""Paired comparisons over seeds: is the ticket better than a control, and by how much?

Seeds pair the series: a ticket and its controls of one seed share the data split, the data order
and (for random prune) the initialisation, so per-seed differences remove that shared noise. For
each round we report the mean difference, its 95% confidence interval from the t distribution with
n - 1 degrees of freedom, and the two-sided p-value of the paired t-test. An interval that spans
0 is "not significant"; with one seed there is no interval at all, nor when every seed gives the
same difference ("no spread": a t interval of width 0 would read as certainty, not as too few
seeds to tell).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95
# Differences closer than this (relative to the largest value compared) are one difference seen
# through float rounding: 0.95 - 0.94 and 0.93 - 0.92 differ by 1e-16, which would otherwise give a
# vanishing interval and p ~ 0. Accuracies measured on any real test set differ by far more.
NO_SPREAD = 1e-9


@dataclass(frozen=True)
class Paired:
    n: int
    mean: float
    low: float  # 95% confidence interval of the mean difference; nan with one pair or no spread
    high: float
    p: float  # two-sided paired t-test; nan with one pair or no spread

    @property
    def no_spread(self) -> bool:
        """Several seeds, all with the same difference: nothing to build an interval from."""
        return self.n > 1 and math.isnan(self.low)

    @property
    def significant(self) -> bool:
        return self.n > 1 and not self.no_spread and (self.low > 0 or self.high < 0)

    def text(self, scale: float = 100.0, unit: str = " points") -> str:
        """'+1.23 points (95% CI +0.40 to +2.06, p = 0.012)' — the form verdicts quote."""
        head = f"{scale * self.mean:+.2f}{unit}"
        if self.n < 2:
            return head + " (one seed: no interval, no significance claimed)"
        if self.no_spread:
            return (head + f" (no spread: all {self.n} seeds give this difference; no interval, "
                    f"no significance claimed)")
        return (f"{head} (95% CI {scale * self.low:+.2f} to {scale * self.high:+.2f}, "
                f"p {p_text(self.p)}, n = {self.n})")


def p_text(p: float) -> str:
    """'= 0.012', '< 0.001' or '= n/a'."""
    if math.isnan(p):
        return "= n/a"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def half_width(values: list[float]) -> float:
    """Half the 95% confidence interval of the mean of `values` (t, n - 1 degrees of freedom)."""
    n = len(values)
    return stats.t.ppf(0.5 + LEVEL / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)


def paired(a: list[float], b: list[float]) -> Paired:
    """Difference a − b paired by position (seed)."""
    if len(a) != len(b) or not a:
        raise ValueError("paired samples must be non-empty and of equal length")
    diffs = [x - y for x, y in zip(a, b)]
    n, mean = len(diffs), statistics.fmean(diffs)
    if n < 2 or statistics.stdev(diffs) <= NO_SPREAD * max(abs(x) for x in a + b):
        return Paired(n, mean, math.nan, math.nan, math.nan)
    sem = statistics.stdev(diffs) / math.sqrt(n)
    half = half_width(diffs)
    p = float(2 * stats.t.sf(abs(mean / sem), n - 1))  # paired t-test
    return Paired(n, mean, mean - half, mean + half, p)
