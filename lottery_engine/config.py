"""Experiment configuration: YAML in, typed and validated dataclasses out.

One place holds every hyperparameter (as in OpenLTH), so a run is fully described by its frozen
config file. Validation happens before anything touches the disk: an invalid config never leaves a
half-written run folder behind. Every error names the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ARCHS = ("lenet", "lenet_300_100", "vgg16")
SOURCES = ("bundled", "folder", "keras")
BUNDLED = ("digits",)
KERAS_DATASETS = ("fashion_mnist", "mnist", "cifar10")
SCOPES = ("global", "layerwise")
CONTROLS = ("random_reinit", "random_prune")
OPTIMIZERS = ("adam", "sgd")
DEVICES = ("cpu", "gpu", "auto")
SELECT_METRICS = ("val_accuracy", "val_f1")
_DEVICE_RE = re.compile(r"^(cpu|gpu|auto|gpu:\d+)$")
_REWIND_RE = re.compile(r"^(init|epoch:\d+|step:\d+)$")


class ConfigError(ValueError):
    """A config value that cannot be run; the message names the key and how to fix it."""


@dataclass
class RunConfig:
    name: str = "run"
    seed: int = 0
    device: str = "cpu"


@dataclass
class DataConfig:
    source: str = "bundled"
    name: str = "digits"
    data_dir: str | None = None
    image_size: list[int] = field(default_factory=lambda: [28, 28])
    channels: int = 1
    limit_total: int | None = None
    train_split: float = 0.7
    val_split: float = 0.2


@dataclass
class TrainConfig:
    arch: str = "lenet"
    weights: str = "none"
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1.2e-3
    optimizer: str = "adam"
    feature_cache: bool = True  # train a frozen base's head on cached base outputs


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


@dataclass
class FlopsConfig:
    include_frozen_base: bool = False


@dataclass
class ReportConfig:
    html: bool = True
    markdown: bool = True


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


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _check_keys(where: str, raw: dict, allowed: list[str]) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(
                f"{where}{key}: unknown key.{_did_you_mean(str(key), allowed)} "
                f"Allowed keys: {', '.join(allowed)}."
            )


def _build_section(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where.rstrip('.')}: expected a mapping of keys, got {raw!r}.")
    names = [f.name for f in dataclasses.fields(cls)]
    _check_keys(where, raw, names)
    return cls(**raw)


def from_dict(raw: Any) -> Config:
    """Build and validate a Config from parsed YAML (missing keys take their defaults)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping with sections run, data, ..., got {raw!r}.")
    classes = {f.name: f.default_factory for f in dataclasses.fields(Config)}
    _check_keys("", raw, list(classes))
    cfg = Config(**{name: _build_section(cls, raw.get(name), f"{name}.")
                    for name, cls in classes.items()})
    validate(cfg)
    return cfg


def load(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config file, apply `key.path=value` overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path}: not found. Pass the path of a YAML file, "
                          f"e.g. configs/quickstart.yaml.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: malformed YAML: {exc}") from None
    return from_dict(apply_overrides(raw, overrides or []))


def loads(text: str) -> Config:
    """Parse YAML text (as pasted into the dashboard) into a validated Config."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: malformed YAML: {exc}") from None
    return from_dict(raw)


def apply_overrides(raw: Any, overrides: list[str]) -> dict:
    """Apply `section.key=value` strings; values are parsed as YAML scalars or lists."""
    raw = dict(raw or {})
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected key.path=value, e.g. imp.prune_rate=0.3.")
        path, value = item.split("=", 1)
        keys = path.strip().split(".")
        node = raw
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item}: {key} is not a section.")
        node[keys[-1]] = yaml.safe_load(value)
    return raw


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


# --- validation -------------------------------------------------------------------------------

def _fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{key}: invalid value {value!r}; {allowed}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _choice(key: str, value: Any, options: tuple) -> None:
    if value not in options:
        hint = _did_you_mean(str(value), [str(o) for o in options])
        allowed = ", ".join(str(o) for o in options)
        raise ConfigError(f"{key}: unknown value {value!r}; allowed: {allowed}.{hint}")


def _int_at_least(key: str, value: Any, low: int) -> None:
    if not _is_int(value) or value < low:
        _fail(key, value, f"expected an integer >= {low}")


def _fraction(key: str, value: Any, *, open_low: bool = True, open_high: bool = True) -> None:
    low_ok = _is_number(value) and (value > 0 if open_low else value >= 0)
    high_ok = _is_number(value) and (value < 1 if open_high else value <= 1)
    if not (low_ok and high_ok):
        lo, hi = ("(" if open_low else "["), (")" if open_high else "]")
        _fail(key, value, f"expected a number in {lo}0, 1{hi}")


def validate(cfg: Config) -> None:
    """Check every value; raise ConfigError naming the first bad key."""
    run, data, train, imp = cfg.run, cfg.data, cfg.train, cfg.imp
    if not isinstance(run.name, str) or not run.name.strip():
        _fail("run.name", run.name, "expected a non-empty string")
    _int_at_least("run.seed", run.seed, 0)
    if not isinstance(run.device, str) or not _DEVICE_RE.match(run.device):
        _fail("run.device", run.device, "allowed: cpu, gpu, gpu:N, auto")

    _choice("data.source", data.source, SOURCES)
    if data.source == "bundled":
        _choice("data.name", data.name, BUNDLED)
    elif data.source == "keras":
        _choice("data.name", data.name, KERAS_DATASETS)
    elif not isinstance(data.data_dir, str) or not data.data_dir:
        _fail("data.data_dir", data.data_dir, "source 'folder' needs the path of an image folder")
    size = data.image_size
    if (not isinstance(size, list) or len(size) != 2
            or not all(_is_int(s) and 8 <= s <= 1024 for s in size)):
        _fail("data.image_size", size, "expected [height, width], integers in 8..1024")
    _choice("data.channels", data.channels, (1, 3))
    if data.limit_total is not None:
        _int_at_least("data.limit_total", data.limit_total, 20)
    _fraction("data.train_split", data.train_split)
    _fraction("data.val_split", data.val_split)
    # keras datasets keep their official test split, so train and val may share all of train
    total = data.train_split + data.val_split
    if total > 1 or (total == 1 and data.source != "keras"):
        _fail("data.val_split", data.val_split,
              f"train_split + val_split must be below 1 to leave a test split "
              f"(train_split is {data.train_split})")

    _choice("train.arch", train.arch, ARCHS)
    if not (train.weights in ("none", "imagenet")
            or (isinstance(train.weights, str) and train.weights.endswith(".h5"))):
        _fail("train.weights", train.weights, "allowed: none, imagenet, or the path of a .h5 file")
    if train.arch != "vgg16" and train.weights != "none":
        _fail("train.weights", train.weights, "only vgg16 takes pretrained weights; use none")
    if train.arch == "vgg16" and data.channels != 3:
        _fail("data.channels", data.channels, "vgg16 needs 3 channels")
    _int_at_least("train.epochs", train.epochs, 1)
    _int_at_least("train.batch_size", train.batch_size, 1)
    if not _is_number(train.learning_rate) or not 0 < train.learning_rate <= 10:
        _fail("train.learning_rate", train.learning_rate, "expected a number in (0, 10]")
    _choice("train.optimizer", train.optimizer, OPTIMIZERS)
    if not isinstance(train.feature_cache, bool):
        _fail("train.feature_cache", train.feature_cache, "expected true or false")

    _fraction("imp.prune_rate", imp.prune_rate)
    _int_at_least("imp.num_rounds", imp.num_rounds, 0)
    _fraction("imp.target_sparsity", imp.target_sparsity, open_high=False)
    _choice("imp.scope", imp.scope, SCOPES)
    if not isinstance(imp.layer_rates, dict):
        _fail("imp.layer_rates", imp.layer_rates, "expected a mapping layer: rate")
    for layer, rate in imp.layer_rates.items():
        _fraction(f"imp.layer_rates.{layer}", rate)
    if not isinstance(imp.rewind, str) or not _REWIND_RE.match(imp.rewind):
        _fail("imp.rewind", imp.rewind,
              "allowed: init, epoch:K (K < train.epochs) or step:N (a batch of round 0)")
    if imp.rewind.startswith("epoch:") and int(imp.rewind[6:]) >= train.epochs:
        _fail("imp.rewind", imp.rewind, f"the rewind epoch must be below train.epochs ({train.epochs})")
    if not isinstance(imp.controls, list):
        _fail("imp.controls", imp.controls, f"expected a list drawn from {', '.join(CONTROLS)}")
    for control in imp.controls:
        _choice("imp.controls", control, CONTROLS)
    _choice("imp.select_metric", imp.select_metric, SELECT_METRICS)
    for key in ("include_frozen_base",):
        if not isinstance(getattr(cfg.flops, key), bool):
            _fail(f"flops.{key}", getattr(cfg.flops, key), "expected true or false")
    for key in ("html", "markdown"):
        if not isinstance(getattr(cfg.report, key), bool):
            _fail(f"report.{key}", getattr(cfg.report, key), "expected true or false")


def rewind_step(cfg: Config, batches_per_epoch: int) -> int:
    """The training step of round 0 whose weights later rounds rewind to (0 means θ0)."""
    if cfg.imp.rewind == "init":
        return 0
    kind, count = cfg.imp.rewind.split(":")
    return int(count) * (batches_per_epoch if kind == "epoch" else 1)
