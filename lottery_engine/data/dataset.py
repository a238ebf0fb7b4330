"""Datasets: load a source into arrays, then make the seeded, stratified splits.

Images stay uint8 (H, W, C) all the way to the model, whose first layer rescales each batch: a float
copy of a large set is never made. The user's own arrays or table (user_data) may have rows of any
shape. A source is a function returning a `Pool`, named by its entry in config/data_sources.py;
new sources plug in there without touching the split logic.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split

from ..config.data_sources import DATA_SOURCES
from ..config.schema import DataConfig
from ..foundations import dotted
from . import image_folder, user_data
from .image_folder import Progress
from .keras_cache import keras_home


@dataclass
class Pool:
    """Everything a source yields: the pool the run splits, and the val and test parts where the
    source gives them whole (keras.datasets' official test split, a .npz file's x_val, x_test)."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def given(self) -> tuple[str, ...]:
        """The parts the source gives whole, so they are not split off the pool."""
        return tuple(part for part, y in (("val", self.y_val), ("test", self.y_test))
                     if y is not None)

    def arrays(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """The arrays that `part`'s split indices point into: the source's own part, else the
        pool."""
        x, y = {"val": (self.x_val, self.y_val), "test": (self.x_test, self.y_test)}.get(
            part, (None, None))
        return (self.x, self.y) if y is None else (x, y)


@dataclass
class Split:
    """Row indices for each part: into the pool, or into the part the source gives whole."""

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
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example: (H, W, C) for images, any rank for the user's arrays."""
        return tuple(self.x_train.shape[1:])


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


def load_bundled(cfg: DataConfig, progress: Progress | None) -> Pool:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    names = [str(c) for c in digits.target_names]
    return Pool(resize_images(images, cfg.image_size, cfg.channels),
                digits.target.astype(np.int64), names)


def load_folder(cfg: DataConfig, progress: Progress | None) -> Pool:
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


def load_keras(cfg: DataConfig, progress: Progress | None) -> Pool:
    """keras.datasets by name; the official test split stays the test split."""
    import keras

    _seed_keras_cache(cfg.name)
    try:
        (x, y), (x_test, y_test) = getattr(keras.datasets, cfg.name).load_data()
    except Exception as exc:  # noqa: BLE001 - any download failure means the same to the user
        debian = (f", or install Debian's package: apt-get install dataset-fashion-mnist (its "
                  f"files in {DEBIAN_FASHION_MNIST} are used automatically)"
                  if cfg.name == "fashion_mnist" else "")
        raise FileNotFoundError(
            f"data.name: could not load {cfg.name} through keras.datasets ({exc}). Either connect "
            f"to the network once so Keras can download it into "
            f"{keras_home() / 'datasets'}{debian}, or save the arrays you have as an .npz "
            f"(x_train, y_train, x_test, y_test; images as uint8 N×H×W×C) and set "
            f"data.source: arrays with data.path: that file.") from None
    names = [str(c) for c in range(int(y.max()) + 1)]
    if cfg.name == "fashion_mnist":
        names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                 "Sneaker", "Bag", "Ankle boot"]
    resize = lambda images: resize_images(images, cfg.image_size, cfg.channels)  # noqa: E731
    return Pool(resize(x), y.reshape(-1).astype(np.int64), names,
                resize(x_test), y_test.reshape(-1).astype(np.int64))


def load_user_file(cfg: DataConfig, progress: Progress | None) -> Pool:
    """A .npz (source arrays) or .csv (source csv) file: its val and test parts stay whole."""
    data = user_data.load(cfg)
    x, y = data.x, data.y
    return Pool(x["train"], y["train"], data.class_names, x.get("test"), y.get("test"),
                x.get("val"), y.get("val"))


def split_labels(y: np.ndarray, cfg: DataConfig, seed: int, given: tuple[str, ...] = ()) -> Split:
    """Stratified indices into the pool's labels `y` for the parts not `given` whole by the
    source, fixed by the seed; `limit_total` subsamples the pool first. A given part's indices
    are left empty here (make_split fills them). The parts keep the ratios of the config:

    - nothing given: train_split, val_split and the rest for test;
    - test given (keras.datasets, a file's x_test): train and val as train_split : val_split;
    - val given (a file's x_val): train and test as train_split : 1 - train_split - val_split;
    - both given: all of the pool trains.

    Labels are all it needs, so the validator runs it before any image is loaded."""
    indices = np.arange(len(y))
    if cfg.limit_total is not None and cfg.limit_total < len(indices):
        indices, _ = train_test_split(indices, train_size=cfg.limit_total,
                                      stratify=y, random_state=seed)
    parts = {"val": np.array([], dtype=np.int64), "test": np.array([], dtype=np.int64)}
    shares = {"val": cfg.val_split, "test": 1.0 - cfg.train_split - cfg.val_split}
    split_off = [part for part in parts if part not in given]
    if len(split_off) < 2:
        for part in split_off:  # at most one
            share = shares[part] / (cfg.train_split + shares[part])
            indices, rest = train_test_split(indices, test_size=share,
                                             stratify=y[indices], random_state=seed)
            parts[part] = np.sort(rest)
        return Split(np.sort(indices), **parts)
    train, rest = train_test_split(indices, train_size=cfg.train_split,
                                   stratify=y[indices], random_state=seed)
    val_share = cfg.val_split / (1.0 - cfg.train_split)
    val, test = train_test_split(rest, train_size=val_share,
                                 stratify=y[rest], random_state=seed)
    return Split(np.sort(train), np.sort(val), np.sort(test))


def make_split(pool: Pool, cfg: DataConfig, seed: int) -> Split:
    """The run's split of a loaded pool; a part the source gives whole is all of that part."""
    split = split_labels(pool.y, cfg, seed, pool.given)
    for part in pool.given:
        setattr(split, part, np.arange(len(pool.arrays(part)[1])))
    return split


def load_pool(cfg: DataConfig, progress: Progress | None = None) -> Pool:
    """The pool of the configured source, loaded by its entry's loader
    (config/data_sources.py)."""
    return dotted.function(DATA_SOURCES[cfg.source].loader)(cfg, progress)


def load(cfg: DataConfig, seed: int, split: Split | None = None,
         progress: Progress | None = None) -> Dataset:
    """Load the configured data; pass a saved `split` to restore a run's exact partition.

    Splits are gathered from the pool in its own dtype (a memmapped folder cache stays uint8 too),
    then made what the model gets (user_data.feature_array)."""
    pool = load_pool(cfg, progress)
    split = split or make_split(pool, cfg, seed)
    arrays = {}
    for part in ("train", "val", "test"):
        x, y = pool.arrays(part)
        rows = getattr(split, part)
        arrays |= {f"x_{part}": user_data.feature_array(gather(x, rows)), f"y_{part}": y[rows]}
    return Dataset(**arrays, class_names=pool.class_names, split=split)


def gather(images: np.ndarray, rows: np.ndarray, chunk: int = 256) -> np.ndarray:
    """images[rows] in memory. From a memmap, copy chunk by chunk and let the kernel drop the
    mapped pages after each, so a split costs its own size in RAM, not also the whole file's."""
    mapping = getattr(images, "_mmap", None)
    if mapping is None:
        return images[rows]
    out = np.empty((len(rows), *images.shape[1:]), dtype=images.dtype)
    row_bytes = images[0].nbytes
    base = images.offset % mmap.ALLOCATIONGRANULARITY  # where the array starts in the mapping
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        out[start:start + chunk] = images[part]
        first = (base + int(part.min()) * row_bytes) // mmap.PAGESIZE * mmap.PAGESIZE
        mapping.madvise(mmap.MADV_DONTNEED, first,
                        base + (int(part.max()) + 1) * row_bytes - first)
    return out


def save_split(split: Split, path: Path) -> None:
    np.savez(path, train=split.train, val=split.val, test=split.test)


def load_split(path: Path) -> Split:
    with np.load(path) as f:
        return Split(f["train"], f["val"], f["test"])
