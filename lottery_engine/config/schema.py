"""The schema of a config: its sections as dataclasses, the allowed values, and its error types.
The networks, data sources and controls a config may name are registries of their own
(architectures.py, data_sources.py, controls.py).

Right above foundations/: validation, data, models and every reader of a config import these, and
nothing here imports them back (load.py, which reads and validates YAML, sits beside it).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from ..foundations.faults import UserError

INITS = ("file", "fresh")  # a .keras file's own weights as θ0, or its layers re-initialised
LOSSES = ("auto", "logits", "probabilities")  # auto: read from the output layer's activation
SCOPES = ("global", "layerwise")
GRANULARITIES = ("weight", "channel")
OPTIMIZERS = ("adam", "sgd", "adamw")  # each a fused update in training/fused_updates.py
WEIGHT_DECAY_ON = ("all", "kernels")  # every trainable variable (OpenLTH, Keras' AdamW) or kernels
MOMENTUM_FORMS = ("keras", "pytorch")  # where SGD's momentum keeps the rate (train_step.py)
TRAIN_STEPS = ("fused", "keras")
JIT_CHOICES = ("auto", True, False)
STACK_CHOICES = ("auto", True, False)
LR_SCHEDULES = ("constant", "step", "cosine")
AUGMENTATIONS = ("flip", "crop")  # random horizontal flip, random crop after 4-pixel padding
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
    augment: list[str] = field(default_factory=list)  # images only: flip, crop (recipes.py)


@dataclass
class TrainConfig:
    arch: str = "lenet"
    weights: str = "none"  # "imagenet" when arch is vgg16 and weights is not given, as in Keras
    freeze_base: bool = True  # vgg16: false trains and prunes the ImageNet base's 13 convs too
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
    early_stopping: bool | str = False  # true: stop `patience` validations after the lowest val
    # loss and keep those weights; false or measure: train every step and keep the final weights
    # (the early-stop point is measured either way; measure names Frankle & Carbin's protocol)
    patience: int = 3  # validations without a lower val loss before early stopping stops
    step: str = "fused"  # the engine's own compiled step (train_step.py), or keras: Keras' fit
    jit_compile: bool | str = False  # XLA for the fused step; auto times both at round 0, so two
    # runs of one config may take different paths (and numbers): not the default
    stack: bool | str = "auto"  # rounds >= 1 train the ticket and its controls as one stack
    # (stacked_step.py). auto: where it pays (stacked_step.unprofitable: a conv net in graph
    # mode; 1.82x the fused step's series-steps on the conv LeNet, none on LeNet-300-100);
    # true: also where it does not (in graph mode even when jit_compile: auto chose XLA); a
    # model it cannot express trains them one after another; the log and records say why
    momentum: float = 0.9  # sgd only (heavy-ball, or Nesterov's with nesterov: true)
    nesterov: bool = False
    momentum_form: str = "keras"  # keras: v = mv - lr g, w += v; pytorch: v = mv + g, w -= lr v
    weight_decay: float = 0.0  # L2 added to the gradient (sgd, adam); decoupled for adamw
    weight_decay_on: str = "all"  # every trainable variable, or kernels (not biases, BatchNorm)
    lr_schedule: str = "constant"  # step (x gamma at each milestone epoch) or cosine; recipes.py
    milestones: list[int] = field(default_factory=list)  # epochs; lr_schedule step only
    gamma: float = 0.1
    warmup_steps: int = 0  # linear warm-up from 0 over this many optimizer steps


@dataclass
class ImpConfig:
    prune_rate: float = 0.2
    num_rounds: int = 5
    target_sparsity: float = 0.99
    scope: str = "global"
    granularity: str = "weight"  # or channel: whole units (pruning/channels.py)
    refill: bool = False  # IMP-Refill, with granularity: channel
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
