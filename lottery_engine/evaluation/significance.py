"""Paired comparisons over seeds: is the ticket better than a control, and by how much?

Seeds pair the series: a ticket and its controls of one seed share the data split, the data order
and (for random prune) the initialisation, so per-seed differences remove that shared noise. For
each round we report the mean difference, its 95% confidence interval from the t distribution with
n - 1 degrees of freedom, and the two-sided p-value of the paired t-test. An interval that spans
0 is "not significant"; with one seed there is no interval at all, nor when every seed gives the
same difference ("no spread": a t interval of width 0 would read as certainty, not as too few
seeds to tell).

A write-up tests every round against every control (LeNet-300-100: 18 rounds x 2 controls = 36
tests), so at 5% each about two would come out "significant" by chance alone. `holm` adjusts a
family's p-values (Holm 1979: controls the family-wise error rate at 5% under any dependence
between the tests, and is uniformly more powerful than Bonferroni); a Paired with an adjusted p
is significant by that p alone. Its interval stays the per-test 95% interval: it says how large
the difference is, not whether it survived the family.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

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
    p_adjusted: float | None = None  # Holm-adjusted p within its family (`holm`); None: untested


    @property
    def no_spread(self) -> bool:
        """Several seeds, all with the same difference: nothing to build an interval from."""
        return self.n > 1 and math.isnan(self.low)

    @property
    def significant(self) -> bool:
        """By the adjusted p where the family was adjusted (`holm`), else by the interval."""
        if self.n < 2 or self.no_spread:
            return False
        if self.p_adjusted is not None:
            return self.p_adjusted < 1 - LEVEL
        return self.low > 0 or self.high < 0

    def text(self, scale: float = 100.0, unit: str = " points") -> str:
        """'+1.23 points (95% CI +0.40 to +2.06, p = 0.012)' — the form verdicts quote."""
        head = f"{scale * self.mean:+.2f}{unit}"
        if self.n < 2:
            return head + " (one seed: no interval, no significance claimed)"
        if self.no_spread:
            return (head + f" (no spread: all {self.n} seeds give this difference; no interval, "
                    f"no significance claimed)")
        adjusted = ("" if self.p_adjusted is None
                    else f", Holm-adjusted p {p_text(self.p_adjusted)}")
        return (f"{head} (95% CI {scale * self.low:+.2f} to {scale * self.high:+.2f}, "
                f"p {p_text(self.p)}{adjusted}, n = {self.n})")


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


def holm(family: list[Paired]) -> list[Paired]:
    """`family` with Holm-adjusted p-values: sorted ascending, the i-th smallest of m tested p
    becomes max over j <= i of min(1, (m - j) p_(j)) (0-based j). Comparisons without a p (one
    seed, no spread) are not tests and do not count in m; they keep p_adjusted None."""
    tested = sorted((d.p, i) for i, d in enumerate(family) if not math.isnan(d.p))
    adjusted: dict[int, float] = {}
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return [replace(d, p_adjusted=adjusted[i]) if i in adjusted else d
            for i, d in enumerate(family)]
