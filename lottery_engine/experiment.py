"""Experiments as data: several configs × seeds, each an ordinary run folder, then one write-up.

An experiment YAML names run configs and seeds. Every (config, seed) runs through the same pipeline
as `lottery run` (controls included, as its own series under controls/), so the dashboard can open
each of them. The write-up aggregates rounds over seeds (mean ± std) into a Markdown table and a
PNG figure, and states the headline comparisons from those numbers alone.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import config as config_lib
from . import runfolder, yaml_text
from .config import ConfigError
from .events import Listener
from .faults import describe
from .report import SERIES_COLOURS

SERIES_NAMES = {"imp": "winning ticket (IMP)", "random_reinit": "random reinit",
                "random_prune": "random prune"}
GAP_TARGETS = (0.80, 0.90, 0.95)
GAP_TOLERANCE = 0.03  # a round counts as "about" a target sparsity within 3 points


@dataclass
class RunSpec:
    label: str
    config: str
    seeds: list[int]


@dataclass
class Experiment:
    name: str
    out: str
    results: str
    runs: list[RunSpec] = field(default_factory=list)


def load(path: Path) -> Experiment:
    """Read an experiment YAML; its config paths are relative to the YAML's own folder."""
    try:
        raw = yaml_text.parse(Path(path).read_bytes(), f"experiment file {path}")
    except OSError as exc:
        raise ConfigError(f"experiment file {path}: {describe(exc)}") from None
    except yaml_text.YamlError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(raw, dict) or not isinstance(raw.get("runs"), list) or not raw["runs"]:
        raise ConfigError(f"experiment file {path}: expected keys name, out, results and a "
                          f"non-empty list `runs` of {{label, config, seeds}}.")
    specs = []
    for i, run in enumerate(raw["runs"]):
        try:
            specs.append(RunSpec(str(run["label"]), str(Path(path).parent / run["config"]),
                                 [int(s) for s in run.get("seeds", [0])]))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"experiment file {path}: runs[{i}] needs label, config and a list "
                              f"of integer seeds.") from None
    return Experiment(str(raw.get("name", Path(path).stem)), str(raw.get("out", "runs/experiment")),
                      str(raw.get("results", "docs/RESULTS.md")), specs)


def run_dir(out: Path, spec: RunSpec, seed: int) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in spec.label.lower()).strip("-")
    return Path(out) / f"{slug}-seed{seed}"


def execute(exp: Experiment, overrides: list[str], listener: Listener | None = None,
            seeds: list[int] | None = None) -> dict[str, dict[int, Path]]:
    """Run (or resume) every config × seed; returns the run folders by label and seed.

    Each run's own wall time goes into its folder (experiment_timing.json) for the write-up."""
    from . import pipeline

    plan = []
    for spec in exp.runs:  # validate everything before the first hour of training starts
        for seed in seeds if seeds is not None else spec.seeds:
            cfg = config_lib.load(spec.config, overrides + [f"run.seed={seed}"])
            plan.append((spec, seed, cfg))
    folders: dict[str, dict[int, Path]] = {}
    for spec, seed, cfg in plan:
        folder = run_dir(Path(exp.out), spec, seed)
        if not runfolder.is_complete(folder):
            start = time.perf_counter()
            pipeline.execute(cfg, folder, listener)
            runfolder.write_json(folder / "experiment_timing.json",
                                 {"seconds": time.perf_counter() - start})
        folders.setdefault(spec.label, {})[seed] = folder
    return folders


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def aggregate(folders: dict[int, Path]) -> dict[str, list[dict]]:
    """Per series and round: sparsity and mean ± std over seeds of val and test accuracy."""
    by_seed = [runfolder.series(folder) for folder in folders.values()]
    out: dict[str, list[dict]] = {}
    for name in by_seed[0]:
        rounds = min(len(s[name]) for s in by_seed)
        rows = []
        for r in range(rounds):
            records = [s[name][r] for s in by_seed]
            val, val_sd = _mean_std([x["val_accuracy"] for x in records])
            test, test_sd = _mean_std([x["test_accuracy"] for x in records])
            rows.append({"round": r, "sparsity": records[0]["global_sparsity"],
                         "remaining": records[0]["remaining_prunable"] /
                         records[0]["total_prunable"],
                         "val": val, "val_sd": val_sd, "test": test, "test_sd": test_sd})
        out[name] = rows
    return out


def headline(series: dict[str, list[dict]]) -> dict:
    """The numbers the write-up states: dense baseline, where tickets hold, gaps to controls."""
    imp = series["imp"]
    dense = imp[0]["test"]
    within = [row for row in imp if row["test"] >= dense - 0.01]
    gaps = []
    for target in GAP_TARGETS:
        row = min(imp[1:], key=lambda x: abs(x["sparsity"] - target), default=None)
        if row is None or abs(row["sparsity"] - target) > GAP_TOLERANCE:
            continue
        gap = {"target": target, "sparsity": row["sparsity"], "round": row["round"],
               "ticket": row["test"]}
        for control in ("random_reinit", "random_prune"):
            if control in series and row["round"] < len(series[control]):
                gap[control] = row["test"] - series[control][row["round"]]["test"]
        gaps.append(gap)
    return {"dense_test": dense, "held_sparsity": max(r["sparsity"] for r in within),
            "gaps": gaps}


def figure(results: dict[str, dict[str, list[dict]]]) -> go.Figure:
    """Test accuracy vs remaining weights (log x), a line and a ± std band per series."""
    fig = make_subplots(rows=1, cols=len(results), subplot_titles=list(results))
    for col, series in enumerate(results.values(), start=1):
        for name, rows in series.items():
            colour = SERIES_COLOURS.get(name, "#777777")
            x = [100 * r["remaining"] for r in rows]
            upper = [r["test"] + r["test_sd"] for r in rows]
            lower = [r["test"] - r["test_sd"] for r in rows]
            fig.add_trace(go.Scatter(x=x + x[::-1], y=upper + lower[::-1], fill="toself",
                                     fillcolor=colour, opacity=0.18, line={"width": 0},
                                     hoverinfo="skip", showlegend=False), row=1, col=col)
            fig.add_trace(go.Scatter(x=x, y=[r["test"] for r in rows], mode="lines+markers",
                                     name=SERIES_NAMES.get(name, name), legendgroup=name,
                                     showlegend=col == 1, line={"color": colour}),
                          row=1, col=col)
        fig.update_xaxes(type="log", autorange="reversed", title_text="weights remaining (%)",
                         row=1, col=col)
    fig.update_yaxes(title_text="test accuracy", row=1, col=1)
    fig.update_layout(width=700 * len(results), height=480, template="plotly_white",
                      legend={"orientation": "h", "y": -0.2})
    return fig


def _table(series: dict[str, list[dict]], seeds: int) -> str:
    names = list(series)
    head = ["round", "sparsity", "remaining"] + [
        f"{SERIES_NAMES.get(n, n)}: {kind}" for n in names for kind in ("val", "test")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, row in enumerate(series["imp"]):
        cells = [str(row["round"]), f"{100 * row['sparsity']:.1f}%",
                 f"{100 * row['remaining']:.2f}%"]
        for n in names:
            other = series[n][i] if i < len(series[n]) else None
            for kind in ("val", "test"):
                cells.append("–" if other is None else f"{100 * other[kind]:.2f}" + (
                    f" ± {100 * other[kind + '_sd']:.2f}" if seeds > 1 else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _headline_text(label: str, seeds: int, h: dict) -> str:
    lines = [f"- Dense baseline test accuracy: **{100 * h['dense_test']:.2f}%** "
             f"(mean over {seeds} seed{'s' if seeds > 1 else ''}).",
             f"- Winning tickets stay within 1 point of it up to **{100 * h['held_sparsity']:.1f}%"
             f"** sparsity (highest round whose mean test accuracy is within 1 point)."]
    if not h["gaps"]:
        lines.append(f"- No round came within {100 * GAP_TOLERANCE:.0f} points of "
                     + ", ".join(f"{100 * t:.0f}%" for t in GAP_TARGETS) + " sparsity.")
    far = [g for g in h["gaps"] if g["target"] >= 0.9]
    if far:
        beaten = all(g.get(c, 0) > 0 for g in far for c in ("random_reinit", "random_prune"))
        lines.append("- " + ("The known result appears: at 90% sparsity and beyond, winning "
                             "tickets beat both controls." if beaten else
                             "The known result does NOT appear at 90% sparsity and beyond: "
                             "a control matches or beats the tickets there."))
    for gap in h["gaps"]:
        parts = [f"{SERIES_NAMES[c]} {100 * gap[c]:+.2f} points" for c in
                 ("random_reinit", "random_prune") if c in gap]
        lines.append(f"- At {100 * gap['sparsity']:.1f}% sparsity (round {gap['round']}, nearest "
                     f"to {100 * gap['target']:.0f}%): ticket test accuracy "
                     f"{100 * gap['ticket']:.2f}%; ticket minus " + ", ticket minus ".join(parts)
                     + ".")
    return f"### {label}\n\n" + "\n".join(lines)


def write_results(exp: Experiment, folders: dict[str, dict[int, Path]], path: Path) -> dict:
    """Write RESULTS.md and its PNG figure beside it; returns the headline numbers by label."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    results = {label: aggregate(by_seed) for label, by_seed in folders.items()}
    heads = {label: headline(series) for label, series in results.items()}
    png = path.with_suffix(".png")
    figure(results).write_image(png, scale=1)
    timings = []
    for label, by_seed in folders.items():
        seconds = [runfolder.read_json(f / "experiment_timing.json", {}).get("seconds")
                   for f in by_seed.values()]
        known = [s for s in seconds if s]
        if known:
            timings.append(f"{label}: {len(known)} run(s), {sum(known) / 60:.1f} min in all "
                           f"(IMP and its controls, {os.cpu_count()} CPU cores)")
    parts = [f"# {exp.name}\n",
             "Iterative magnitude pruning with rewinding to the original initialisation "
             "(winning tickets), against the same masks with a fresh random initialisation "
             "(random reinit) and random masks of the same per-layer sparsity at the original "
             "initialisation (random prune). Tickets are chosen on validation accuracy only; "
             "test accuracy below is reported, never selected on. Made by "
             "`lottery experiment --config configs/experiment_fashion.yaml`; every series is a "
             f"run folder under `{exp.out}/`.\n",
             f"![test accuracy vs weights remaining]({png.name})\n"]
    for label, series in results.items():
        parts.append(_headline_text(label, len(folders[label]), heads[label]) + "\n")
        seeds = len(folders[label])
        caption = "mean ± std over seeds" if seeds > 1 else "one seed"
        parts.append(f"Accuracy (%) per round, {caption}:\n\n" + _table(series, seeds) + "\n")
    if timings:
        parts.append("### Wall time\n\n" + "\n".join(f"- {t}" for t in timings) + "\n")
    runfolder.atomic_write(path, "\n".join(parts))
    return heads
