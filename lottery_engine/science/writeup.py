"""An experiment's write-up: per-round numbers over seeds, paired tests, the Figure 4 pair, RESULTS.md.

What is measured is said in the text itself: accuracy at the early-stop point (the validation
step of lowest validation loss, Frankle & Carbin §2) and the iteration of that point; tickets
are chosen on validation only and test accuracy is only reported. Ticket-minus-control differences
are paired by seed (significance.py), and an arm's tests (every round against every control) are
one family whose p-values are Holm-adjusted: a round is called significant only by its adjusted p
(over_seeds.py reads the numbers and makes the tests). Verdicts quote those numbers and nothing
else.

Each arm also names its ticket to ship (ship.py), chosen on validation, with what its compact
export buys in size and batch-1 latency; arms that differ in granularity get "Tickets that run
faster" (faster.py), from the exports of every round; arms whose runs were analysed get
"Instability" (instability_section.py). Only the ship line may import TensorFlow,
and only when the run has no such export yet: the dashboard reads the rest of this module.

A write-up is a .md file whose figure is the same name with .png; its first line (marker) names its
experiment, so remaking it overwrites that earlier write-up and nothing else.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from ..config.controls import CONTROLS
from ..config.load import ConfigError
from ..evaluation.significance import LEVEL, Paired, p_text
from ..export import export_records
from ..foundations import runfolder
from ..foundations.events import IMP
from ..foundations.faults import describe
from ..report.compare import experiment_figure
from ..report.page import network_text
from . import faster, instability_section
from .over_seeds import Cell, aggregate, clock, comparisons, steps_trained, tests_in
from .ship import HOLD_POINTS, compact_export, to_ship

SERIES_NAMES = {IMP: "winning ticket", **{c.name: c.label for c in CONTROLS.values()}}


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.2f}%" if fraction >= 0.01 else f"{100 * fraction:.3f}%"


def _rounds_text(cells: list[Cell], rounds: list[int]) -> str:
    """Rounds as contiguous spans with the weights left, e.g. 'rounds 12–18 (6.95% to 1.85% of
    the weights left) and round 3 (51.28% left)'; 'no round' when empty."""
    spans: list[list[int]] = []
    for r in sorted(rounds):
        if spans and r == spans[-1][-1] + 1:
            spans[-1].append(r)
        else:
            spans.append([r])
    parts = [f"rounds {s[0]}–{s[-1]} ({_pct(cells[s[0]].remaining)} to "
             f"{_pct(cells[s[-1]].remaining)} of the weights left)" if len(s) > 1 else
             f"round {s[0]} ({_pct(cells[s[0]].remaining)} left)" for s in spans]
    if not parts:
        return "no round"
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def verdicts(series: dict[str, list[Cell]]) -> list[str]:
    """The statements the write-up makes, each quoting the numbers behind it."""
    imp = series[IMP]
    dense = imp[0]
    spread = (f"± {100 * dense.sd:.2f} over {len(dense.accuracy)} seeds"
              if len(dense.accuracy) > 1 else "one seed")
    lines = [f"Dense network: test accuracy at early stop {100 * dense.mean:.2f}% ({spread}), "
             f"early-stop iteration {statistics.fmean(dense.iteration):,.0f}."]
    trained = [(name, c) for name, cells in series.items() for c in cells
               if name == IMP or c.round > 0]  # a control's round 0 is the ticket's
    stopped = sum(c.stopped_early for _, c in trained)
    runs = sum(len(c.accuracy) for _, c in trained)
    lines.append(f"{stopped} of {runs} trained rounds (series × round × seed) ended by early "
                 f"stopping; the other {runs - stopped} ran to the step cap.")
    below = [c for c in imp[1:] if c.mean < dense.mean - HOLD_POINTS]
    if below:
        c = below[0]
        lines.append(f"Tickets first fall more than 1 point below dense at round {c.round} "
                     f"({_pct(c.remaining)} of the weights left): {100 * c.mean:.2f}%.")
    elif len(imp) > 1:
        lines.append(f"Tickets stay within 1 point of dense in every round, down to "
                     f"{_pct(imp[-1].remaining)} of the weights left ({100 * imp[-1].mean:.2f}%).")
    family = comparisons(series)
    for control, diffs in family.items():
        name = SERIES_NAMES[control]
        wins = [r + 1 for r, d in enumerate(diffs) if d.significant and d.mean > 0]
        losses = [r + 1 for r, d in enumerate(diffs) if d.significant and d.mean < 0]
        uncorrected = [r + 1 for r, d in enumerate(diffs)
                       if (d.low > 0 or d.high < 0) and not d.significant]
        flat = [r + 1 for r, d in enumerate(diffs) if d.no_spread]
        last = diffs[-1] if diffs else None
        if last is None:
            continue
        if last.n < 2:
            lines.append(f"Ticket minus {name} at {_pct(imp[len(diffs)].remaining)} left: "
                         f"{last.text()}.")
            continue
        lines.append(f"Ticket beats {name} significantly (Holm-adjusted p < {1 - LEVEL:.2g} over "
                     f"the arm's {tests_in(family)} tests) at {_rounds_text(imp, wins)}, of "
                     f"{len(diffs)} pruning rounds"
                     + (f"; {name} is significantly better at {_rounds_text(imp, losses)}"
                        if losses else "")
                     + (f"; uncorrected, the 95% interval also excludes 0 at "
                        f"{_rounds_text(imp, uncorrected)}, which the correction does not keep"
                        if uncorrected else "")
                     + (f"; at {_rounds_text(imp, flat)} every seed gives the same difference "
                        f"(no spread), so nothing is claimed there" if flat else "")
                     + f". At the sparsest round ({_pct(imp[len(diffs)].remaining)} left): "
                     f"{last.text()}.")
        controls = series[control]
        r = len(diffs)
        lines.append(f"Early-stop iteration at that round: ticket "
                     f"{statistics.fmean(imp[r].iteration):,.0f}, {name} "
                     f"{statistics.fmean(controls[r].iteration):,.0f}.")
    return lines


def ship_line(imp: list[Cell], by_seed: dict[int, Path]) -> str:
    """The ticket to ship (chosen on validation, `to_ship`) with its test accuracy, and its
    compact export's size and batch-1 latency against the dense ticket timed in the same export,
    from the arm's first seed's run."""
    cell, seed = to_ship(imp), min(by_seed)
    dense_val = statistics.fmean(imp[0].val_accuracy)
    if cell is None:
        return (f"Ticket to ship: none; no pruning round is within 1 point of dense "
                f"({100 * dense_val:.2f}%) in validation accuracy at early stop, mean over seeds.")
    text = (f"Ticket to ship: round {cell.round} ({_pct(cell.remaining)} of the weights left), "
            f"the sparsest within 1 point of dense in validation accuracy at early stop, mean "
            f"over seeds ({100 * statistics.fmean(cell.val_accuracy):.2f}% against "
            f"{100 * dense_val:.2f}%); its test accuracy, reported and not chosen on, "
            f"{100 * cell.mean:.2f}% against dense's {100 * imp[0].mean:.2f}%. Its compact export "
            f"(seed {seed}): ")
    try:
        record = compact_export(Path(by_seed[seed]), cell.round)
    except Exception as exc:  # noqa: BLE001 - the write-up stands without it; one line says why
        return text + f"not made: {describe(exc)}."
    if record.get("status") != "ok":
        return text + f"failed: {record.get('error', 'unknown reason')}."
    dense = record["reference"]
    ms, dense_ms = (r["latency_ms_per_sample"]["batch_1"] for r in (record, dense))
    return text + (f"{export_records.human_bytes(record['bytes'])}, "
                   f"{export_records.ratio(record['bytes'] / dense['bytes'])} the dense ticket's "
                   f"{export_records.human_bytes(dense['bytes'])}; {ms:.3g} ms per sample at "
                   f"batch 1, {export_records.ratio(ms / dense_ms)} the dense ticket's "
                   f"{dense_ms:.3g} ms timed in the same export (about ±10% is noise).")


def _mean_sd(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    mean = scale * statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:,.{digits}f}"
    return f"{mean:,.{digits}f} ± {scale * statistics.stdev(values):,.{digits}f}"


def _early_stop_table(series: dict[str, list[Cell]]) -> str:
    names = list(series)
    head = ["round", "weights left"] + [f"{SERIES_NAMES.get(n, n)}: {what}" for n in names
                                        for what in ("test acc. %", "early-stop iteration")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, cell in enumerate(series[IMP]):
        row = [str(cell.round), _pct(cell.remaining)]
        for n in names:
            other = series[n][i] if i < len(series[n]) else None
            row += (["–", "–"] if other is None else
                    [_mean_sd(other.accuracy, 100), _mean_sd(other.iteration, digits=0)])
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _difference_table(series: dict[str, list[Cell]]) -> str:
    diffs = comparisons(series)
    if not diffs or next(iter(diffs.values()))[0].n < 2:
        return ""
    head = ["round", "weights left"] + [
        f"ticket − {SERIES_NAMES[c]}: {what}" for c in diffs
        for what in ("mean", "95% CI", "p", "Holm p")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i in range(max(len(d) for d in diffs.values())):
        row = [str(i + 1), _pct(series[IMP][i + 1].remaining)]
        for d in diffs.values():
            row += _difference_cells(d[i]) if i < len(d) else ["–"] * 4
        lines.append("| " + " | ".join(row) + " |")
    return ("Ticket minus control, test accuracy at early stop in points, paired by seed "
            "(95% CI from the t distribution, n − 1 degrees of freedom, per test; p from the "
            f"paired t-test; Holm p: p adjusted by Holm's method over the arm's "
            f"{tests_in(diffs)} tests, every round against every control; n.s.: Holm p ≥ "
            f"{1 - LEVEL:.2g}, whatever the interval says; no spread: every seed gives the same "
            "difference, so there is no interval):\n\n" + "\n".join(lines) + "\n")


def _difference_cells(diff: Paired) -> list[str]:
    """One round's mean, 95% CI, p and Holm-adjusted p, marked n.s. or no spread (neither is a
    finding)."""
    if diff.no_spread:
        return [f"{100 * diff.mean:+.2f} (no spread)", "none", "n/a", "n/a"]
    mark = "" if diff.significant else " (n.s.)"
    return [f"{100 * diff.mean:+.2f}{mark}", f"{100 * diff.low:+.2f} to {100 * diff.high:+.2f}",
            p_text(diff.p).removeprefix("= "), p_text(diff.p_adjusted).removeprefix("= ")]


def _rewinding(folder: Path, imp: dict) -> str:
    """Where later rounds start. For late rewinding also what that does to a round's step budget
    and to the iteration axis, and that random reinit is then no like-for-like control: it starts
    untrained at step k while the ticket starts from trained weights."""
    if imp["rewind"] == "init":
        return "rewind to init"
    steps = clock(folder)
    total, k = steps.total, steps.rewind
    text = (f"rewind to {imp['rewind']}: every round after the first starts from the weights "
            f"after step {k:,} of round 0 and trains at most T − k = {total:,} − {k:,} = "
            f"{total - k:,} steps in round 0's data order; its early-stop iterations count from "
            f"step 0 of round 0 (they include the {k:,} rewind steps)")
    if "random_reinit" in (imp.get("controls") or []):
        text += (f"; random reinit starts from a fresh initialisation at step {k:,} where the "
                 f"ticket starts from trained weights, so it is not a like-for-like control "
                 f"(OpenLTH's reinit branch does the same)")
    return text


def protocol(folder: Path) -> str:
    """One arm's protocol, read from its frozen config (and, when it rewinds late, its training
    split, for T and k in steps): what 'a round' means here."""
    cfg = runfolder.read_frozen_config(folder)
    train, imp = cfg["train"], cfg["imp"]
    rates = ", ".join(f"{k} {100 * v:g}%" for k, v in (imp.get("layer_rates") or {}).items())
    stop = (f"early stopping after {train['patience']} validations without a lower validation "
            f"loss (weights of the lowest kept)" if train.get("early_stopping") is True
            else "no early stopping: every step trained and the final weights pruned (accuracy "
            "at early stop read from the best validation point)")
    return (f"{network_text(train)}, {imp['scope']} pruning of "
            f"{100 * imp['prune_rate']:g}% per round"
            + (f" ({rates})" if rates else "") + f", {train['optimizer']} lr "
            f"{train['learning_rate']:g}, batch {train['batch_size']}, at most "
            f"{train['epochs']} epochs per round, validation every "
            f"{train.get('eval_every') or 'epoch'}{' steps' if train.get('eval_every') else ''}"
            f", {stop}; {_rewinding(folder, imp)}; controls: "
            f"{', '.join(imp.get('controls') or []) or 'none'}.")


def marker(name: str) -> str:
    """The write-up's first line: which experiment it belongs to, in an HTML comment (invisible
    when rendered). write() overwrites a file only when it begins with this very line."""
    return (f"<!-- write-up of experiment {json.dumps(name, ensure_ascii=False)} by lottery "
            f"experiment, which overwrites only a file beginning with this line -->")


def figure_path(path: Path) -> Path:
    """The figure beside a write-up: its name with .png."""
    return Path(path).with_suffix(".png")


def check_results_path(path: Path, where: str) -> None:
    """A write-up path must end in .md: the figure's name is derived from it, so any other name
    (some/file.txt) would also write a file nobody named (some/file.png)."""
    if Path(path).suffix != ".md":
        suggestion = Path(path).parent / f"{Path(path).stem or 'RESULTS'}.md"
        raise ConfigError(f"{where}: {path} must end in .md (its figure is written beside it, "
                          f"named like it with .png); e.g. {suggestion}.")


def _begins_with(path: Path, line: str) -> bool:
    """Whether the file's first line is `line`; reads no more than that line, since the file may
    be anything (a directory or an unreadable file is not a write-up)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline(len(line) + 2).rstrip("\n") == line
    except OSError:
        return False


def check_target(path: Path, name: str) -> None:
    """Refuse to write over anything but an earlier write-up of experiment `name` (recognised by
    its marker line) and its figure; say which file and what to do instead."""
    path = Path(path)
    check_results_path(path, "results")
    if path.exists() and not _begins_with(path, marker(name)):
        raise ConfigError(f"results: {path} exists and is not a write-up of experiment {name!r} "
                          f"(its first line is not that write-up's marker); choose another .md "
                          f"file or move it away.")
    for png in (figure_path(path), instability_section.figure_path(path)):
        if not path.exists() and png.exists():
            raise ConfigError(f"results: {png} exists but {path.name} does not, so that figure "
                              f"is no earlier write-up's; choose another .md file or move "
                              f"{png.name} away.")


def _write_png(figure, png: Path) -> None:
    """Kaleido 1.5's headless tab can run its render call before its own page script has
    loaded (a JavascriptError, "kaleido_scopes is not defined"; seen once in a full test run);
    the second call finds it loaded. Any other error is raised at once."""
    try:
        figure.write_image(png, scale=1)
    except Exception as error:  # kaleido's error class lives in a private module
        if "kaleido_scopes is not defined" not in str(error):
            raise
        figure.write_image(png, scale=1)


def _introduction(results: dict[str, dict[str, list[Cell]]]) -> str:
    """What the write-up compares: the controls only where an arm trained them."""
    controlled = any(name != IMP for series in results.values() for name in series)
    return ((("Iterative magnitude pruning (winning tickets) against the same masks with a fresh "
              "initialisation (random reinit) and random masks of the same per-layer sparsity "
              "(random prune). ") if controlled else
             "Iterative magnitude pruning (winning tickets); no arm trained a control. ")
            + "Every number is measured at the **early-stop point** of its round: the validation "
              "step of lowest validation loss. Tickets are chosen on validation only; test "
              "accuracy is reported, never selected on. "
            + ("Differences are paired by seed, and each arm's tests (every round against every "
               "control) are Holm-adjusted as one family: a difference is called significant "
               "only by its adjusted p. " if controlled else ""))


def write(name: str, folders: dict[str, dict[int, Path]], path: Path, *, notes: str = "",
          timing: dict[str, list[float]] | None = None, wall: float | None = None,
          source: str = "lottery experiment") -> dict[str, list[str]]:
    """Write RESULTS.md and its PNG beside it (see check_target for what it may overwrite);
    returns the verdict lines by arm, each arm's ticket to ship last (it may export one round of
    the arm's first seed, so the caller may import TensorFlow)."""
    path = Path(path)
    check_target(path, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    results = {label: aggregate(by_seed) for label, by_seed in folders.items()}
    said = {label: verdicts(series) + [ship_line(series[IMP], folders[label])]
            for label, series in results.items()}
    png = figure_path(path)
    _write_png(experiment_figure(results, SERIES_NAMES), png)
    parts = [f"{marker(name)}\n", f"# {name}\n", _introduction(results) + f"Made by `{source}`.\n",
             f"![Figure 4 pair]({png.name})\n",
             f"Figure: `{png.name}`, beside this file and named after it; remaking this write-up "
             f"replaces it.\n"]
    if notes:
        parts.append(notes.strip() + "\n")
    for label, series in results.items():
        seeds = sorted(folders[label])
        parts.append(f"## {label}\n\nProtocol: {protocol(folders[label][seeds[0]])} Seeds: "
                     f"{', '.join(map(str, seeds))}.\n")
        parts.append("\n".join(f"- {line}" for line in said[label]) + "\n")
        parts.append("At early stop, mean ± std over seeds:\n\n" + _early_stop_table(series)
                     + "\n")
        parts.append(_difference_table(series))
    parts.append(faster.section(folders))  # "" unless the arms differ in granularity
    parts.append(instability_section.section(folders, path, _write_png))  # "" unless analysed
    lines = [f"{label}: {len(s)} job(s), {sum(s) / 60:.1f} min of job time"
             for label, s in (timing or {}).items() if s]
    trained, budget = steps_trained(folders)
    if budget:
        lines.append(f"steps trained, over every series, round and seed: {trained:,} of the "
                     f"{budget:,} that training every round to its cap would take "
                     f"({100 * trained / budget:.0f}%)")
    if wall:
        lines.append(f"whole experiment: {wall / 60:.1f} min wall time on {os.cpu_count()} "
                     f"CPU cores")
    if lines:
        parts.append("## Wall time\n\n" + "\n".join(f"- {t}" for t in lines) + "\n")
    runfolder.atomic_write(path, "\n".join(p for p in parts if p))
    return said
