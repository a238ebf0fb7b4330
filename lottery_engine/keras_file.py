"""What a `.keras` file asks for before it is loaded: read from its `config.json`, no TensorFlow.

The validator uses this so a model that `safe_mode` would refuse (a Python `Lambda`, a layer whose
class needs the user's code) is refused when the config is submitted, in one line naming the layer,
before a job or a run folder exists. And where a run keeps the file: a copy in its folder named by
content hash (`pin`), so a resumed run, the ticket, a second worker or a Ray node never depend on
the path it came from.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator

from .schema import Config, ConfigError

KEY = "train.model_file"
COPY_PREFIX = "model-"
FACTORY_HINT = ("register it with keras.saving.register_keras_serializable and use "
                "train.arch: factory with train.factory: package.module:function")


def read_config(path: Path) -> dict:
    """The model config stored in a `.keras` file; a ConfigError if it is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except FileNotFoundError:
        raise ConfigError(f"{KEY}: {path} not found; give the path of a Keras 3 .keras file "
                          f"(model.save('model.keras')).") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ConfigError(f"{KEY}: {path} is not a Keras 3 .keras file ({exc}); save the model "
                          f"with model.save('model.keras') (Keras 3), not .h5 or SavedModel."
                          ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"{KEY}: {path} holds no model config; save it with model.save().")
    return config


def _layers(node: Any) -> Iterator[dict]:
    """Every serialized layer in a model config, nested models' layers included."""
    if isinstance(node, dict):
        inner = node.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("layers"), list):
            for layer in inner["layers"]:
                if isinstance(layer, dict):
                    yield layer
                    yield from _layers(layer)


def _needs_code(entry: dict) -> bool:
    module = entry.get("module")
    return not (isinstance(module, str) and module.startswith("keras"))


def check_safe(path: Path) -> dict:
    """The file's config, or a ConfigError naming the first layer `safe_mode` would refuse."""
    config = read_config(path)
    if _needs_code(config):
        raise ConfigError(f"{KEY}: {path} is a subclassed model (class "
                          f"{config.get('class_name')}), which needs its Python code to load; "
                          f"{FACTORY_HINT}.")
    for layer in _layers(config):
        name = layer.get("config", {}).get("name", "?")
        if layer.get("class_name") == "Lambda":
            raise ConfigError(f"{KEY}: layer '{name}' of {path.name} is a Lambda layer (Python "
                              f"code), which safe loading refuses; rewrite it as a custom layer: "
                              f"{FACTORY_HINT}.")
        if _needs_code(layer):
            raise ConfigError(f"{KEY}: layer '{name}' of {path.name} is a custom layer (class "
                              f"{layer.get('registered_name') or layer.get('class_name')}), "
                              f"which needs your code to load; {FACTORY_HINT}.")
    return config


def content_name(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"{COPY_PREFIX}{digest.hexdigest()[:16]}.keras"


def pin(cfg: Config, folder: Path) -> Config:
    """A copy of `cfg` whose model file is a copy inside `folder`, named by content hash and
    stored by bare name (config.load_run resolves it there). Other configs come back unchanged."""
    if cfg.train.arch != "file":
        return cfg
    source = Path(cfg.train.model_file)
    name = content_name(source)
    target = Path(folder) / name
    if not target.is_file():
        shutil.copyfile(source, target.with_suffix(".partial"))
        target.with_suffix(".partial").replace(target)
    pinned = copy.deepcopy(cfg)
    pinned.train.model_file = name
    return pinned


def inside(cfg: Config, folder: Path) -> Config:
    """A pinned config with its model file's bare name resolved into `folder`."""
    if cfg.train.arch != "file" or "/" in cfg.train.model_file:
        return cfg
    resolved = copy.deepcopy(cfg)
    resolved.train.model_file = str(Path(folder) / cfg.train.model_file)
    return resolved
