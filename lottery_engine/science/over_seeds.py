"""An experiment arm's numbers over its seeds: per-round cells, seed-averaged records, paired tests.

Accuracy is taken at the early-stop point (the validation step of lowest validation loss, Frankle &
Carbin §2), with the iteration of that point. Ticket-minus-control differences are paired by seed
(significance.py), and an arm's tests (every round against every control) are one family whose
p-values are Holm-adjusted: a round is called significant only by its adjusted p. Nothing here
imports TensorFlow: the dashboard draws experiments with it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import controls, load as config_lib
from ..evaluation.significance import Paired, holm, paired
from ..foundations import runfolder
from ..foundations.events import IMP
from ..foundations.round_record import RoundRecord


@dataclass
class Cell:
    """One series at one round over seeds (values in seed order)."""

    round: int
    remaining: float  # fraction of prunable weights left
    accuracy: list[float]  # test accuracy at early stop: reported, never chosen on
    iteration: list[float]
    stopped_early: int  # seeds whose round ended by early stopping rather than the step cap
    val_accuracy: list[float]  # validation accuracy at early stop: what choices are made on

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracy)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.accuracy) if len(self.accuracy) > 1 else 0.0


def _series_order(name: str) -> tuple[int, str]:
    """Ticket first, then the controls in their usual order, then anything else."""
    order = (IMP,) + controls.names()
    return (order.index(name) if name in order else len(order), name)


def aggregate(folders: dict[int, Path]) -> dict[str, list[Cell]]:
    """Per series, the rounds every seed has finished, seeds in the same order for every series
    (so cells pair by position)."""
    seeds = sorted(folders)
    by_seed = [runfolder.series(folders[s]) for s in seeds]
    out: dict[str, list[Cell]] = {}
    for name in sorted(by_seed[0], key=_series_order):
        rounds = min(len(s.get(name, [])) for s in by_seed)
        cells = []
        for r in range(rounds):
            records = [s[name][r] for s in by_seed]
            cells.append(Cell(r, records[0].remaining_prunable / records[0].total_prunable,
                              [x.early_stop_test_accuracy for x in records],
                              [x.early_stop_step for x in records],
                              sum(x.stopped_early for x in records),
                              [x.early_stop_val_accuracy for x in records]))
        out[name] = cells
    return out


def mean_records(folders: dict[int, Path]) -> dict[str, list[RoundRecord]]:
    """Round records averaged over seeds (numbers only; the rest from the first seed), so an
    experiment arm draws on the Compare page like one run."""
    by_seed = [runfolder.series(f) for f in folders.values()]
    out: dict[str, list[RoundRecord]] = {}
    for name in by_seed[0]:
        rounds = min(len(s.get(name, [])) for s in by_seed)
        out[name] = [RoundRecord.from_json({key: (statistics.fmean(r[key] for r in records)
                            if all(isinstance(r.get(key), (int, float)) and
                                   not isinstance(r.get(key), bool) for r in records)
                            else value) for key, value in records[0].items()})
                     for records in ([s[name][i] for s in by_seed] for i in range(rounds))]
    return out


def comparisons(series: dict[str, list[Cell]]) -> dict[str, list[Paired]]:
    """Ticket minus each control, per round ≥ 1, paired by seed; the arm's tests over every
    round and control Holm-adjusted as one family."""
    imp = series[IMP]
    raw = {c: [paired(imp[r].accuracy, series[c][r].accuracy)
               for r in range(1, min(len(imp), len(series[c])))]
           for c in controls.names() if c in series}
    adjusted = iter(holm([d for diffs in raw.values() for d in diffs]))
    return {c: [next(adjusted) for _ in diffs] for c, diffs in raw.items()}


def tests_in(diffs: dict[str, list[Paired]]) -> int:
    """How many tests a family holds: the m of its Holm adjustment."""
    return sum(not d.no_spread and d.n > 1 for ds in diffs.values() for d in ds)


def clock(folder: Path) -> config_lib.StepClock:
    """A finished run's step clock (T and k), from its frozen config and its own training
    split, as the trainer had it."""
    with np.load(Path(folder) / runfolder.SPLIT) as split:
        return config_lib.step_clock(config_lib.load_run(folder), len(split["train"]))


def steps_trained(folders: dict[str, dict[int, Path]]) -> tuple[int, int]:
    """Optimizer steps trained (a control's round 0 is the ticket's) and what the cap allows,
    T − start_step per round. Steps, not epochs: a round that stops mid-epoch trained only part
    of its last one, so counting epochs begun overstates what was trained."""
    trained = budget = 0
    for by_seed in folders.values():
        for folder in by_seed.values():
            total = clock(folder).total
            for name, records in runfolder.series(folder).items():
                counted = [r for r in records if name == IMP or r.round > 0]
                trained += sum(r.steps for r in counted)
                budget += sum(total - r.start_step for r in counted)
    return trained, budget
