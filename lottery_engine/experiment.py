"""Experiments as data: arms (a config, its seeds, optional overrides) × seeds, one run each.

An experiment YAML names run configs and seeds. Every (arm, seed) is an ordinary run with its
controls (each its own series under controls/), so the dashboard can open each of them. They run
as queue jobs (jobs/experiments.py) or, with `--local`, here one after another; writeup.py turns
the finished folders into RESULTS.md.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config as config_lib
from . import runfolder, validation, writeup, yaml_text
from .config import ConfigError
from .events import Listener
from .faults import describe


@dataclass
class RunSpec:
    label: str
    config: str
    seeds: list[int]
    overrides: list[str] = field(default_factory=list)  # `set:` KEY.PATH=VALUE for this arm


@dataclass
class Experiment:
    name: str
    out: str
    results: str
    runs: list[RunSpec] = field(default_factory=list)
    notes: str = ""  # Markdown the write-up carries verbatim: protocol reasons, timings


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
    specs = [_arm(run, Path(path).parent, f"experiment file {path}: runs[{i}]")
             for i, run in enumerate(raw["runs"])]
    results = str(raw.get("results", "docs/RESULTS.md"))
    writeup.check_name(Path(results), f"experiment file {path}: results")
    return Experiment(str(raw.get("name", Path(path).stem)), str(raw.get("out", "runs/experiment")),
                      results, specs, str(raw.get("notes", "")))


def _arm(run: Any, folder: Path, where: str) -> RunSpec:
    """One entry of `runs`: a label, a config relative to the experiment file's folder, its seeds
    and optionally `set` overrides."""
    overrides = run.get("set", []) if isinstance(run, dict) else None
    if (not isinstance(overrides, list) or not {"label", "config"} <= run.keys()
            or not isinstance(run["config"], str)):
        raise ConfigError(f"{where}: needs label, config, seeds and optionally a list `set` of "
                          f"KEY.PATH=VALUE.")
    return RunSpec(str(run["label"]), str(folder / run["config"]),
                   seed_list(run.get("seeds", [0]), f"{where}.seeds"), [str(o) for o in overrides])


def seed_list(value: Any, where: str) -> list[int]:
    """Seeds as written: a list of non-negative integers, or {from: F, count: N} for F..F+N-1.

    Read strictly because a lenient reading is silently wrong: "12" iterated is seeds 1 and 2,
    and int(1.9) and int(True) are both seed 1. A seed listed twice is refused by check_arms,
    which also sees the seeds --seeds gives."""
    if (isinstance(value, dict) and value.keys() == {"from", "count"}
            and _natural(value["from"]) and _natural(value["count"]) and value["count"] > 0):
        return list(range(value["from"], value["from"] + value["count"]))
    if isinstance(value, list) and value and all(_natural(seed) for seed in value):
        return list(value)
    raise ConfigError(f"{where}: {value!r} is not a list of non-negative integer seeds; write "
                      f"e.g. [0, 1, 2] or {{from: 0, count: 3}}.")


def _natural(value: Any) -> bool:
    """A non-negative int that YAML wrote as one (true and 1.0 are not seeds)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def arm_slug(label: str) -> str:
    """The part of an arm's run folder names that comes from its label. It is not one-to-one
    (`A b` and `A-b` both give `a-b`), which is why check_arms refuses labels that share one."""
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-")


def run_dir(out: Path, spec: RunSpec, seed: int) -> Path:
    return Path(out) / f"{arm_slug(spec.label)}-seed{seed}"


def check_arms(name: str, members: list[tuple[RunSpec, int]]) -> None:
    """Refuse (arm, seed) pairs that would share a run folder or a write-up cell: two arms whose
    labels slug alike (identical labels included), or one arm with a seed twice. Otherwise
    `--local` trains one folder for both and skips the second as finished, and the write-up,
    keyed by label and seed, shows one arm's numbers under the other's protocol."""
    arms: dict[str, RunSpec] = {}
    seen: set[tuple[str, int]] = set()
    for spec, seed in members:
        slug = arm_slug(spec.label)
        first = arms.setdefault(slug, spec)
        if first is not spec:
            raise ConfigError(_label_clash(name, first.label, spec.label, slug))
        if (slug, seed) in seen:
            raise ConfigError(f"experiment {name!r}: arm {spec.label!r} has seed {seed} twice "
                              f"(its seeds, or --seeds); list each seed once.")
        seen.add((slug, seed))


def _label_clash(name: str, first: str, second: str, slug: str) -> str:
    """The one-line refusal of two arms that would share run folders."""
    if first == second:
        return (f"experiment {name!r}: two arms are labelled {first!r}; give each arm of `runs` "
                f"its own label.")
    return (f"experiment {name!r}: labels {first!r} and {second!r} would share the run folders "
            f"{slug}-seed<N> (a label's folder name keeps its letters and digits only); make the "
            f"labels differ in a letter or digit.")


def plan(exp: Experiment, overrides: list[str], seeds: list[int] | None = None
         ) -> list[tuple[RunSpec, int, config_lib.Config]]:
    """Every (arm, seed) with its validated config: all checked before the first hour of training,
    the arms' folders and seeds first (check_arms). `seeds` replaces every arm's seeds."""
    pairs = [(spec, seed) for spec in exp.runs
             for seed in (seeds if seeds is not None else spec.seeds)]
    check_arms(exp.name, pairs)
    return [(spec, seed, member(config_lib.load(spec.config, spec.overrides + overrides
                                                + [f"run.seed={seed}"]), spec.label, seed))
            for spec, seed in pairs]


def one_arm(name: str, cfg: config_lib.Config, seeds: list[int]
            ) -> tuple[Experiment, list[tuple[RunSpec, int, config_lib.Config]]]:
    """An experiment of one config over several seeds (the dashboard's launch form)."""
    spec = RunSpec(name, "", list(seeds))
    members = [(spec, seed, member(copy.deepcopy(cfg), name, seed)) for seed in seeds]
    return Experiment(name, "", ""), members


def member(cfg: config_lib.Config, label: str, seed: int) -> config_lib.Config:
    """An arm's config for one seed: named after the arm, paths made absolute so a queued job
    reads the same files whatever the worker's working directory."""
    cfg.run.seed = seed
    cfg.run.name = f"{label} seed {seed}"[:100]
    validation.validate(cfg)
    config_lib.absolute_paths(cfg)
    return cfg


def execute(exp: Experiment, overrides: list[str], listener: Listener | None = None,
            seeds: list[int] | None = None) -> dict[str, dict[int, Path]]:
    """`--local`: run (or resume) every config × seed in this process, one after another;
    returns the run folders by label and seed.

    Each run's own wall time goes into its folder (experiment_timing.json) for the write-up."""
    from . import pipeline

    folders: dict[str, dict[int, Path]] = {}
    for spec, seed, cfg in plan(exp, overrides, seeds):
        folder = run_dir(Path(exp.out), spec, seed)
        if not runfolder.is_complete(folder):
            start = time.perf_counter()
            pipeline.execute(cfg, folder, listener)
            runfolder.write_json(folder / "experiment_timing.json",
                                 {"seconds": time.perf_counter() - start})
        folders.setdefault(spec.label, {})[seed] = folder
    return folders
