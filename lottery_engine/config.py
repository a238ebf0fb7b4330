"""Experiment configuration: YAML in, typed and validated dataclasses out.

One place holds every hyperparameter (as in OpenLTH), so a run is fully described by its frozen
config file. Validation (validation.py) happens before anything touches the disk: an invalid config
never leaves a half-written run folder or a queued job behind. Every error names the key, the value
and what is allowed, and all of a config's errors are reported at once.

Two spellings are accepted: today's keys and the original plan's (SPEC §3), so the configs users
arrive with run as written. The plan's names for today's keys are aliases, mapped on reading; its
other keys are fields of their own. A frozen config is always written in today's spelling.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from . import yaml_text
from .faults import UserError

BUILTIN_ARCHS = ("lenet", "lenet_300_100", "vgg16")
USER_ARCHS = ("file", "factory")  # the user's own network: a .keras file, or package.module:function
ARCHS = BUILTIN_ARCHS + USER_ARCHS
INITS = ("file", "fresh")  # a .keras file's own weights as θ0, or its layers re-initialised
LOSSES = ("auto", "logits", "probabilities")  # auto: read from the output layer's activation
PRUNABLE_LAYERS = {
    "lenet": ["conv_1", "conv_2", "dense_1", "dense_2", "output"],
    "lenet_300_100": ["dense_1", "dense_2", "output"],
    "vgg16": ["fc1", "fc2", "output"],
}
SOURCES = ("bundled", "folder", "keras", "arrays", "csv")
BUNDLED = ("digits",)
KERAS_DATASETS = ("fashion_mnist", "mnist", "cifar10")
SCOPES = ("global", "layerwise")
CONTROLS = ("random_reinit", "random_prune")
OPTIMIZERS = ("adam", "sgd")
DEVICES = ("cpu", "gpu", "auto")
SELECT_METRICS = ("val_accuracy", "val_f1")
# the original plan's names for today's keys (section -> plan name -> today's name)
PLAN_ALIASES = {"train": {"epochs_per_round": "epochs"},
                "imp": {"prune_rate_per_round": "prune_rate"}}


class ConfigError(UserError, ValueError):
    """A config value that cannot be run; the message names the key and how to fix it."""

    @property
    def key(self) -> str:
        """The config key the message starts with (`imp.prune_rate`), so a form can show the
        refusal under that key's field."""
        return str(self).split(":")[0].split(" ")[0]

    @property
    def errors(self) -> list[ConfigError]:
        """Every refusal this error stands for: itself (ConfigErrors holds several)."""
        return [self]


class ConfigErrors(ConfigError):
    """Every refusal of one config, raised at once so that a user fixes them in one go rather
    than one per try. str() is one refusal per line, the first line first."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(error) for error in errors))
        self._errors = errors

    @property
    def errors(self) -> list[ConfigError]:
        return self._errors

    def __reduce__(self) -> tuple:
        return ConfigErrors, (self._errors,)  # pickled (across processes) with every refusal


class Problems:
    """The refusals of one config, collected as it is checked. A check whose inputs were refused
    is skipped: a bad value is reported once, never again as the nonsense it causes further on."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def add(self, error: ConfigError) -> None:
        self.errors.extend(error.errors)

    def refused(self, *keys: str) -> bool:
        """Whether a refusal names one of `keys` or a key inside it (`data` covers data.name)."""
        return any(error.key == key or error.key.startswith(f"{key}.")
                   for error in self.errors for key in keys)

    def check(self, check: Callable[..., Any], *args: Any, needs: tuple[str, ...] = (),
              **kwargs: Any) -> bool:
        """Run `check(*args, **kwargs)` unless a key it `needs` was refused; True when it
        passed."""
        if self.refused(*needs):
            return False
        try:
            check(*args, **kwargs)
        except ConfigError as exc:
            self.add(exc)
            return False
        return True

    def raise_any(self) -> None:
        """Raise what was refused: the one ConfigError itself, or ConfigErrors for several."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigErrors(self.errors)


@dataclass
class RunConfig:
    name: str = "run"
    seed: int = 0
    device: str = "cpu"
    artifacts_dir: str | None = None  # the plan's; where run folders go when results_dir is unset


@dataclass
class DataConfig:
    source: str = "bundled"  # "folder" when data_dir is given and source is not
    name: str = "digits"
    data_dir: str | None = None
    image_size: list[int] = field(default_factory=lambda: [28, 28])
    channels: int = 1
    limit_total: int | None = None
    train_split: float = 0.7
    val_split: float = 0.2
    path: str | None = None  # the .npz (source arrays) or .csv (source csv) file
    label: str | None = None  # the label column of a csv


@dataclass
class TrainConfig:
    arch: str = "lenet"
    weights: str = "none"  # "imagenet" when arch is vgg16 and weights is not given, as in Keras
    model_file: str | None = None  # arch file: a Keras 3 .keras file (in a run folder: its copy)
    factory: str | None = None  # arch factory: "package.module:function"
    init: str = "file"  # arch file/factory: θ0 is the model's weights (file) or re-drawn (fresh)
    loss: str = "auto"  # auto: logits or probabilities as the output layer's activation says
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1.2e-3
    optimizer: str = "adam"
    feature_cache: bool = True  # train a frozen base's head on cached base outputs
    eval_every: int | None = None  # validate every N steps (and at each epoch end); None: per epoch
    early_stopping: bool = False  # stop a round when val loss stops improving; keep the best point
    patience: int = 3  # validations without a lower val loss before early stopping stops


@dataclass
class ImpConfig:
    prune_rate: float = 0.2
    num_rounds: int = 5
    target_sparsity: float = 0.99
    scope: str = "global"
    layer_rates: dict[str, float] = field(default_factory=dict)
    rewind: str = "init"
    controls: list[str] = field(default_factory=list)
    select_metric: str = "val_accuracy"
    prunable_layers: list[str] | None = None  # None: every prunable layer of the architecture
    results_dir: str | None = None  # where `lottery run` without --out puts the run folder


@dataclass
class FlopsConfig:
    include_frozen_base: bool = False
    vgg16_base_flops: int | None = None  # the plan's override of the computed base FLOPs


@dataclass
class ReportConfig:
    html: bool = True
    markdown: bool = True
    compare_with_hybrid_pipeline: bool = False
    hybrid_pipeline_metrics_path: str | None = None  # a `lottery hybrid` test_metrics.json


@dataclass
class Config:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    imp: ImpConfig = field(default_factory=ImpConfig)
    flops: FlopsConfig = field(default_factory=FlopsConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


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
    if section == "train" and raw.get("arch") == "vgg16" and "weights" not in raw:
        raw["weights"] = "imagenet"
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


def from_dict(raw: Any, check_files: bool = True) -> Config:
    """Build and validate a Config from parsed YAML (missing keys take their defaults).

    Raises one ConfigError carrying every refusal (its `errors`): unknown keys and bad values
    of every section at once. `check_files` also checks what the config points at on this
    machine (data folder and its splits, weight and metrics files); turn it off only to read a
    run's frozen config."""
    from . import validation

    if raw is None or raw == {}:
        raise ConfigError("config: empty. Give at least one section (run, data, train, imp, "
                          "flops, report); configs/quickstart.yaml is a complete example.")
    _sections(raw, "config")
    problems = Problems()
    classes = {f.name: f.default_factory for f in dataclasses.fields(Config)}
    raw = _known("", raw, list(classes), problems)
    cfg = Config(**{name: _build_section(cls, raw.get(name), f"{name}.", problems)
                    for name, cls in classes.items()})
    validation.check(cfg, problems, check_files)
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
         check_files: bool = True) -> Config:
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
                     check_files)


def load_run(run_dir: str | Path, check_files: bool = True,
             overrides: list[str] | None = None) -> Config:
    """A run folder's frozen config. Its model file is a copy inside the folder, stored by bare
    name (keras_file.pin) and so found beside the config: the folder can move to another machine
    or a Ray node."""
    return load(Path(run_dir) / "config.yaml", overrides, check_files)


def loads(text: str, check_files: bool = True, overrides: list[str] | None = None) -> Config:
    """Parse YAML text (as pasted into the dashboard), apply `key.path=value` overrides (a form's
    fields over it), validate."""
    raw = _parse(text, "config")
    _sections(raw, "config")
    return from_dict(apply_overrides(raw, overrides or []), check_files)


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
