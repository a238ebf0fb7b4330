"""The write-up's "Instability" (issue 31; Frankle, Dziugaite, Roy & Carbin, ICML 2020): for the
arms whose runs were analysed (an arm's `instability:`, instability_arm.py), the test instability
against the rewind step k, one line per round's sparsity, each a mean over seeds with its 95%
interval, and from which k on each round's subnetwork is stable.

It reads the runs' instability.jsonl and nothing else: no model is loaded, no TensorFlow imported.
A seed's instability at (r, k) is the mean over its pairs of copies; the interval is over seeds
(t distribution, significance.half_width) as everywhere in the write-up. Stable at k: the mean
below THRESHOLD (the paper's 2 points); stable from k on: at k and at every larger k analysed,
since a barrier that returns at a later k is no stability to rewind to.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

from ..evaluation.significance import half_width
from ..report.instability_figures import by_round_and_k, over_seeds, read

TITLE = "Instability"
THRESHOLD = 0.02  # a barrier below 2 points of test error is "stable" (Frankle et al. 2020)


@dataclass
class Point:
    """One round of an arm at one rewind step, over its seeds (values in seed order)."""

    round: int
    weights: float  # fraction of prunable weights left (1 − the lines' sparsity)
    rewind_step: int
    barrier: list[float]  # test instability per seed: the mean over the seed's pairs
    end_error: list[float]  # the copies' own test error per seed: the mean over their ends

    @property
    def mean(self) -> float:
        return statistics.fmean(self.barrier)

    @property
    def half(self) -> float:
        """Half the 95% interval over seeds; 0 with one seed (no interval)."""
        return half_width(self.barrier) if len(self.barrier) > 1 else 0.0


def points(by_seed: dict[int, Path]) -> dict[int, list[Point]]:
    """By round, its points at the rewind steps every seed analysed, k ascending ({} when a
    seed has no line)."""
    runs = [by_round_and_k(read(folder)) for _, folder in sorted(by_seed.items())]
    out: dict[int, list[Point]] = {}
    for r in sorted(set.intersection(*(set(run) for run in runs))):
        steps = sorted(set.intersection(*(set(run[r]) for run in runs)))
        out[r] = [Point(r, 1.0 - runs[0][r][k][0]["sparsity"], k,
                        [statistics.fmean(line["test_instability"] for line in run[r][k])
                         for run in runs],
                        [statistics.fmean(e for line in run[r][k]
                                          for e in line["endpoint_test_error"]) for run in runs])
                  for k in steps]
    return out


def _points_text(p: Point) -> str:
    """'0.41 ± 0.30' (percentage points: mean ± half the 95% interval), or the one seed's."""
    return f"{100 * p.mean:.2f}" + (f" ± {100 * p.half:.2f}" if len(p.barrier) > 1 else "")


def _name(p: Point) -> str:
    return f"round {p.round} ({100 * p.weights:.2f}% of the weights left)"


def stable_from(line: list[Point]) -> Point | None:
    """The point of smallest k from which every k analysed is stable; None when the largest k
    analysed is not."""
    first = None
    for p in reversed(line):
        if p.mean >= THRESHOLD:
            break
        first = p
    return first


def verdict(line: list[Point]) -> str:
    """One sentence: from which k on the round is stable, quoting the barrier there (with its
    interval's upper end against the threshold) and at the k before, and the copies' error."""
    first, last = stable_from(line), line[-1]
    ends = (f"its copies end at {100 * statistics.fmean(last.end_error):.2f}% test error at "
            f"k = {last.rewind_step:,}")
    if first is None:
        return (f"{_name(last)}: not stable at any k analysed; the barrier is "
                f"{_points_text(last)} points at the largest, k = {last.rewind_step:,} ({ends}).")
    text = f"{_name(first)}: stable from k = {first.rewind_step:,}, barrier {_points_text(first)}"
    if len(first.barrier) > 1:
        high = 100 * (first.mean + first.half)
        text += (f" points (95% interval's upper end {high:.2f}, "
                 f"{'also below' if high < 100 * THRESHOLD else 'not below'} the threshold)")
    else:
        text += " points (one seed: no interval)"
    before = line.index(first) - 1
    if before >= 0:
        text += (f", against {_points_text(line[before])} at k = "
                 f"{line[before].rewind_step:,}")
    return text + f"; {ends}."


def table(arm: dict[int, list[Point]]) -> str:
    """Test instability in points by rewind step (rows) and round (columns)."""
    steps = sorted({p.rewind_step for line in arm.values() for p in line})
    head = ["k"] + [f"round {r} ({100 * line[0].weights:.2f}% left)" for r, line in arm.items()]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in steps:
        cells = [next((_points_text(p) for p in line if p.rewind_step == k), "–")
                 for line in arm.values()]
        rows.append(f"| {k:,} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def cost(by_seed: dict[int, Path]) -> tuple[float, float]:
    """Seconds the arm's analyses took training copies (once per (r, k)) and evaluating lines."""
    training = evaluating = 0.0
    for folder in by_seed.values():
        lines = read(folder)
        training += sum({(x["round"], x["rewind_step"], x["points"]): x["copies_seconds"]
                         for x in lines}.values())
        evaluating += sum(x["line_seconds"] for x in lines)
    return training, evaluating


def figure_path(path: Path) -> Path:
    """The section's figure beside a write-up: its name with .instability.png (a name no other
    write-up's figure, `<its stem>.png`, takes unless its own name has that dot)."""
    return Path(path).with_name(f"{Path(path).stem}.instability.png")


def analysed(folders: dict[str, dict[int, Path]]) -> dict[str, dict[int, list[Point]]]:
    """The arms whose runs were analysed, each by round its points (`points`)."""
    arms = {label: points(by_seed) for label, by_seed in folders.items()}
    return {label: arm for label, arm in arms.items() if arm}


def figure(arms: dict[str, dict[int, list[Point]]]) -> go.Figure:
    """Instability vs k, a panel per arm, a line per round with its interval over seeds, the
    threshold dotted: the write-up's figure, and the Experiments page's."""
    return over_seeds({label: {_name(line[0]): [(p.rewind_step, p.mean, p.half) for p in line]
                               for line in arm.values()} for label, arm in arms.items()},
                      THRESHOLD)


def section(folders: dict[str, dict[int, Path]], path: Path,
            write_png: Callable[[object, Path], None]) -> str:
    """The section, its figure written with `write_png` beside the write-up at `path`; "" when
    no arm's runs were analysed."""
    arms = analysed(folders)
    if not arms:
        return ""
    png = figure_path(path)
    write_png(figure(arms), png)
    parts = [f"## {TITLE}\n",
             "Is a round's subnetwork stable to SGD noise (Frankle, Dziugaite, Roy & Carbin, "
             "ICML 2020)? For each analysed round (its mask; round 0 is the dense network) and "
             "rewind step k, copies start from round 0's weights after step k under the round's "
             "mask and train the rest of the round in their own data orders, everything else "
             "equal; the test error is measured at evenly spaced points on the line between "
             "each pair of copies. The **instability** is the highest error on the line minus "
             "the mean of its two ends, in percentage points: each seed's is the mean over its "
             "pairs, given as the mean ± half the 95% interval over seeds (t distribution). "
             f"**Threshold:** stable at k when that mean is below {100 * THRESHOLD:g} points "
             f"(the paper's); stable from k on when it is at k and at every larger k "
             f"analysed.\n",
             f"![Instability vs rewind step]({png.name})\n"]
    for label, arm in arms.items():
        seeds = sorted(folders[label])
        first = read(folders[label][seeds[0]])[0]
        training, evaluating = cost(folders[label])
        parts.append(f"### {label}\n\n{first['copies']} copies, {first['points']} points per "
                     f"line, seeds {', '.join(map(str, seeds))}.\n")
        parts.append("\n".join(f"- {verdict(line)}" for line in arm.values()) + "\n")
        parts.append(f"Test instability (points) by rewind step k:\n\n{table(arm)}\n")
        parts.append(f"The analyses took {(training + evaluating) / 60:.1f} min of the arm's "
                     f"job time: {training / 60:.1f} min training copies, {evaluating / 60:.1f} "
                     f"min evaluating lines (replaying round 0 to each k not counted).\n")
    return "\n".join(parts)
