"""Image folders: list, decode once to uint8, cache on disk, memory-map on reload.

The cache is a raw uint8 file (N, H, W, C) written sequentially chunk by chunk, so decoding 25,000
images never holds them all in memory, and a reload is an `np.memmap` (no copy, no decode). Its key
covers the folder, every file's name, size and mtime, the image size and channels: change any of
them and it is rebuilt. Unreadable files are skipped, counted, and named in the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..config.schema import ConfigError

log = logging.getLogger("lottery")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
CHUNK = 256
MAX_PIXELS = Image.MAX_IMAGE_PIXELS  # 89,478,485: PIL only warns up to twice that; we refuse
# PIL warns when it opens an image over the limit; decode() refuses such images itself
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
Progress = Callable[[str, int, int], None]


def cache_root() -> Path:
    """$LOTTERY_CACHE, else ~/.cache/lottery-lab: decoded images and frozen-base features."""
    return Path(os.environ.get("LOTTERY_CACHE", Path.home() / ".cache" / "lottery-lab"))


@dataclass
class Listing:
    """An image folder's usable files with their class labels, and every entry left out, named
    with the reason (symlink loops, unreadable entries, non-image files, stray files)."""

    files: list[Path]
    labels: list[str]
    skipped: list[str]

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    @property
    def label_indices(self) -> list[int]:
        index = {name: i for i, name in enumerate(self.classes)}
        return [index[label] for label in self.labels]


def _entries(folder: Path, skipped: list[str]) -> list[tuple[Path, bool]]:
    """(path, is_dir) of the visible entries of `folder`, each stat-ed once; an entry that cannot
    be (a symlink loop, a dangling link, no permission) is skipped and named."""
    try:
        names = sorted(folder.iterdir())
    except OSError as exc:
        raise ConfigError(f"data.data_dir: cannot read {folder} ({exc.strerror or exc}).") from None
    out = []
    for path in names:
        if path.name.startswith("."):
            continue
        try:
            out.append((path, stat.S_ISDIR(path.stat().st_mode)))
        except OSError as exc:
            skipped.append(f"{path.relative_to(folder.parent)}: {exc.strerror or exc}")
    return out


def _is_image(path: Path, skipped: list[str], root: Path) -> bool:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    skipped.append(f"{path.relative_to(root)}: not a .jpg, .jpeg or .png file")
    return False


def list_folder(data_dir: Path) -> Listing:
    """Image files and their class names: one subfolder per class, or `class.N.jpg` names."""
    hint = "one subfolder per class, or files named like cat.1.jpg"
    if not data_dir.exists():
        raise ConfigError(f"data.data_dir: folder {data_dir} not found. Point it at a folder "
                          f"with {hint}.")
    if not data_dir.is_dir():
        raise ConfigError(f"data.data_dir: {data_dir} is not a folder. Point it at a folder "
                          f"with {hint}.")
    skipped: list[str] = []
    entries = _entries(data_dir, skipped)
    subdirs = [path for path, is_dir in entries if is_dir]
    files: list[tuple[Path, str]] = []
    if subdirs:
        for path, is_dir in entries:
            if not is_dir:
                skipped.append(f"{path.name}: not inside a class subfolder")
        for folder in subdirs:
            files += [(path, folder.name) for path, is_dir in _entries(folder, skipped)
                      if not is_dir and _is_image(path, skipped, data_dir)]
    else:
        for path, _ in entries:
            if not _is_image(path, skipped, data_dir):
                continue
            if "." in path.stem:
                files.append((path, path.name.split(".")[0]))
            else:
                skipped.append(f"{path.name}: no class prefix (expected a name like cat.1.jpg)")
    if not files:
        raise ConfigError(f"data.data_dir: {data_dir} holds no .jpg or .png images (expected "
                          f"{hint}).")
    listing = Listing([f for f, _ in files], [label for _, label in files], skipped)
    if len(listing.classes) < 2:
        raise ConfigError(f"data.data_dir: {data_dir} has a single class "
                          f"({listing.classes[0]}); IMP needs at least two.")
    return listing


def fit_image(image: Image.Image, size: tuple[int, int], channels: int) -> np.ndarray:
    """Any PIL image (grayscale, RGBA, any size) as uint8 (H, W, C), bilinear-resized."""
    height, width = size
    image = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8).reshape(height, width, channels)


def decode(path: Path, size: tuple[int, int], channels: int) -> np.ndarray | str:
    """One image file at `size`, or the reason it could not be read (a decompression bomb, over
    MAX_PIXELS, is refused before its pixels are decoded)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                return (f"{path.name}: {width}x{height} is {width * height:,} pixels, over the "
                        f"limit of {MAX_PIXELS:,} (PIL's decompression-bomb limit)")
            return fit_image(image, size, channels)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"{path.name}: {exc}"


def _key(data_dir: Path, files: list[Path], size: tuple[int, int], channels: int) -> str:
    digest = hashlib.sha1(json.dumps([str(data_dir.resolve()), list(size), channels]).encode())
    for f in files:
        info = f.stat()
        digest.update(f"{f.relative_to(data_dir)}|{info.st_size}|{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _build(cache: Path, files: list[Path], labels: list[str], size: tuple[int, int],
           channels: int, progress: Progress | None) -> None:
    """Decode every file in parallel, chunk by chunk, into cache/images.u8 and meta.json."""
    staging = cache.with_name(cache.name + f".staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    kept, skipped = [], []
    with open(staging / "images.u8", "wb") as out, \
            ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for start in range(0, len(files), CHUNK):
            chunk = files[start:start + CHUNK]
            for i, result in enumerate(pool.map(lambda f: decode(f, size, channels), chunk)):
                if isinstance(result, str):
                    skipped.append(result)
                else:
                    out.write(result.tobytes())
                    kept.append(labels[start + i])
            if progress:
                progress("decoding images", min(start + CHUNK, len(files)), len(files))
    if not kept:
        raise ConfigError(f"data.data_dir: none of the {len(files)} images could be read "
                          f"({'; '.join(skipped[:3])}).")
    classes = sorted(set(labels))
    meta = {"count": len(kept), "shape": [*size, channels], "classes": classes,
            "labels": [classes.index(label) for label in kept], "skipped": skipped}
    (staging / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(staging, cache)


def load(data_dir: Path, size: tuple[int, int], channels: int,
         progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (a read-only memmap, uint8), labels and class names of a folder, via the cache."""
    data_dir = Path(data_dir)
    listing = list_folder(data_dir)
    files = listing.files
    cache = cache_root() / f"images-{_key(data_dir, files, size, channels)}"
    if not (cache / "meta.json").is_file():
        log.info("decoding %d images from %s into %s", len(files), data_dir, cache)
        _build(cache, files, listing.labels, size, channels, progress)
    meta = json.loads((cache / "meta.json").read_text())
    skipped = listing.skipped + meta["skipped"]
    if skipped:
        log.warning("skipped %d file(s) in %s: %s", len(skipped), data_dir, "; ".join(skipped))
    images = np.memmap(cache / "images.u8", dtype=np.uint8, mode="r",
                       shape=(meta["count"], *meta["shape"]))
    return images, np.array(meta["labels"], dtype=np.int64), meta["classes"]
