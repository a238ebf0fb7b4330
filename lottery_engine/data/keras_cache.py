"""Where Keras keeps downloaded weights and datasets, so we can look before it would download."""

from __future__ import annotations

import os
from pathlib import Path

from ..config.schema import ConfigError

VGG16_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


def keras_home() -> Path:
    """$KERAS_HOME, else ~/.keras: the folder keras.utils.get_file caches into."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def vgg16_weights_path(weights: str) -> str | None:
    """Resolve `train.weights` to a local file, or explain where to put it (never downloads)."""
    if weights == "none":
        return None
    path = Path(weights) if weights != "imagenet" else keras_home() / "models" / VGG16_NOTOP_FILE
    if not path.is_file():
        raise ConfigError(
            f"train.weights: VGG16 ImageNet weights not found at {path}. Put "
            f"{VGG16_NOTOP_FILE} there (or set train.weights to its path), "
            f"or use train.weights: none to train from scratch.")
    return str(path)
