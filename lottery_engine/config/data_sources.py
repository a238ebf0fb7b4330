"""Every data source a config may name, one entry each: the one place that lists them.

An entry holds what is known without loading anything (the dashboard and the validator read it):
the key the source needs, its file suffix, what the Launch form shows, and which config checks
apply. Its loader is named, not imported (`package.module:function`, resolved by data/dataset.py),
so config stays below data and free of TensorFlow. Adding a source is a loader in a new file plus
one `DataSource(...)` line below (docs/extending.md).
"""

from __future__ import annotations

from dataclasses import dataclass

BUNDLED = ("digits",)
KERAS_DATASETS = ("fashion_mnist", "mnist", "cifar10")


@dataclass(frozen=True)
class DataSource:
    """One source. `loader` is called as `function(data_config, progress)` and returns a
    data.dataset.Pool.

    - `needs`: the data key naming what to load (data.name, data.data_dir or data.path);
    - `names`: the datasets data.name may choose (sources that need data.name);
    - `suffix`: the user's own file's suffix (data.path): its rows keep their own shape, so
      data.image_size and data.channels do not apply;
    - `label`: the Launch form's option for it; None: not offered there;
    - `label_column`: it needs data.label, the name of the label column;
    - `test_split`: it may bring its own test split, so train_split + val_split may be 1;
    - `images`: its rows are images, which data.augment may flip and crop.
    """

    name: str
    loader: str
    needs: str
    names: tuple[str, ...] = ()
    suffix: str | None = None
    label: str | None = None
    label_column: bool = False
    test_split: bool = False
    images: bool = True


_DATASET, _OWN = "lottery_engine.data.dataset", "lottery_engine.data.dataset:load_user_file"

DATA_SOURCES: dict[str, DataSource] = {source.name: source for source in (
    DataSource("bundled", f"{_DATASET}:load_bundled", "data.name", BUNDLED,
               label="bundled digits"),
    DataSource("folder", f"{_DATASET}:load_folder", "data.data_dir",
               label="image folder"),
    DataSource("keras", f"{_DATASET}:load_keras", "data.name", KERAS_DATASETS,
               label="keras dataset", test_split=True),
    DataSource("arrays", _OWN, "data.path", suffix=".npz", label="my own data (.npz / .csv)",
               test_split=True),
    DataSource("csv", _OWN, "data.path", suffix=".csv", label_column=True, images=False),
)}


def names() -> tuple[str, ...]:
    """Every source's name, as data.source allows them."""
    return tuple(DATA_SOURCES)


def file_suffixes() -> dict[str, str]:
    """The sources that read the user's own file, each with that file's suffix."""
    return {name: source.suffix for name, source in DATA_SOURCES.items() if source.suffix}
