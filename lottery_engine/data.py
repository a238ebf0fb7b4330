"""Datasets: load a source into uint8 images, then make the seeded, stratified splits.

Images stay uint8 (H, W, C) all the way to the model, whose first layer rescales each batch: a float
copy of a large set is never made. A source is a function returning a `Pool`; new sources (image
folders, keras.datasets) plug into `SOURCES` without touching the split logic.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split

from . import image_folder
from .config import DataConfig
from .image_folder import Progress
from .keras_cache import keras_home


@dataclass
class Pool:
    """Everything a source yields; `x_test`/`y_test` only when the source has an official test split."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


@dataclass
class Split:
    """Row indices into the pool (and its official test part) for each split."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    split: Split

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def resize_images(images: np.ndarray, size: list[int], channels: int) -> np.ndarray:
    """Resize uint8 images (N, H, W[, C]) to (N, h, w, channels) with bilinear filtering
    (a no-op when they already have that shape)."""
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] == (*size, channels):
        return images
    return np.stack([image_folder.fit_image(Image.fromarray(image.squeeze(-1) if
                                                            image.shape[-1] == 1 else image),
                                            tuple(size), channels) for image in images])


def _bundled(cfg: DataConfig, progress: Progress | None) -> Pool:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    names = [str(c) for c in digits.target_names]
    return Pool(resize_images(images, cfg.image_size, cfg.channels),
                digits.target.astype(np.int64), names)


def _folder(cfg: DataConfig, progress: Progress | None) -> Pool:
    images, labels, classes = image_folder.load(Path(cfg.data_dir), tuple(cfg.image_size),
                                                cfg.channels, progress)
    return Pool(images, labels, classes)


DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
KERAS_CACHE_DIRS = {"fashion_mnist": "fashion-mnist"}


def _seed_keras_cache(name: str) -> None:
    """Offline Fashion-MNIST: copy Debian's files into the Keras cache, where load_data looks."""
    import shutil

    if name != "fashion_mnist" or not DEBIAN_FASHION_MNIST.is_dir():
        return
    cache = keras_home() / "datasets" / KERAS_CACHE_DIRS[name]
    cache.mkdir(parents=True, exist_ok=True)
    for source in DEBIAN_FASHION_MNIST.glob("*-ubyte.gz"):
        if not (cache / source.name).is_file():
            shutil.copyfile(source, cache / source.name)


def _keras(cfg: DataConfig, progress: Progress | None) -> Pool:
    """keras.datasets by name; the official test split stays the test split."""
    import keras

    _seed_keras_cache(cfg.name)
    try:
        (x, y), (x_test, y_test) = getattr(keras.datasets, cfg.name).load_data()
    except Exception as exc:  # noqa: BLE001 - any download failure means the same to the user
        raise FileNotFoundError(
            f"data.name: could not load {cfg.name} through keras.datasets ({exc}). Either connect "
            f"to the network once so Keras can download it into "
            f"{keras_home() / 'datasets'}, or, for fashion_mnist offline, install "
            f"Debian's package: apt-get install dataset-fashion-mnist "
            f"(its files in {DEBIAN_FASHION_MNIST} are used automatically).") from None
    names = [str(c) for c in range(int(y.max()) + 1)]
    if cfg.name == "fashion_mnist":
        names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]
    resize = lambda images: resize_images(images, cfg.image_size, cfg.channels)  # noqa: E731
    return Pool(resize(x), y.reshape(-1).astype(np.int64), names,
                resize(x_test), y_test.reshape(-1).astype(np.int64))


SOURCES: dict[str, Callable[[DataConfig, Progress | None], Pool]] = {"bundled": _bundled, "folder": _folder,
                                                     "keras": _keras}


def split_labels(y: np.ndarray, official_test: bool, cfg: DataConfig, seed: int) -> Split:
    """Stratified train/val/test indices of labels `y`, fixed by the seed; `limit_total`
    subsamples first. With an official test split, `test` indexes that split, which stays whole.
    Labels are all it needs, so the validator runs it before any image is loaded."""
    indices = np.arange(len(y))
    if cfg.limit_total is not None and cfg.limit_total < len(indices):
        indices, _ = train_test_split(indices, train_size=cfg.limit_total,
                                      stratify=y, random_state=seed)
    if official_test:
        val_share = cfg.val_split / (cfg.train_split + cfg.val_split)
        train, val = train_test_split(indices, test_size=val_share,
                                      stratify=y[indices], random_state=seed)
        return Split(np.sort(train), np.sort(val), np.array([], dtype=np.int64))
    train, rest = train_test_split(indices, train_size=cfg.train_split,
                                   stratify=y[indices], random_state=seed)
    val_share = cfg.val_split / (1.0 - cfg.train_split)
    val, test = train_test_split(rest, train_size=val_share,
                                 stratify=y[rest], random_state=seed)
    return Split(np.sort(train), np.sort(val), np.sort(test))


def make_split(pool: Pool, cfg: DataConfig, seed: int) -> Split:
    """The run's split of a loaded pool (its official test split, if any, is the test part)."""
    split = split_labels(pool.y, pool.y_test is not None, cfg, seed)
    if pool.y_test is not None:
        split.test = np.arange(len(pool.y_test))
    return split


def load_pool(cfg: DataConfig, progress: Progress | None = None) -> Pool:
    return SOURCES[cfg.source](cfg, progress)


def load(cfg: DataConfig, seed: int, split: Split | None = None,
         progress: Progress | None = None) -> Dataset:
    """Load the configured data; pass a saved `split` to restore a run's exact partition.

    Splits are gathered from the pool in uint8 (a memmapped folder cache stays uint8 too)."""
    pool = load_pool(cfg, progress)
    split = split or make_split(pool, cfg, seed)
    x_test, y_test = (pool.x_test, pool.y_test) if pool.y_test is not None else (pool.x, pool.y)
    return Dataset(gather(pool.x, split.train), pool.y[split.train], gather(pool.x, split.val),
                   pool.y[split.val], gather(x_test, split.test), y_test[split.test],
                   pool.class_names, split)


def gather(images: np.ndarray, rows: np.ndarray, chunk: int = 256) -> np.ndarray:
    """images[rows] in memory. From a memmap, copy chunk by chunk and let the kernel drop the
    mapped pages after each, so a split costs its own size in RAM, not also the whole file's."""
    mapping = getattr(images, "_mmap", None)
    if mapping is None:
        return images[rows]
    out = np.empty((len(rows), *images.shape[1:]), dtype=images.dtype)
    row_bytes = images[0].nbytes
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        out[start:start + chunk] = images[part]
        first = (int(part.min()) * row_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
        mapping.madvise(mmap.MADV_DONTNEED, first, (int(part.max()) + 1) * row_bytes - first)
    return out


def save_split(split: Split, path: Path) -> None:
    np.savez(path, train=split.train, val=split.val, test=split.test)


def load_split(path: Path) -> Split:
    with np.load(path) as f:
        return Split(f["train"], f["val"], f["test"])
