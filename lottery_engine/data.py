"""Datasets: load a source into uint8 images, then make the seeded, stratified splits.

Images stay uint8 (H, W, C) all the way to the model, whose first layer rescales each batch: a float
copy of a large set is never made. A source is a function returning a `Pool`; new sources (image
folders, keras.datasets) plug into `SOURCES` without touching the split logic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split

from .config import DataConfig
from .keras_cache import keras_home

log = logging.getLogger("lottery")


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
    height, width = size
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[1:] == (height, width, channels):
        return images
    out = np.empty((len(images), height, width, channels), dtype=np.uint8)
    for i, image in enumerate(images):
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        pil = pil.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
        out[i] = np.asarray(pil).reshape(height, width, channels)
    return out


def _bundled(cfg: DataConfig) -> Pool:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    names = [str(c) for c in digits.target_names]
    return Pool(resize_images(images, cfg.image_size, cfg.channels),
                digits.target.astype(np.int64), names)


IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def folder_files(data_dir: Path) -> tuple[list[Path], list[str]]:
    """Image files and their class names: one subfolder per class, or `class.N.jpg` names."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data.data_dir: folder {data_dir} not found. Point it at a folder "
                                f"with one subfolder per class, or files named like cat.1.jpg.")
    subdirs = sorted(p for p in data_dir.iterdir() if p.is_dir())
    if subdirs:
        files = [(f, d.name) for d in subdirs for f in sorted(d.iterdir())
                 if f.suffix.lower() in IMAGE_SUFFIXES]
    else:
        files = [(f, f.name.split(".")[0]) for f in sorted(data_dir.iterdir())
                 if f.suffix.lower() in IMAGE_SUFFIXES and "." in f.stem]
    if not files:
        raise ValueError(f"data.data_dir: {data_dir} holds no .jpg or .png images.")
    classes = sorted({label for _, label in files})
    if len(classes) < 2:
        raise ValueError(f"data.data_dir: {data_dir} has a single class ({classes[0]}); "
                         f"IMP needs at least two.")
    return [f for f, _ in files], [label for _, label in files]


def _folder(cfg: DataConfig) -> Pool:
    """Decode an image folder to uint8; unreadable files are skipped, counted and logged."""
    files, labels = folder_files(Path(cfg.data_dir))
    classes = sorted(set(labels))
    height, width = cfg.image_size
    images, targets, skipped = [], [], []
    for path, label in zip(files, labels):
        try:
            with Image.open(path) as image:
                image = image.convert("L" if cfg.channels == 1 else "RGB")
                image = image.resize((width, height), Image.BILINEAR)
                images.append(np.asarray(image).reshape(height, width, cfg.channels))
        except (OSError, ValueError) as exc:
            skipped.append(f"{path.name} ({exc})")
            continue
        targets.append(classes.index(label))
    if skipped:
        log.warning("skipped %d unreadable image(s): %s", len(skipped), "; ".join(skipped))
    return Pool(np.stack(images), np.array(targets, dtype=np.int64), classes)


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


def _keras(cfg: DataConfig) -> Pool:
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


SOURCES: dict[str, Callable[[DataConfig], Pool]] = {"bundled": _bundled, "folder": _folder,
                                                     "keras": _keras}


def make_split(pool: Pool, cfg: DataConfig, seed: int) -> Split:
    """Stratified train/val/test indices, fixed by the seed; `limit_total` subsamples first."""
    indices = np.arange(len(pool.y))
    if cfg.limit_total is not None and cfg.limit_total < len(indices):
        indices, _ = train_test_split(indices, train_size=cfg.limit_total,
                                      stratify=pool.y, random_state=seed)
    if pool.y_test is not None:
        test = np.arange(len(pool.y_test))
        val_share = cfg.val_split / (cfg.train_split + cfg.val_split)
        train, val = train_test_split(indices, test_size=val_share,
                                      stratify=pool.y[indices], random_state=seed)
        return Split(np.sort(train), np.sort(val), test)
    train, rest = train_test_split(indices, train_size=cfg.train_split,
                                   stratify=pool.y[indices], random_state=seed)
    val_share = cfg.val_split / (1.0 - cfg.train_split)
    val, test = train_test_split(rest, train_size=val_share,
                                 stratify=pool.y[rest], random_state=seed)
    return Split(np.sort(train), np.sort(val), np.sort(test))


def load_pool(cfg: DataConfig) -> Pool:
    try:
        source = SOURCES[cfg.source]
    except KeyError:
        raise ValueError(f"data.source: {cfg.source!r} is not available in this version; "
                         f"available: {', '.join(SOURCES)}.") from None
    return source(cfg)


def load(cfg: DataConfig, seed: int, split: Split | None = None) -> Dataset:
    """Load the configured data; pass a saved `split` to restore a run's exact partition."""
    pool = load_pool(cfg)
    split = split or make_split(pool, cfg, seed)
    x_test, y_test = (pool.x_test, pool.y_test) if pool.y_test is not None else (pool.x, pool.y)
    return Dataset(pool.x[split.train], pool.y[split.train], pool.x[split.val], pool.y[split.val],
                   x_test[split.test], y_test[split.test], pool.class_names, split)


def save_split(split: Split, path: Path) -> None:
    np.savez(path, train=split.train, val=split.val, test=split.test)


def load_split(path: Path) -> Split:
    with np.load(path) as f:
        return Split(f["train"], f["val"], f["test"])
