"""Experiments as data: arms (a config, its seeds, optional overrides) × seeds, one run each.

An experiment YAML names run configs and seeds. Every (arm, seed) is an ordinary run with its
controls (each its own series under controls/), so the dashboard can open each of them. They run
as queue jobs (jobs/experiments.py) or, with `--local`, here one after another; writeup.py turns
the finished folders into RESULTS.md. A run entry's `grid` expands into one arm per combination
of its values (expand), so a sweep is written once and its arms compare side by side.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import preflight
from ..config import load as config_lib
from ..config.load import ConfigError
from ..export.every_round import check_formats, export_rounds
from ..foundations import runfolder, yaml_text
from ..foundations.events import Listener
from ..foundations.faults import describe
from ..lottery.instability_plan import Request
from . import instability_arm, writeup

# what one entry of `runs` gives
RUN_KEYS = ("label", "config", "seeds", "set", "grid", "export", "instability")
MAX_COMBINATIONS = 64  # arms one grid may make: each is seeds × (ticket + controls) of training
GRID_KEYS = [f"{section.name}.{key.name}" for section in dataclasses.fields(config_lib.Config)
             for key in dataclasses.fields(section.default_factory)]
# keys an experiment sets itself, so a grid over them would be silently overwritten
NOT_GRID_KEYS = {"run.seed": "an arm's seeds come from `seeds`",
                 "run.name": "each run is named after its arm's label"}


@dataclass
class RunSpec:
    label: str
    config: str
    seeds: list[int]
    overrides: list[str] = field(default_factory=list)  # `set:` KEY.PATH=VALUE for this arm
    export: list[str] = field(default_factory=list)  # formats every round is exported in, timed
    instability: Request | None = None  # analysed after each run (instability_arm.py)


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
    specs = [spec for i, run in enumerate(raw["runs"])
             for spec in _arms(run, Path(path).parent, f"experiment file {path}: runs[{i}]")]
    results = str(raw.get("results", "docs/RESULTS.md"))
    writeup.check_results_path(Path(results), f"experiment file {path}: results")
    return Experiment(str(raw.get("name", Path(path).stem)), str(raw.get("out", "runs/experiment")),
                      results, specs, str(raw.get("notes", "")))


def _arms(run: Any, folder: Path, where: str) -> list[RunSpec]:
    """One entry of `runs`: a label, a config relative to the experiment file's folder, its seeds,
    optionally `set` overrides, a `grid` that makes it one arm per combination, `export`:
    formats every round of its runs is exported in and timed after the run (every_round.py),
    and `instability`: the analysis each run gets after it (instability_arm.py).
    An unknown key is refused: a misspelt `grid` would otherwise run one arm silently."""
    overrides = run.get("set", []) if isinstance(run, dict) else None
    if (not isinstance(overrides, list) or not {"label", "config"} <= run.keys()
            or not isinstance(run["config"], str)):
        raise ConfigError(f"{where}: needs label, config, seeds and optionally a list `set` of "
                          f"KEY.PATH=VALUE and a mapping `grid` of KEY.PATH to values.")
    for key in run:
        if key not in RUN_KEYS:
            hint = config_lib.did_you_mean(str(key), list(RUN_KEYS))
            raise ConfigError(f"{where}.{key}: unknown key.{hint} A run entry has "
                              f"{', '.join(RUN_KEYS)}.")
    spec = RunSpec(str(run["label"]), str(folder / run["config"]),
                   seed_list(run.get("seeds", [0]), f"{where}.seeds"), [str(o) for o in overrides],
                   check_formats(run["export"], f"{where}.export") if "export" in run else [],
                   instability_arm.parse(run["instability"], f"{where}.instability")
                   if "instability" in run else None)
    return expand(spec, run["grid"], f"{where}.grid") if "grid" in run else [spec]


def expand(spec: RunSpec, grid: Any, where: str) -> list[RunSpec]:
    """One arm per combination of the grid's values, in the order written (the first key's values
    vary slowest), each labelled with its values and given them as `set` overrides after the
    arm's own (so a grid key beats the arm's `set`, and `--set` beats both)."""
    return [RunSpec(" · ".join([spec.label] + [f"{key.split('.')[-1]}={text}"
                                               for key, text in point]),
                    spec.config, list(spec.seeds),
                    spec.overrides + [f"{key}={text}" for key, text in point], list(spec.export),
                    spec.instability)
            for point in grid_points(grid, where)]


def grid_points(grid: Any, where: str) -> list[list[tuple[str, str]]]:
    """Every combination of a checked grid as (key, value as YAML text) pairs. YAML text, because
    a value travels as a `set` override, which is parsed as YAML: str(1e-05) would read back as a
    string and str('yes') as true; YAML's own text reads back as the value written."""
    columns = [[(key, text) for text in _grid_texts(values, f"{where}.{key}")]
               for key, values in _grid_mapping(grid, where).items()]
    count = math.prod(len(column) for column in columns)
    if count > MAX_COMBINATIONS:
        sizes = " × ".join(str(len(column)) for column in columns)
        raise ConfigError(f"{where}: {sizes} = {count} combinations, more than "
                          f"{MAX_COMBINATIONS}; drop values or split it into several entries "
                          f"of `runs`.")
    return [list(point) for point in itertools.product(*columns)]


def _grid_mapping(grid: Any, where: str) -> dict[str, Any]:
    """The grid as a non-empty mapping whose keys are `section.key` config keys."""
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{where}: expected a mapping of section.key to a list of values, "
                          f"e.g. {{imp.prune_rate: [0.2, 0.4]}}.")
    for key in grid:
        if key in NOT_GRID_KEYS:
            raise ConfigError(f"{where}.{key}: not a grid key ({NOT_GRID_KEYS[key]}); remove "
                              f"it from the grid.")
        if key not in GRID_KEYS:
            hint = config_lib.did_you_mean(str(key), GRID_KEYS)
            raise ConfigError(f"{where}.{key}: not a config key.{hint} Grid keys are "
                              f"section.key, e.g. imp.prune_rate or train.epochs.")
    return grid


def _grid_texts(values: Any, where: str) -> list[str]:
    """A grid key's values as YAML texts: a non-empty list of single values on one line (they
    end up in labels), each once (a value twice would make two arms of one label)."""
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: expected a non-empty list of values in brackets, e.g. "
                          f"[first, second]; got {values!r}.")
    texts = []
    for value in values:
        text = yaml.safe_dump(value, allow_unicode=True, width=math.inf)
        text = text.removesuffix("...\n").strip()
        if isinstance(value, (list, dict)) or "\n" in text:
            raise ConfigError(f"{where}: {value!r} is not a single value on one line (a "
                              f"number, word, true/false or null); give a list or mapping "
                              f"setting its own entry of `runs` with `set`.")
        if text in texts:
            raise ConfigError(f"{where}: {text} is listed twice; list each value once.")
        texts.append(text)
    return texts


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
    members = [(spec, seed, member(preflight.load(spec.config, spec.overrides + overrides
                                                  + [f"run.seed={seed}"]), spec.label, seed))
               for spec, seed in pairs]
    for spec, _, cfg in members:
        if spec.instability:
            instability_arm.check(spec.instability, cfg,
                                  f"experiment {exp.name!r}, arm {spec.label!r}: instability")
    return members


def one_arm(name: str, cfg: config_lib.Config, seeds: list[int]
            ) -> tuple[Experiment, list[tuple[RunSpec, int, config_lib.Config]]]:
    """An experiment of one config over several seeds (the dashboard's launch form)."""
    spec = RunSpec(name, "", list(seeds))
    members = [(spec, seed, member(copy.deepcopy(cfg), name, seed)) for seed in seeds]
    return Experiment(name, "", ""), members


def grid_arms(name: str, cfg: config_lib.Config, grid: Any, seeds: list[int]
              ) -> tuple[Experiment, list[tuple[RunSpec, int, config_lib.Config]]]:
    """An experiment of one config swept over a grid, each arm over the same seeds (for the
    dashboard): what an experiment file's `grid` makes, with the same checks, refused (one line
    naming `grid.<key>`) before any config is built."""
    specs = expand(RunSpec(name, "", list(seeds)), grid, f"experiment {name!r}: grid")
    check_arms(name, [(spec, seed) for spec in specs for seed in seeds])
    base = cfg.to_dict()
    members = [(spec, seed, member(config_lib.from_dict(
                    config_lib.apply_overrides(base, spec.overrides)),
                    spec.label, seed))
               for spec in specs for seed in seeds]
    return Experiment(name, "", "", specs), members


def member(cfg: config_lib.Config, label: str, seed: int) -> config_lib.Config:
    """An arm's config for one seed: named after the arm, paths made absolute so a queued job
    reads the same files whatever the worker's working directory."""
    cfg.run.seed = seed
    cfg.run.name = f"{label} seed {seed}"[:100]
    preflight.validate(cfg)
    config_lib.absolute_paths(cfg)
    return cfg


def execute(exp: Experiment, overrides: list[str], listener: Listener | None = None,
            seeds: list[int] | None = None) -> dict[str, dict[int, Path]]:
    """`--local`: run (or resume) every config × seed in this process, one after another;
    returns the run folders by label and seed.

    Each run's own wall time (with its arm's exports of every round and instability analysis)
    goes into its folder (experiment_timing.json) for the write-up."""
    from .. import pipeline

    folders: dict[str, dict[int, Path]] = {}
    for spec, seed, cfg in plan(exp, overrides, seeds):
        folder = run_dir(Path(exp.out), spec, seed)
        if not runfolder.is_complete(folder):
            start = time.perf_counter()
            pipeline.execute(cfg, folder, listener)
            _after_run(folder, spec, listener)
            runfolder.write_json(folder / "experiment_timing.json",
                                 {"seconds": time.perf_counter() - start})
        _after_run(folder, spec, listener)  # finishes an interrupted one; else nothing to do
        folders.setdefault(spec.label, {})[seed] = folder
    return folders


def _after_run(folder: Path, spec: RunSpec, listener: Listener | None) -> None:
    """What the arm asks of each finished run: its exports of every round, its instability
    analysis; each does only what the folder does not hold yet."""
    export_rounds(folder, spec.export)
    if spec.instability:
        instability_arm.after_run(folder, spec.instability, listener)
