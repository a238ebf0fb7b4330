"""Experiment configuration: YAML in, typed and validated dataclasses out.

One place holds every hyperparameter (as in OpenLTH), so a run is fully described by its frozen
config file. Validation (validation.py) happens before anything touches the disk: an invalid config
never leaves a half-written run folder or a queued job behind. Every error names the key, the value
and what is allowed, and all of a config's errors are reported at once.

Reading a config reads the config file and nothing else: the files it names (data, a model file,
weights) are checked by preflight.py, which the entry points call; its loaders pass those checks
in as `extra_checks`, so a config's bad values and missing files are still refused together.

Two spellings are accepted: today's keys and the original plan's (SPEC §3), so the configs users
arrive with run as written. The plan's names for today's keys are aliases, mapped on reading; its
other keys are fields of their own. A frozen config is always written in today's spelling.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import yaml

from ..foundations import runfolder, yaml_text
# the schema, re-exported: readers of a config import it here
from .schema import (  # noqa: F401
    Config, ConfigError, ConfigErrors, DEVICES, DataConfig, FlopsConfig, INITS, ImpConfig, LOSSES,
    OPTIMIZERS, PLAN_ALIASES, Problems, ReportConfig, RunConfig, SCOPES, SELECT_METRICS,
    TrainConfig, did_you_mean)
from . import validation
from .architectures import ARCHITECTURES


def _known(where: str, raw: dict, allowed: list[str], problems: Problems) -> dict:
    """`raw` without its unknown keys, each of which is refused (with the allowed ones)."""
    for key in raw:
        if key not in allowed:
            problems.add(ConfigError(
                f"{where}{key}: unknown key.{did_you_mean(str(key), allowed)} "
                f"Allowed keys: {', '.join(allowed)}."))
    return {key: value for key, value in raw.items() if key in allowed}


def _canonical(section: str, raw: dict, problems: Problems) -> dict:
    """The section with the plan's aliases renamed to today's keys and the plan's implied
    defaults filled in; giving both spellings of one key is refused, naming both."""
    raw = dict(raw)
    for plan_key, key in PLAN_ALIASES.get(section, {}).items():
        if plan_key in raw:
            if key in raw:
                problems.add(ConfigError(
                    f"{section}.{plan_key} and {section}.{key}: both given; they are one setting "
                    f"(the original plan's name and today's). Keep one of them."))
            raw.setdefault(key, raw.pop(plan_key))
    if section == "data" and "source" not in raw and raw.get("data_dir") is not None:
        raw["source"] = "folder"
    arch = ARCHITECTURES.get(str(raw.get("arch"))) if section == "train" else None
    if arch is not None and arch.base and "weights" not in raw:
        raw["weights"] = "imagenet"  # a pretrained base's weights, as in Keras
    return raw


def _not_a_mapping(section: str, value: Any) -> ConfigError:
    """The refusal of a section that is not a mapping of keys (`imp: 5`), whether it is read or
    about to take an override."""
    return ConfigError(f"{section}: expected a mapping of keys, got {type(value).__name__}.")


def _build_section(cls: type, raw: Any, where: str, problems: Problems) -> Any:
    """The section from its known keys; what cannot be read is refused into `problems`, so the
    rest of the config is still checked."""
    if raw is None:
        return cls()
    section = where.rstrip(".")
    if not isinstance(raw, dict):
        problems.add(_not_a_mapping(section, raw))
        return cls()
    names = [f.name for f in dataclasses.fields(cls)]
    known = _known(where, raw, names + list(PLAN_ALIASES.get(section, {})), problems)
    return cls(**_canonical(section, known, problems))


# checks of a built config that join its refusals (preflight.check_files: what it names on disk)
ExtraChecks = Callable[[Config, Problems], None]


def from_dict(raw: Any, extra_checks: ExtraChecks | None = None) -> Config:
    """Build and validate a Config from parsed YAML (missing keys take their defaults).

    Raises one ConfigError carrying every refusal (its `errors`): unknown keys and bad values
    of every section at once, and what `extra_checks` refuses (preflight's file checks, which
    skip a check whose values were refused). Nothing beyond `raw` is read."""
    if raw is None or raw == {}:
        raise ConfigError("config: empty. Give at least one section (run, data, train, imp, "
                          "flops, report); configs/quickstart.yaml is a complete example.")
    _sections(raw, "config")
    problems = Problems()
    classes = {f.name: f.default_factory for f in dataclasses.fields(Config)}
    raw = _known("", raw, list(classes), problems)
    cfg = Config(**{name: _build_section(cls, raw.get(name), f"{name}.", problems)
                    for name, cls in classes.items()})
    validation.check(cfg, problems)
    if extra_checks is not None:
        extra_checks(cfg, problems)
    problems.raise_any()
    return cfg


def _sections(raw: Any, where: str) -> None:
    """Refuse parsed YAML that is not a mapping of sections (a number, a list, a word)."""
    if not isinstance(raw, dict) and raw is not None:
        raise ConfigError(f"{where}: expected a mapping with sections run, data, ..., got "
                          f"{type(raw).__name__}.")


def _parse(text: str | bytes, where: str) -> Any:
    try:
        return yaml_text.parse(text, where)
    except yaml_text.YamlError as exc:
        raise ConfigError(str(exc)) from None


def load(path: str | Path, overrides: list[str] | None = None,
         extra_checks: ExtraChecks | None = None) -> Config:
    """Read a YAML config file, apply `key.path=value` overrides, validate."""
    path = Path(path)
    where = f"config file {path}"
    try:
        if path.stat().st_size > yaml_text.MAX_BYTES:
            raise ConfigError(f"{where}: larger than {yaml_text.MAX_BYTES:,} bytes; "
                              f"that is not a config.")
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: not found. Pass the path of a YAML file, e.g. "
                          f"configs/quickstart.yaml.") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or exc}).") from None
    raw = _parse(text, where)
    _sections(raw, where)
    return from_dict(apply_overrides(_paths_beside(raw, path.parent), overrides or []),
                     extra_checks)


def load_run(run_dir: str | Path, overrides: list[str] | None = None,
             extra_checks: ExtraChecks | None = None) -> Config:
    """A run folder's frozen config, read without looking at its data (readers need one key;
    preflight.load_run checks the files too). Its model file is a copy inside the folder, stored
    by bare name (keras_file.pin) and so found beside the config: the folder can move to another
    machine or a Ray node."""
    return load(Path(run_dir) / runfolder.CONFIG, overrides, extra_checks)


def loads(text: str, overrides: list[str] | None = None,
          extra_checks: ExtraChecks | None = None) -> Config:
    """Parse YAML text (as pasted into the dashboard), apply `key.path=value` overrides (a form's
    fields over it), validate."""
    raw = _parse(text, "config")
    _sections(raw, "config")
    return from_dict(apply_overrides(raw, overrides or []), extra_checks)


def apply_overrides(raw: Any, overrides: list[str]) -> dict:
    """Apply `section.key=value` strings; values are parsed as YAML scalars or lists.

    An override replaces the key in whichever spelling (plan or today's) the file used."""
    raw = dict(raw or {})
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key.path=value, e.g. imp.prune_rate=0.3.")
        path, value = item.split("=", 1)
        section, *keys = path.strip().split(".")
        if not section or not keys or not all(keys):
            raise ConfigError(f"--set {item}: expected section.key=value, e.g. "
                              f"imp.prune_rate=0.3.")
        if raw.get(section) is not None and not isinstance(raw[section], dict):
            raise _not_a_mapping(section, raw[section])  # the config's own fault, not the --set's
        raw[section] = node = _copy_section(raw.get(section), item, section)
        twins = PLAN_ALIASES.get(section, {})
        twin = twins.get(keys[0]) or next((p for p, now in twins.items() if now == keys[0]), None)
        node.pop(twin, None)
        for key in keys[:-1]:
            node[key] = node = _copy_section(node.get(key), item, key)
        node[keys[-1]] = _parse(value, f"--set {path}")
    return raw


def override(path: str, value: Any) -> str:
    """The `section.key=value` override that sets `value` (a form's number or list) exactly:
    written as YAML, so a float such as 1e-05 reads back as a float, not as text."""
    text = yaml.safe_dump(value, default_flow_style=True).removesuffix("...\n").strip()
    return f"{path}={text}"


def _copy_section(node: Any, item: str, key: str) -> dict:
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise ConfigError(f"--set {item}: {key} is not a section.")
    return dict(node)


PATH_KEYS = (("data", "data_dir"), ("data", "path"), ("train", "model_file"),
             ("train", "weights"), ("report", "hybrid_pipeline_metrics_path"))


def _is_path(key: str, value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and "\x00" not in value and (
        key != "weights" or value.endswith(".h5"))  # weights: none | imagenet | a .h5 file


def _resolved(value: str, base: Path) -> str:
    """`value` made absolute against `base`; a relative path that exists only from the working
    directory keeps that meaning (configs written to be run from a project's root)."""
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    beside = base / path
    return str((beside if beside.exists() or not path.exists() else path).resolve())


def _paths_beside(raw: dict | None, base: Path) -> dict | None:
    """The file's relative paths resolved against its own folder, before any --set (whose paths
    are the shell's, made absolute at submit)."""
    if not raw:
        return raw
    raw = dict(raw)
    for section, key in PATH_KEYS:
        if isinstance(raw.get(section), dict) and _is_path(key, raw[section].get(key)):
            raw[section] = {**raw[section], key: _resolved(raw[section][key], base)}
    return raw


def absolute_paths(cfg: Config) -> None:
    """Make every file and folder a validated config names absolute, in place: a queued job is
    read by a worker in another working directory (or on another node) and must find the same
    files."""
    for section, key in PATH_KEYS:
        part = getattr(cfg, section)
        if _is_path(key, getattr(part, key)):
            setattr(part, key, _resolved(getattr(part, key), Path.cwd()))


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def rewind_step(cfg: Config, batches_per_epoch: int) -> int:
    """The training step of round 0 whose weights later rounds rewind to (0 means θ0)."""
    if cfg.imp.rewind == "init":
        return 0
    kind, count = cfg.imp.rewind.split(":")
    return int(count) * (batches_per_epoch if kind == "epoch" else 1)


@dataclasses.dataclass(frozen=True)
class StepClock:
    """Round 0's step clock, which every round and series of a run shares (OpenLTH): the trainer
    schedules rounds on it and the write-up states the protocol in it. Records keep the steps a
    round took, not its cap, so readers compute it from the config and the training split too."""

    batches: int  # steps per epoch: the training split in batches, the last one partial
    total: int  # T: the step every round trains to at most (epochs × batches)
    rewind: int  # k: the step rounds >= 1 rewind to and start from (0: θ0)


def step_clock(cfg: Config, train_examples: int) -> StepClock:
    """The clock of a run of `cfg` on a training split of `train_examples` examples."""
    batches = -(-train_examples // cfg.train.batch_size)
    return StepClock(batches, cfg.train.epochs * batches, rewind_step(cfg, batches))
