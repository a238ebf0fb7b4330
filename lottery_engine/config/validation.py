"""The one validator that the CLI, the queue and the dashboard share.

`validate` checks every value of a Config (types, ranges with upper bounds, exact choices) and
reads nothing from disk: what the config points at on this machine (the data and its splits, a
model file, weights, a metrics file) is preflight.py's, which joins these refusals.
Each failure is one ConfigError naming the key, the value and what to do; every failure of a
config is collected (Problems) and raised at once, a check that needs a refused value skipped.
Nothing here imports TensorFlow; the devices a run asks for are checked where the run starts
(lottery/runtime.check_device).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from . import architectures, data_sources
from .architectures import ARCHITECTURES
from .controls import names as control_names
from .data_sources import DATA_SOURCES
from .granularity import check_granularity
from .labels import check_run_name
from .recipe_checks import check_recipe
from .schema import (AUGMENTATIONS, INITS, JIT_CHOICES, LOSSES, OPTIMIZERS, SCOPES,
                     SELECT_METRICS, STACK_CHOICES, TRAIN_STEPS, Config, ConfigError, Problems,
                     TrainConfig, did_you_mean)
from .values import (MAX_PATH, MAX_STEP, check_bool, check_path, choice, fail, fraction, int_in, is_int,
                     is_number)

# upper bounds: generous for real work, small enough to catch a typo before it runs for years
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_EPOCHS = 10_000
MAX_ROUNDS = 1_000
MAX_BATCH = 65_536
MAX_LIMIT_TOTAL = 10_000_000
MAX_IMAGE_SIZE = 1024
MAX_PATIENCE = 1_000
MAX_FLOPS = 10**16

# what a check reads beyond its own key: it is skipped while one of these is refused
HYBRID_KEYS = ("report.compare_with_hybrid_pipeline", "report.hybrid_pipeline_metrics_path")
_DEVICE_RE = re.compile(r"cpu|gpu|auto|gpu:\d{1,4}")
_REWIND_RE = re.compile(r"init|epoch:\d{1,9}|step:\d{1,10}")
_FACTORY_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _device(value: Any) -> None:
    if not isinstance(value, str) or not _DEVICE_RE.fullmatch(value):
        fail("run.device", value, "allowed: cpu, gpu, gpu:N, auto")


def _check_run(cfg: Config, problems: Problems) -> None:
    run = cfg.run
    problems.check(check_run_name, run.name)
    problems.check(int_in, "run.seed", run.seed, 0, MAX_SEED)
    problems.check(_device, run.device)
    problems.check(check_path, "run.artifacts_dir", run.artifacts_dir)


def _source_keys(data: Any) -> None:
    """What the data source needs (its entry's `needs`): a dataset's name, an image folder or
    a data file."""
    source = DATA_SOURCES[data.source]
    if source.needs == "data.name":
        choice("data.name", data.name, source.names)
    elif source.needs == "data.data_dir":
        if not isinstance(data.data_dir, str) or not data.data_dir:
            fail("data.data_dir", data.data_dir,
                 f"source '{data.source}' needs the path of an image folder")
        check_path("data.data_dir", data.data_dir, optional=False)
    else:
        if not isinstance(data.path, str) or not data.path:
            fail("data.path", data.path,
                 f"source '{data.source}' needs the path of a {source.suffix} file")
        check_path("data.path", data.path, optional=False)


def _csv_label(data: Any) -> None:
    if DATA_SOURCES[data.source].label_column and (
            not isinstance(data.label, str) or not data.label.strip()
            or len(data.label) > MAX_PATH):
        fail("data.label", data.label, f"source '{data.source}' needs the name of its label "
             f"column")


def _image_size(size: Any) -> None:
    if (not isinstance(size, list) or len(size) != 2
            or not all(is_int(s) and 8 <= s <= MAX_IMAGE_SIZE for s in size)):
        fail("data.image_size", size, f"expected [height, width], integers in 8..{MAX_IMAGE_SIZE}")


def _split_total(data: Any) -> None:
    """keras datasets keep their official test split, so train and val may share all of train;
    so may a .npz with x_test (preflight.check_splits refuses 1 when it has none)."""
    total = data.train_split + data.val_split
    if total > 1 or (total == 1 and not DATA_SOURCES[data.source].test_split):
        leave_test(data)


def _check_data(cfg: Config, problems: Problems) -> None:
    data = cfg.data
    problems.check(choice, "data.source", data.source, data_sources.names())
    problems.check(_source_keys, data, needs=("data.source",))
    problems.check(_csv_label, data, needs=("data.source",))
    if not problems.refused("data.source") and DATA_SOURCES[data.source].suffix is None:
        problems.check(_image_size, data.image_size)  # the user's arrays keep their own shape
        problems.check(choice, "data.channels", data.channels, (1, 3))
    if data.limit_total is not None:
        problems.check(int_in, "data.limit_total", data.limit_total, 20, MAX_LIMIT_TOTAL)
    problems.check(fraction, "data.train_split", data.train_split)
    problems.check(fraction, "data.val_split", data.val_split)
    problems.check(_split_total, data,
                   needs=("data.source", "data.train_split", "data.val_split"))
    if problems.check(_augment, data.augment):
        problems.check(_augment_images, data, needs=("data.source",))


def _augment(kinds: Any) -> None:
    allowed = ", ".join(AUGMENTATIONS)
    if not isinstance(kinds, list):
        fail("data.augment", kinds, f"expected a list drawn from {allowed} (or [] for none)")
    for kind in kinds:
        choice("data.augment", kind, AUGMENTATIONS)
    if len(set(kinds)) != len(kinds):
        fail("data.augment", kinds, "each augmentation at most once")


def _augment_images(data: Any) -> None:
    """Flips and crops move pixels: a csv's rows are not images (a .npz's rows are checked
    against its file in preflight.check_files)."""
    if data.augment and not DATA_SOURCES[data.source].images:
        fail("data.augment", data.augment, "flip and crop apply to images, and a csv's rows are "
             "not; use augment: [] for csv data")


def _augment_features(cfg: Config) -> None:
    """A frozen base's head trains on the base's outputs cached once (feature_cache.py), so there
    is no image left to flip or crop at each step."""
    train = cfg.train
    if cfg.data.augment and ARCHITECTURES[train.arch].base and train.feature_cache \
            and getattr(train, "freeze_base", True):
        fail("data.augment", cfg.data.augment, f"{train.arch}'s head trains on base features "
             f"cached once, which cannot be augmented; set train.feature_cache: false, or "
             f"augment: []")


def leave_test(data: Any, why: str = "") -> None:
    fail("data.val_split", data.val_split,
         f"train_split + val_split must be below 1 to leave a test split "
         f"(train_split is {data.train_split}){why}")


def _weights(weights: Any) -> None:
    if not (weights in ("none", "imagenet")
            or (isinstance(weights, str) and weights.endswith(".h5") and len(weights) <= MAX_PATH)):
        fail("train.weights", weights, "allowed: none, imagenet, or the path of a .h5 file")


def _weights_for_arch(train: Any) -> None:
    if not ARCHITECTURES[train.arch].base and train.weights != "none":
        fail("train.weights", train.weights,
             f"only {_with_base()} takes pretrained weights; use none")


def _image_size_for_arch(cfg: Config) -> None:
    least = ARCHITECTURES[cfg.train.arch].min_side
    if least and DATA_SOURCES[cfg.data.source].suffix is None \
            and min(cfg.data.image_size) < least:
        fail("data.image_size", cfg.data.image_size, f"{cfg.train.arch}'s poolings halve the "
             f"image, so it needs at least {least}×{least}")


def _freeze_base_for_arch(train: TrainConfig) -> None:
    if not ARCHITECTURES[train.arch].base and train.freeze_base is not True:
        fail("train.freeze_base", train.freeze_base, f"only {_with_base()} has a pretrained "
             f"base to freeze or train; leave the key out")


def _with_base() -> str:
    """The architectures with a pretrained base (today vgg16), as a refusal names them."""
    return " or ".join(arch.name for arch in ARCHITECTURES.values() if arch.base)


def _arch_channels(cfg: Config) -> None:
    needed = ARCHITECTURES[cfg.train.arch].channels
    if needed and DATA_SOURCES[cfg.data.source].suffix is None \
            and cfg.data.channels != needed:
        fail("data.channels", cfg.data.channels, f"{cfg.train.arch} needs {needed} channels")


def _learning_rate(value: Any) -> None:
    if not is_number(value) or not 0 < value <= 10:
        fail("train.learning_rate", value, "expected a number in (0, 10]")


def _check_train(cfg: Config, problems: Problems) -> None:
    train = cfg.train
    problems.check(choice, "train.arch", train.arch, architectures.names())
    problems.check(_weights, train.weights)
    problems.check(_weights_for_arch, train, needs=("train.arch", "train.weights"))
    problems.check(_arch_channels, cfg, needs=("train.arch", "data.source", "data.channels"))
    problems.check(_image_size_for_arch, cfg, needs=("train.arch", "data.source",
                                                      "data.image_size"))
    problems.check(check_bool, "train.freeze_base", train.freeze_base)
    problems.check(_freeze_base_for_arch, train, needs=("train.arch", "train.freeze_base"))
    _check_user_model(cfg, problems)
    problems.check(int_in, "train.epochs", train.epochs, 1, MAX_EPOCHS)
    problems.check(int_in, "train.batch_size", train.batch_size, 1, MAX_BATCH)
    problems.check(_learning_rate, train.learning_rate)
    problems.check(choice, "train.optimizer", train.optimizer, OPTIMIZERS)
    problems.check(check_bool, "train.feature_cache", train.feature_cache)
    if train.eval_every is not None:
        problems.check(int_in, "train.eval_every", train.eval_every, 1, MAX_STEP)
    problems.check(_early_stopping, train.early_stopping)
    problems.check(int_in, "train.patience", train.patience, 1, MAX_PATIENCE)
    check_recipe(cfg, problems)
    problems.check(_augment_features, cfg,
                   needs=("data.augment", "train.arch", "train.feature_cache"))
    problems.check(choice, "train.step", train.step, TRAIN_STEPS)
    problems.check(_jit_compile, train.jit_compile)
    problems.check(_keras_step, cfg, needs=("train", "data.augment"))
    problems.check(_stack, train, needs=("train.step", "train.jit_compile"))


def _early_stopping(value: Any) -> None:
    if not isinstance(value, bool) and value != "measure":
        fail("train.early_stopping", value, "expected true (stop and keep the early-stop "
             "point's weights), false or measure (train every step, keep the final weights)")


def _jit_compile(value: Any) -> None:
    if value not in JIT_CHOICES or (value != "auto" and not isinstance(value, bool)):
        fail("train.jit_compile", value, "allowed: auto (time both at round 0), true (XLA) or "
             "false (graph mode)")


def _keras_step(cfg: Config) -> None:
    """Keras' fit path (the reference) runs the recipes it had: constant-rate adam or sgd with
    Keras' momentum 0.9. The rest is the fused step's; refusing beats training without it
    silently (Keras' SGD has no PyTorch-form momentum)."""
    train, default = cfg.train, TrainConfig()
    if train.step != "keras":
        return
    extras = [key for key in ("optimizer", "momentum", "nesterov", "momentum_form",
                              "weight_decay", "weight_decay_on", "lr_schedule", "warmup_steps")
              if getattr(train, key) != getattr(default, key)
              and not (key == "optimizer" and train.optimizer == "sgd")]
    extras += ["data.augment"] if cfg.data.augment else []
    if extras:
        fail("train.step", train.step, f"keras runs only constant-rate adam or sgd with "
             f"Keras' momentum 0.9; for {', '.join(extras)} use step: fused")


def _stack(train: TrainConfig) -> None:
    if train.stack not in STACK_CHOICES or (train.stack != "auto"
                                            and not isinstance(train.stack, bool)):
        fail("train.stack", train.stack, "allowed: auto (stack where it pays), true or false")
    if train.stack is True and train.step != "fused":
        fail("train.stack", train.stack, "stacking is a form of the fused step; use step: "
             "fused, or stack: auto")
    if train.stack is True and train.jit_compile is True:
        fail("train.stack", train.stack, "the stack runs in graph mode; use jit_compile: auto "
             "or false, or stack: auto")


def _model_file(train: Any) -> None:
    if train.arch == "file":
        check_path("train.model_file", train.model_file, optional=False)
        if not train.model_file.endswith(".keras"):
            fail("train.model_file", train.model_file,
                 "expected a Keras 3 .keras file (save it with model.save('model.keras'))")
    elif train.model_file is not None:
        fail("train.model_file", train.model_file, "only train.arch: file takes a model file")


def _factory(train: Any) -> None:
    if train.arch == "factory":
        if not isinstance(train.factory, str) or not _FACTORY_RE.fullmatch(train.factory):
            fail("train.factory", train.factory,
                 "expected package.module:function, called as function(input_shape, "
                 "num_classes) and returning an uncompiled Keras model")
    elif train.factory is not None:
        fail("train.factory", train.factory, "only train.arch: factory takes a factory")


def _fresh_init(train: Any) -> None:
    if train.init == "fresh" and train.arch != "file":
        fail("train.init", train.init, "fresh re-draws a model file's weights; only "
             "train.arch: file has weights of its own (use file)")


def _check_user_model(cfg: Config, problems: Problems) -> None:
    """arch file / factory and their keys; the file itself is read in preflight.check_files."""
    train = cfg.train
    problems.check(_model_file, train, needs=("train.arch",))
    problems.check(_factory, train, needs=("train.arch",))
    problems.check(choice, "train.init", train.init, INITS)
    problems.check(_fresh_init, train, needs=("train.arch", "train.init"))
    problems.check(choice, "train.loss", train.loss, LOSSES)


def _check_patterns(key: str, patterns: list, known: list[str] | None, arch: str) -> None:
    """Layer names or globs; each must match one of the `known` layers of a built-in
    architecture (a user model's layers are only known once it is loaded: the engine checks)."""
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            fail(key, pattern, "expected a layer name or glob pattern such as block*/conv*")
        if known is not None and not fnmatch.filter(known, pattern):
            raise ConfigError(f"{key}: {pattern!r} matches no prunable layer of {arch}."
                              f"{did_you_mean(pattern, known)} Prunable: {', '.join(known)}.")


def _prunable_layers(layers: Any, known: list[str] | None, arch: str) -> None:
    if not isinstance(layers, list) or not layers or len(set(map(str, layers))) != len(layers):
        fail("imp.prunable_layers", layers,
             "expected a list of distinct layer names or glob patterns")
    _check_patterns("imp.prunable_layers", layers, known, arch)


def _check_layers(cfg: Config, problems: Problems) -> None:
    """imp.prunable_layers and imp.layer_rates, against the layers of a built-in architecture
    (a rate names a layer that prunable_layers keeps)."""
    imp, arch = cfg.imp, cfg.train.arch
    known = None if problems.refused("train.arch") else \
        architectures.prunable_layers(arch, cfg.train.freeze_base)
    if imp.prunable_layers is not None and \
            problems.check(_prunable_layers, imp.prunable_layers, known, arch) and known:
        known = [name for name in known
                 if any(fnmatch.fnmatchcase(name, p) for p in imp.prunable_layers)]
    if not problems.check(_rate_mapping, imp.layer_rates):
        return
    for layer, rate in imp.layer_rates.items():
        problems.check(_check_patterns, f"imp.layer_rates.{layer}", [layer], known, arch)
        problems.check(fraction, f"imp.layer_rates.{layer}", rate)


def _rate_mapping(rates: Any) -> None:
    if not isinstance(rates, dict):
        fail("imp.layer_rates", rates, "expected a mapping layer: rate")


def _rewind(rewind: Any) -> None:
    if not isinstance(rewind, str) or not _REWIND_RE.fullmatch(rewind):
        fail("imp.rewind", rewind,
             "allowed: init, epoch:K (K < train.epochs) or step:N (a batch of round 0)")
    kind, _, count = rewind.partition(":")
    if kind == "step" and int(count) > MAX_STEP:
        fail("imp.rewind", rewind, f"N at most {MAX_STEP:,}")


def _rewind_epoch(rewind: str, epochs: int) -> None:
    kind, _, count = rewind.partition(":")
    if kind == "epoch" and int(count) >= epochs:
        fail("imp.rewind", rewind, f"the rewind epoch must be below train.epochs ({epochs})")


def _controls(controls: Any) -> None:
    if not isinstance(controls, list):
        fail("imp.controls", controls,
             f"expected a list drawn from {', '.join(control_names())}")


def _distinct(controls: list) -> None:
    if len(set(controls)) != len(controls):
        fail("imp.controls", controls, "each control at most once")


def _check_imp(cfg: Config, problems: Problems) -> None:
    imp = cfg.imp
    problems.check(fraction, "imp.prune_rate", imp.prune_rate)
    problems.check(int_in, "imp.num_rounds", imp.num_rounds, 0, MAX_ROUNDS)
    problems.check(fraction, "imp.target_sparsity", imp.target_sparsity, open_high=False)
    problems.check(choice, "imp.scope", imp.scope, SCOPES)
    check_granularity(cfg, problems)
    _check_layers(cfg, problems)
    problems.check(_rewind, imp.rewind)
    problems.check(_rewind_epoch, imp.rewind, cfg.train.epochs,
                   needs=("imp.rewind", "train.epochs"))
    if problems.check(_controls, imp.controls):
        for control in imp.controls:
            problems.check(choice, "imp.controls", control, control_names())
        problems.check(_distinct, imp.controls, needs=("imp.controls",))
    problems.check(choice, "imp.select_metric", imp.select_metric, SELECT_METRICS)
    problems.check(check_path, "imp.results_dir", imp.results_dir)


def _hybrid_path_given(report: Any) -> None:
    if report.compare_with_hybrid_pipeline and not report.hybrid_pipeline_metrics_path:
        fail("report.hybrid_pipeline_metrics_path", None,
             "compare_with_hybrid_pipeline is true, so name a hybrid test_metrics.json "
             "(made by `lottery hybrid`), or set compare_with_hybrid_pipeline: false")


def _base_flops_frozen(cfg: Config) -> None:
    """The figure stands for a frozen base counted whole; a trained base is pruned, so its convs
    are counted layer by layer at their density and a fixed figure would be wrong."""
    if cfg.train.freeze_base is False:
        fail("flops.vgg16_base_flops", cfg.flops.vgg16_base_flops, "with train.freeze_base: "
             "false the base's convs are counted per layer at their density; leave the key out")


def _check_outputs(cfg: Config, problems: Problems) -> None:
    problems.check(check_bool, "flops.include_frozen_base", cfg.flops.include_frozen_base)
    base = cfg.flops.vgg16_base_flops
    if base is not None:
        problems.check(int_in, "flops.vgg16_base_flops", base, 1, MAX_FLOPS)
        problems.check(_base_flops_frozen, cfg, needs=("train.freeze_base",))
    for key in ("html", "markdown", "compare_with_hybrid_pipeline"):
        problems.check(check_bool, f"report.{key}", getattr(cfg.report, key))
    problems.check(check_path, "report.hybrid_pipeline_metrics_path",
                   cfg.report.hybrid_pipeline_metrics_path)
    problems.check(_hybrid_path_given, cfg.report, needs=HYBRID_KEYS)


def check(cfg: Config, problems: Problems) -> None:
    """Every value check of `cfg`, its refusals collected in `problems` (which may already hold
    the config's unknown keys). The files it names are preflight.check_files'."""
    _check_run(cfg, problems)
    _check_data(cfg, problems)
    _check_train(cfg, problems)
    _check_imp(cfg, problems)
    _check_outputs(cfg, problems)


def validate(cfg: Config) -> None:
    """Check every value (nothing on disk: preflight.validate adds the files). Raises one
    ConfigError carrying every refusal (see Problems)."""
    problems = Problems()
    check(cfg, problems)
    problems.raise_any()
