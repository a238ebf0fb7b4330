"""What a `.keras` file asks for before it is loaded: read from its `config.json`, no TensorFlow.

The validator uses this so a model that `safe_mode` would refuse (a Python `Lambda`) or that needs
the user's code (a custom layer or activation), anywhere in it (inside wrappers and nested models
too), is refused when the config is submitted, in one line naming the layer, before a job or a run
folder exists. The config is read bounded in size and nesting depth, since the dashboard reads
uploads. And where a run keeps the file: a copy in its folder named by content hash (`pin`), so a
resumed run, the ticket, a second worker or a Ray node never depend on the path it came from.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
import zipfile
import zlib
from itertools import accumulate
from pathlib import Path
from typing import Any, Iterator

from ..config.schema import Config, ConfigError

KEY = "train.model_file"
CONFIG = "config.json"
COPY_PREFIX = "model-"
FACTORY_HINT = ("register it with keras.saving.register_keras_serializable and use "
                "train.arch: factory with train.factory: package.module:function")
OUTSIDE_KERAS = ("code from outside Keras that loading needs; use built-in Keras layers and "
                 f"activations, or {FACTORY_HINT}")
# config.json of the largest keras.applications models (Keras 3.15, measured): VGG16 21 KB,
# ResNet50 169 KB, ResNet152 495 KB, DenseNet201 669 KB, EfficientNetB7 759 KB. Ten times the
# largest still bounds what a padded config (a zip bomb of whitespace) costs to read and parse.
MAX_CONFIG_BYTES = 8_000_000
# Those configs nest 11 levels deep (14 with ResNet50 inside a model); 100 leaves room for
# models inside models and keeps json and _objects, which recurse once a level, far below
# Python's recursion limit (1,000).
MAX_CONFIG_DEPTH = 100
_ESCAPE_RE = re.compile(rb"\\.", re.DOTALL)  # gone first, "[^"]*" finds strings in one pass
_STRING_RE = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def _config_bytes(archive: zipfile.ZipFile, path: Path) -> bytes:
    """config.json's bytes, refused when larger than any model's config: the size its header
    gives is checked before reading, and the read itself is bounded, so a header that lies
    cannot make it read more."""
    info = archive.getinfo(CONFIG)
    data = b""
    if info.file_size <= MAX_CONFIG_BYTES:
        with archive.open(info) as member:
            data = member.read(MAX_CONFIG_BYTES + 1)
    size = max(info.file_size, len(data))
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{KEY}: {CONFIG} of {path.name} holds {size:,} bytes, more than a "
                          f"model's config needs ({MAX_CONFIG_BYTES:,}); save the model again "
                          f"with model.save('model.keras').")
    return data


def _too_deep(text: bytes) -> bool:
    """Whether JSON `text` nests arrays and objects more than MAX_CONFIG_DEPTH deep (brackets in
    strings do not count); found without parsing, since json.loads recurses once a level."""
    brackets = _STRING_RE.sub(b"", _ESCAPE_RE.sub(b"", text)).translate(None, _NOT_BRACKETS)
    return any(depth > MAX_CONFIG_DEPTH
               for depth in accumulate(1 if char in b"[{" else -1 for char in brackets))


def read_config(path: Path) -> dict:
    """The model config stored in a `.keras` file; a ConfigError if it is not one, or if its
    config is larger or deeper than a model's can be."""
    try:
        with zipfile.ZipFile(path) as archive:
            text = _config_bytes(archive, path)
        if _too_deep(text):
            raise ConfigError(f"{KEY}: {CONFIG} of {path.name} is nested more than "
                              f"{MAX_CONFIG_DEPTH} levels deep, which no model's config is; "
                              f"save the model again with model.save('model.keras').")
        config = json.loads(text)
    except ConfigError:  # a ValueError, yet already the one line to show
        raise
    except FileNotFoundError:
        raise ConfigError(f"{KEY}: {path} not found; give the path of a Keras 3 .keras file "
                          f"(model.save('model.keras')).") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, zlib.error) as exc:
        raise ConfigError(f"{KEY}: {path} is not a Keras 3 .keras file ({exc}); save the model "
                          f"with model.save('model.keras') (Keras 3), not .h5 or SavedModel."
                          ) from None
    if not isinstance(config, dict):
        raise ConfigError(f"{KEY}: {path} holds no model config; save it with model.save().")
    return config


def _is_layer(entry: dict) -> bool:
    """A serialized layer (or model) has a name and a trainable flag; a serialized activation,
    initializer or dtype policy does not have both."""
    config = entry.get("config")
    return isinstance(config, dict) and "name" in config and "trainable" in config


def _objects(node: Any, where: tuple[str, ...] = ()) -> Iterator[tuple[str, dict]]:
    """Every serialized object in a config (layers, and the activations, initializers, ...
    they hold) with the path of the layer it is in ('steps/double'), looking inside wrappers
    (TimeDistributed, Bidirectional) and nested models too: whatever keys hold them."""
    if isinstance(node, list):
        for item in node:
            yield from _objects(item, where)
    elif isinstance(node, dict):
        if _is_layer(node):
            where = (*where, str(node["config"]["name"]))
        if "class_name" in node:
            yield "/".join(where), node
        for key, value in node.items():
            if key != "compile_config":  # a loss or metric of its own: not loaded (compile=False)
                yield from _objects(value, where)


def _is_keras(module: Any) -> bool:
    """Keras' own modules are `keras` and `keras.*` (not `keras_hub` or `kerasfoo`)."""
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


def _needs_code(entry: dict) -> bool:
    """Whether a serialized object names a module outside Keras; one without a module (a
    tensor, a tuple) is Keras' own."""
    return "module" in entry and not _is_keras(entry["module"])


def _code_name(entry: dict) -> str:
    """An object from outside Keras as its config names it: a function by its (registered)
    name, a class by its registered name and module."""
    if entry.get("class_name") == "function":
        return f"the function {entry.get('config')}"
    return f"{entry.get('registered_name') or entry.get('class_name')} from {entry.get('module')}"


def check_safe(path: Path) -> dict:
    """The file's config, or a ConfigError naming the first layer that holds code safe loading
    would refuse (a Lambda) or that loading would need (a class or function not in Keras)."""
    config = read_config(path)
    if not _is_keras(config.get("module")):
        raise ConfigError(f"{KEY}: {path} is a subclassed model (class "
                          f"{config.get('class_name')}), which needs its Python code to load; "
                          f"{FACTORY_HINT}.")
    for where, entry in _objects(config.get("config")):
        layer = f"layer '{where or '?'}' of {path.name}"
        if entry.get("class_name") == "Lambda":
            raise ConfigError(f"{KEY}: {layer} is a Lambda layer (Python code), which safe "
                              f"loading refuses; rewrite it as a custom layer: {FACTORY_HINT}.")
        if _needs_code(entry):
            what = (f"is a custom layer ({_code_name(entry)})" if _is_layer(entry)
                    else f"uses {_code_name(entry)}")
            raise ConfigError(f"{KEY}: {layer} {what}, {OUTSIDE_KERAS}.")
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
