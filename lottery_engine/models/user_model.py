"""The user's own network: a Keras 3 `.keras` file, or a factory for models with custom layers.

A file's weights are θ0 (`train.init: file`; NaN or inf in them is refused), or every layer is
drawn afresh from its own initializers under the seed (`init: fresh`, also what the random_reinit
control needs). A factory is `package.module:function`, called as
`function(input_shape, num_classes)`.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import keras

from ..config.schema import ConfigError, TrainConfig
from . import keras_file


def load_file(path: str | Path) -> keras.Model:
    """The model in a `.keras` file, loaded with safe_mode (refusals are one-line ConfigErrors)."""
    path = Path(path)
    keras_file.check_safe(path)
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{keras_file.KEY}: {path} cannot be loaded safely ({first}).") from None


def check_finite(model: keras.Model, path: Path) -> None:
    """Refuse a model whose weights hold NaN or inf, naming the first such weight: ReLU hides a
    NaN from the accuracy, so the run would go to its end and hand over a ticket holding it."""
    for variable in model.weights:
        if "float" not in str(variable.dtype):
            continue
        bad = int(keras.ops.sum(keras.ops.logical_not(keras.ops.isfinite(variable.value))))
        if bad:
            raise ConfigError(
                f"{keras_file.KEY}: weight '{variable.path}' of {path.name} holds {bad:,} NaN or "
                f"infinite value{'s' if bad > 1 else ''} of {math.prod(variable.shape):,}; save "
                f"the model again from finite weights (a training run that diverged leaves NaN), "
                f"or set train.init: fresh to draw new ones.")


def factory_function(spec: str):
    """The function named by `package.module:function`, imported (this runs the user's code)."""
    module_name, _, function_name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"train.factory: cannot import {module_name} ({exc}); make it "
                          f"importable (pip install -e your package, or set PYTHONPATH).") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"train.factory: {module_name} has no function {function_name!r}.")
    return function


def from_factory(spec: str, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    model = factory_function(spec)(tuple(input_shape), num_classes)
    if not isinstance(model, keras.Model):
        raise ConfigError(f"train.factory: {spec} returned {type(model).__name__}, not a Keras "
                          f"model; return keras.Model(...) or keras.Sequential(...), uncompiled.")
    return model


def reinitialised(model: keras.Model) -> keras.Model:
    """The same architecture with every layer newly drawn from its own initializers (under the
    global Keras seed the caller sets, so the same seed gives the same weights)."""
    fresh = keras.models.clone_model(model)
    fresh.build(model.input_shape)
    return fresh


def build(cfg: TrainConfig, input_shape: tuple[int, ...], num_classes: int,
          fresh: bool = False) -> keras.Model:
    """The user's model at θ0: the file's weights (refused if not finite), or drawn afresh
    (`fresh` or init: fresh)."""
    if cfg.arch == "factory":
        return from_factory(cfg.factory, input_shape, num_classes)
    model = load_file(cfg.model_file)
    if fresh or cfg.init == "fresh":
        return reinitialised(model)
    check_finite(model, Path(cfg.model_file))
    return model
