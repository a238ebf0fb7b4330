"""The write-up's "Tickets that run faster": for an experiment whose arms prune at different
granularities (weights, channels, IMP-Refill), what each arm's tickets buy in size and latency.

It reads the exports of every round (export/every_round.py, an arm's `export:`) and nothing else:
no model is loaded, no TensorFlow imported. Speed-ups and sizes are ratios against the dense
network: in Keras, the compact model against the masked dense ticket timed in the same export
(same architecture, same FLOPs as the dense network); in LiteRT, a round's file against round 0's
file of the same format (the dense network converted), exported by the same process. Per arm it
gives accuracy against remaining weights and against those speed-ups, each a mean over seeds with
a 95% interval, and the fastest ticket within 1 point of dense, chosen on validation accuracy,
never test; its test accuracy, size and speed-ups are then reported against the targets of
issue 30.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..evaluation.significance import half_width
from ..export import export_records
from ..foundations import runfolder
from .ship import HOLD_POINTS

TITLE = "Tickets that run faster"
BATCHES = ("batch_1", "batch_256")
RUNTIMES = {"compact": "Keras", "tflite": "LiteRT float", "tflite-int8": "LiteRT int8"}
TARGET_SPEED = {"batch_256": 2.0, "batch_1": 1.5}  # at least, in Keras and in LiteRT
TARGET_SIZE = 0.4  # at most, the compact file against the dense one


def granularity(folder: Path) -> str:
    """How a run pruned, from its frozen config: weights, channels, or channels by IMP-Refill."""
    imp = runfolder.read_frozen_config(folder)["imp"]
    if imp.get("granularity", "weight") != "channel":
        return "weights"
    return "channels, IMP-Refill" if imp.get("refill") else "channels"


def ratios(records: dict[str, dict], dense: dict[str, dict]) -> dict[str, float]:
    """One ticket's size and speed-ups against the dense network, by (format, what): `records`
    are the ticket's export records by format, `dense` the dense network's (round 0) in the
    same formats. The compact model is compared with its own export's dense reference; a LiteRT
    file with the dense network's file of its format. Formats that failed or are missing are
    left out."""
    out: dict[str, float] = {}
    compact = records.get("compact", {})
    if compact.get("status") == "ok":
        reference = compact["reference"]
        out["compact size"] = compact["bytes"] / reference["bytes"]
        for batch in BATCHES:
            out[f"compact {batch}"] = (reference["latency_ms_per_sample"][batch]
                                       / compact["latency_ms_per_sample"][batch])
    for fmt in ("tflite", "tflite-int8"):
        mine, base = records.get(fmt, {}), dense.get(fmt, {})
        if mine.get("status") == base.get("status") == "ok":
            out[f"{fmt} size"] = mine["bytes"] / base["bytes"]
            for batch in BATCHES:
                out[f"{fmt} {batch}"] = (base["latency_ms_per_sample"][batch]
                                         / mine["latency_ms_per_sample"][batch])
    return out


@dataclass
class Point:
    """One arm at one round over its seeds (values in seed order)."""

    round: int
    weights: float  # fraction of prunable weights left (first seed; every seed prunes alike)
    units: float | None  # fraction of prunable units left; None for a weight run
    val: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    ratios: dict[str, list[float]] = field(default_factory=dict)  # ratios() over seeds


def points(by_seed: dict[int, Path]) -> list[Point]:
    """The rounds every seed finished, with their exports' ratios where every seed has them."""
    runs = [(runfolder.read_rounds(f), export_records.read_by_round(f))
            for _, f in sorted(by_seed.items())]
    out = []
    for r in range(min(len(records) for records, _ in runs)):
        first = runs[0][0][r]
        units = (first["remaining_units"] / first["total_units"]
                 if first.get("total_units") else None)
        point = Point(r, first["remaining_prunable"] / first["total_prunable"], units,
                      [rs[r].early_stop_val_accuracy for rs, _ in runs],
                      [rs[r].early_stop_test_accuracy for rs, _ in runs])
        each = [ratios(exports.get(r, {}), exports.get(0, {})) for _, exports in runs]
        point.ratios = {key: [e[key] for e in each] for key in each[0]
                        if all(key in e for e in each)}
        out.append(point)
    return out


def _interval(values: list[float], scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    """'2.31× ± 0.12' (mean ± half the 95% interval over seeds), or the one value."""
    mean = scale * statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}{unit}"
    return f"{mean:.{digits}f}{unit} ± {scale * half_width(values):.{digits}f}"


def _pct(fraction: float | None) -> str:
    return "–" if fraction is None else f"{100 * fraction:.1f}%"


COLUMNS = [("compact size", "size × dense (compact)")] + [
    (f"{fmt} {batch}", f"{name} speed-up b{batch.split('_')[1]}")
    for fmt, name in RUNTIMES.items() for batch in BATCHES]


def table(arm: list[Point]) -> str:
    """Accuracy against weights and units left and against size and speed-ups, per round."""
    head = ["round", "weights left", "units left", "val acc. %", "test acc. %"]
    head += [title for _, title in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in arm:
        row = [str(p.round), _pct(p.weights), _pct(p.units), _interval(p.val, 100),
               _interval(p.test, 100)]
        row += [_interval(p.ratios[key], unit="×") if key in p.ratios else "–"
                for key, _ in COLUMNS]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def fastest(arm: list[Point]) -> Point | None:
    """The round of highest mean Keras speed-up at batch 256 among those within 1 point of dense
    in validation accuracy (means over seeds); the sparser on a tie; None if no pruned round
    holds or none was exported. Validation, never test: the test accuracy reported for it would
    otherwise be optimistic."""
    dense = statistics.fmean(arm[0].val)
    held = [p for p in arm[1:] if statistics.fmean(p.val) >= dense - HOLD_POINTS
            and "compact batch_256" in p.ratios]
    if not held:
        return None
    return max(held, key=lambda p: (statistics.fmean(p.ratios["compact batch_256"]), p.round))


def _targets(point: Point) -> str:
    """Which of issue 30's targets the ticket meets, each with its number."""
    said = []
    size = point.ratios.get("compact size")
    if size:
        met = statistics.fmean(size) <= TARGET_SIZE
        said.append(f"file {statistics.fmean(size):.2f}× dense ({'meets' if met else 'misses'} "
                    f"≤ {TARGET_SIZE}×)")
    for batch, target in TARGET_SPEED.items():
        for fmt in ("compact", "tflite"):
            values = point.ratios.get(f"{fmt} {batch}")
            if values:
                mean = statistics.fmean(values)
                said.append(f"{RUNTIMES[fmt]} {mean:.2f}× at batch {batch.split('_')[1]} "
                            f"({'meets' if mean >= target else 'misses'} ≥ {target}×)")
    return "; ".join(said) or "no export to measure"


def verdict(label: str, arm: list[Point]) -> str:
    """The arm's fastest ticket within 1 point of dense, what it costs and what it buys."""
    if not arm:
        return f"{label}: no round that every seed has finished."
    dense = arm[0]
    chosen = fastest(arm)
    if chosen is None:
        return (f"{label}: no exported pruning round within 1 point of dense in validation "
                f"accuracy ({_interval(dense.val, 100)}%, mean over seeds).")
    test_change = 100 * (statistics.fmean(chosen.test) - statistics.fmean(dense.test))
    speeds = ", ".join(f"{RUNTIMES[fmt]} {_interval(chosen.ratios[f'{fmt} {b}'], unit='×')} at "
                       f"batch {b.split('_')[1]}" for fmt in RUNTIMES for b in BATCHES
                       if f"{fmt} {b}" in chosen.ratios)
    return (f"{label}: fastest ticket within 1 point of dense (chosen on validation accuracy, "
            f"{_interval(chosen.val, 100)}% against {_interval(dense.val, 100)}%): round "
            f"{chosen.round}, {_pct(chosen.weights)} of the weights"
            + (f" and {_pct(chosen.units)} of the units" if chosen.units is not None else "")
            + f" left; test accuracy {_interval(chosen.test, 100)}% against dense's "
            f"{_interval(dense.test, 100)}% ({test_change:+.2f} points, reported, not chosen "
            f"on: {'within' if test_change >= -100 * HOLD_POINTS else 'not within'} 1 point on "
            f"test); speed-up {speeds}. Against the targets: {_targets(chosen)}.{_noise(dense)}")


def _noise(dense: Point) -> str:
    """What the dense network timed against itself reads (round 0's compact model removes
    nothing, so its speed-ups should be 1×): how much of a ratio is the machine's noise."""
    reads = [f"{_interval(dense.ratios[f'compact {b}'], unit='×')} at batch {b.split('_')[1]}"
             for b in BATCHES if f"compact {b}" in dense.ratios]
    return (f" The dense network timed against itself (round 0) reads {' and '.join(reads)} in "
            f"Keras: a ratio within that distance of 1× is noise." if reads else "")


def _kind(by_seed: dict[int, Path]) -> str:
    """An arm's granularity, read from its first seed's run (its seeds share the config)."""
    return granularity(by_seed[min(by_seed)])


def applies(folders: dict[str, dict[int, Path]]) -> bool:
    """Whether the experiment's arms differ in granularity (and so get the section)."""
    return len({_kind(by_seed) for by_seed in folders.values()}) > 1


def section(folders: dict[str, dict[int, Path]]) -> str:
    """The section, or "" for an experiment whose arms all prune alike."""
    if not applies(folders):
        return ""
    arms = {label: points(by_seed) for label, by_seed in folders.items()}
    parts = [f"## {TITLE}\n",
             "Each arm's every round exported (compact Keras, float and int8 LiteRT) and timed at "
             "batch 1 and 256 on one thread, median of repeats after a warm-up. Speed-ups and "
             "sizes are against the dense network: Keras, the compact model against the masked "
             "dense ticket timed in the same export; LiteRT, the round's file against round 0's "
             "of the same format. Mean ± half the 95% interval over seeds (t distribution). "
             f"Targets (issue 30): within 1 point of dense, ≥ {TARGET_SPEED['batch_256']}× "
             f"faster at batch 256 and ≥ {TARGET_SPEED['batch_1']}× at batch 1 in Keras and "
             f"LiteRT, at ≤ {TARGET_SIZE}× the dense file.\n",
             "\n".join(f"- {verdict(f'{label} ({_kind(folders[label])})', arm)}"
                       for label, arm in arms.items()) + "\n"]
    for label, arm in arms.items():
        parts.append(f"### {label}\n\n{table(arm)}\n")
    return "\n".join(parts)
