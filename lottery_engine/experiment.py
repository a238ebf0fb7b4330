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

from . import config as config_lib
from . import runfolder, validation, yaml_text
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
    specs = []
    for i, run in enumerate(raw["runs"]):
        try:
            overrides = run.get("set", [])
            if not isinstance(overrides, list):
                raise TypeError
            specs.append(RunSpec(str(run["label"]), str(Path(path).parent / run["config"]),
                                 [int(s) for s in run.get("seeds", [0])],
                                 [str(o) for o in overrides]))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"experiment file {path}: runs[{i}] needs label, config, a list "
                              f"of integer seeds and optionally a list `set` of "
                              f"KEY.PATH=VALUE.") from None
    return Experiment(str(raw.get("name", Path(path).stem)), str(raw.get("out", "runs/experiment")),
                      str(raw.get("results", "docs/RESULTS.md")), specs, str(raw.get("notes", "")))


def run_dir(out: Path, spec: RunSpec, seed: int) -> Path:
    slug = "".join(c if c.isalnum() else "-" for c in spec.label.lower()).strip("-")
    return Path(out) / f"{slug}-seed{seed}"


def plan(exp: Experiment, overrides: list[str], seeds: list[int] | None = None
         ) -> list[tuple[RunSpec, int, config_lib.Config]]:
    """Every (arm, seed) with its validated config: all checked before the first hour of training."""
    return [(spec, seed, member(config_lib.load(spec.config, spec.overrides + overrides
                                                + [f"run.seed={seed}"]), spec.label, seed))
            for spec in exp.runs for seed in (seeds if seeds is not None else spec.seeds)]


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
