"""Preflight: what a config points at on this machine, checked before a run is queued or started.

Reading a config (config/load.py) reads the config file only, so a reader that needs one key of a
run (the Ray dispatcher, a ticket, an export, a write-up) never re-checks its data. The entry
points check here instead: `lottery run` / `submit` / `hybrid`, the queue's submit, the Launch and
Experiments pages, experiments, `find_ticket`, the worker before its first batch and the model
summary. What is checked: the data folder or file is there and readable, the split leaves every
class in every part (data.limit_total, train_split, val_split, and the parts a file gives whole),
a .keras model file is safe to load, VGG16's weights are at hand, a .npz's rows are images where
data.augment flips them, the hybrid metrics file holds metrics, and a channel run prunes a layer
that can lose whole units (config/granularity.py).

Every refusal is collected (Problems) and raised at once, a check whose values were refused
skipped. `load`, `loads`, `load_run`, `from_dict` and `validate` read or check a config exactly as
config/load.py does and add these checks to its value checks, so a config's bad values and
missing files come back together in one ConfigError; `check` is for a Config already accepted.
Nothing here imports TensorFlow at module level (the dashboard calls it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import load as config_lib
from .config import validation
from .config.load import Config, ConfigError, Problems
from .config.architectures import ARCHITECTURES
from .config.data_sources import DATA_SOURCES
from .config.granularity import check_unit_layers
from .config.validation import HYBRID_KEYS, leave_test
from .config.values import fail, is_number

# what the split check reads beyond its own key: it is skipped while one of these is refused
SPLIT_KEYS = ("run.seed", "data.source", "data.name", "data.data_dir", "data.path", "data.label",
              "data.limit_total", "data.train_split", "data.val_split")

# class sizes of the built-in datasets (train part for keras ones), so splits are checked
# without loading the data
CLASS_COUNTS = {
    ("bundled", "digits"): [178, 182, 177, 183, 181, 182, 181, 179, 174, 180],
    ("keras", "fashion_mnist"): [6000] * 10,
    ("keras", "mnist"): [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    ("keras", "cifar10"): [5000] * 10,
}


def check(cfg: Config) -> None:
    """Check the files of an accepted config; one ConfigError carries every refusal."""
    problems = Problems()
    check_files(cfg, problems)
    problems.raise_any()


def validate(cfg: Config) -> None:
    """Check every value of `cfg` and the files it names (a Config built or changed in code);
    one ConfigError carries every refusal."""
    problems = Problems()
    validation.check(cfg, problems)
    check_files(cfg, problems)
    problems.raise_any()


def load(path: str | Path, overrides: list[str] | None = None) -> Config:
    """config_lib.load, its files checked too."""
    return config_lib.load(path, overrides, check_files)


def load_run(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """config_lib.load_run, its files checked too (a run about to train on them)."""
    return config_lib.load_run(run_dir, overrides, check_files)


def loads(text: str, overrides: list[str] | None = None) -> Config:
    """config_lib.loads, its files checked too."""
    return config_lib.loads(text, overrides, check_files)


def from_dict(raw: Any) -> Config:
    """config_lib.from_dict, its files checked too."""
    return config_lib.from_dict(raw, check_files)


# --- what the config points at on this machine -------------------------------------------------

def class_labels(cfg: Config) -> tuple[Any, list[str], dict[str, Any]]:
    """Class labels of the pool the run splits (train part for keras), the class names, and the
    labels of each part the source gives whole (None where not read: keras' official test)."""
    import numpy as np

    if DATA_SOURCES[cfg.data.source].suffix is not None:
        from .data import user_data

        labels, classes = user_data.check(cfg.data)
        return labels.pop("train"), classes, labels
    if cfg.data.source == "folder":
        from .data import image_folder

        listing = image_folder.list_folder(Path(cfg.data.data_dir))
        return np.array(listing.label_indices), listing.classes, {}
    counts = CLASS_COUNTS.get((cfg.data.source, cfg.data.name))
    if counts is None:  # a registered source of its own: its pool, loaded to read the labels
        from .data import dataset as data_lib

        pool = data_lib.load_pool(cfg.data)
        return pool.y, pool.class_names, {part: pool.arrays(part)[1] for part in pool.given}
    given = {"test": None} if cfg.data.source == "keras" else {}
    return np.repeat(np.arange(len(counts)), counts), [str(c) for c in range(len(counts))], given


def _missing_class(labels: Any, classes: list[str]) -> str | None:
    missing = sorted(set(range(len(classes))) - set(labels.tolist()))
    return classes[missing[0]] if missing else None


def check_splits(cfg: Config) -> None:
    """Refuse a limit_total / train_split / val_split that leaves a class out of a split part:
    the split is computed on the labels alone, exactly as the run will make it. A val or test
    part that a data file gives whole must hold every class too."""
    from .data import dataset as data_lib

    labels, classes, given = class_labels(cfg)
    data = cfg.data
    if "test" not in given and data.train_split + data.val_split >= 1:  # a .npz without x_test
        leave_test(data, f"; {Path(data.path).name} has no x_test to test on")
    _check_given(given, classes, data.path)
    unit = "rows" if DATA_SOURCES[data.source].suffix is not None else "images"
    what = (f"{len(labels):,} {unit} in {len(classes)} classes"
            + (f", limit_total {data.limit_total:,}" if data.limit_total else ""))
    fix = "raise data.limit_total or the split fractions"
    try:
        split = data_lib.split_labels(labels, data, cfg.run.seed, tuple(given))
    except ValueError as exc:
        raise ConfigError(f"data.train_split / data.val_split: cannot split {what} so that "
                          f"every class is in every part ({' '.join(str(exc).split())}); "
                          f"{fix}.") from None
    parts = {"train": ("data.train_split", split.train), "val": ("data.val_split", split.val),
             "test": ("data.train_split + data.val_split", split.test)}
    for part, (key, rows) in parts.items():
        if part in given:
            continue
        absent = _missing_class(labels[rows], classes)
        if absent is not None:
            raise ConfigError(f"{key}: with {what}, the {part} part ({len(rows)} {unit}) would "
                              f"hold no example of class {absent!r}; {fix}.")


def _check_given(given: dict[str, Any], classes: list[str], path: str | None) -> None:
    """A val or test part that a data file gives whole must hold every class, as split-off
    parts must (keras' official test parts, not read here, do)."""
    for part, labels in given.items():
        absent = None if labels is None else _missing_class(labels, classes)
        if absent is not None:
            raise ConfigError(f"data.path: y_{part} of {Path(path).name} holds no example of "
                              f"class {absent!r}; every part needs every class, so add some or "
                              f"leave x_{part}, y_{part} out to split {part} off x_train.")


def _check_hybrid_metrics(path_text: str) -> None:
    import json

    key, path = "report.hybrid_pipeline_metrics_path", Path(path_text)
    try:
        metrics = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path} not found. Make it with `lottery hybrid --config FILE "
                          f"--out DIR` (it writes DIR/test_metrics.json), or set "
                          f"report.compare_with_hybrid_pipeline: false.") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{key}: {path} is not a readable JSON file ({exc}).") from None
    if not (isinstance(metrics, dict) and is_number(metrics.get("accuracy"))
            and is_number(metrics.get("flops"))):
        raise ConfigError(f"{key}: {path} holds no hybrid metrics (expected the keys accuracy "
                          f"and flops, as `lottery hybrid` writes them).")


def _safe_model_file(cfg: Config) -> None:
    if cfg.train.arch == "file":
        from .models import keras_file

        keras_file.check_safe(Path(cfg.train.model_file))


def _base_weights(cfg: Config) -> None:
    """The pretrained base's weights file (vgg16's ImageNet convs), where the network has one."""
    if ARCHITECTURES[cfg.train.arch].base:
        from .data.keras_cache import vgg16_weights_path

        vgg16_weights_path(cfg.train.weights)


def _augment_arrays(cfg: Config) -> None:
    """A .npz's rows are images to flip and crop only when each is (height, width, channels)."""
    if cfg.data.augment and cfg.data.source == "arrays":
        from .data import user_data

        shape, _ = user_data.peek(cfg.data)
        if len(shape) != 3:
            fail("data.augment", cfg.data.augment, f"flip and crop apply to images, and the rows "
                 f"of {Path(cfg.data.path).name} have shape {shape}, not (height, width, "
                 f"channels); use augment: []")


def _hybrid_metrics(cfg: Config) -> None:
    if cfg.report.compare_with_hybrid_pipeline:
        _check_hybrid_metrics(cfg.report.hybrid_pipeline_metrics_path)


def check_files(cfg: Config, problems: Problems) -> None:
    """The data folder, the splits, a model file, VGG16 weights, a .npz's row shape (for
    data.augment) and the hybrid metrics file, as seen here, refusals collected in `problems`;
    each only once the values it reads were accepted (a refused value is not looked for on
    disk)."""
    problems.check(check_splits, cfg, needs=SPLIT_KEYS)
    problems.check(_safe_model_file, cfg, needs=("train.arch", "train.model_file"))
    problems.check(_base_weights, cfg, needs=("train.arch", "train.weights"))
    problems.check(_augment_arrays, cfg, needs=("data.augment", "data.source", "data.path"))
    problems.check(_hybrid_metrics, cfg, needs=HYBRID_KEYS)
    problems.check(check_unit_layers, cfg,
                   needs=("train.arch", "imp.granularity", "imp.prunable_layers"))
