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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

log = logging.getLogger("lottery")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
CHUNK = 256
Progress = Callable[[str, int, int], None]


def cache_root() -> Path:
    """$LOTTERY_CACHE, else ~/.cache/lottery-lab: decoded images and frozen-base features."""
    return Path(os.environ.get("LOTTERY_CACHE", Path.home() / ".cache" / "lottery-lab"))


def folder_files(data_dir: Path) -> tuple[list[Path], list[str]]:
    """Image files and their class names: one subfolder per class, or `class.N.jpg` names."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data.data_dir: folder {data_dir} not found. Point it at a folder "
                                f"with one subfolder per class, or files named like cat.1.jpg.")
    subdirs = sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if subdirs:
        files = [(f, d.name) for d in subdirs for f in sorted(d.iterdir())
                 if f.suffix.lower() in IMAGE_SUFFIXES]
    else:
        files = [(f, f.name.split(".")[0]) for f in sorted(data_dir.iterdir())
                 if f.suffix.lower() in IMAGE_SUFFIXES and "." in f.stem]
    if not files:
        raise ValueError(f"data.data_dir: {data_dir} holds no .jpg or .png images (expected one "
                         f"subfolder per class, or files named like cat.1.jpg).")
    classes = sorted({label for _, label in files})
    if len(classes) < 2:
        raise ValueError(f"data.data_dir: {data_dir} has a single class ({classes[0]}); "
                         f"IMP needs at least two.")
    return [f for f, _ in files], [label for _, label in files]


def fit_image(image: Image.Image, size: tuple[int, int], channels: int) -> np.ndarray:
    """Any PIL image (grayscale, RGBA, any size) as uint8 (H, W, C), bilinear-resized."""
    height, width = size
    image = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8).reshape(height, width, channels)


def decode(path: Path, size: tuple[int, int], channels: int) -> np.ndarray | str:
    """One image file at `size`, or the reason it could not be read."""
    try:
        with Image.open(path) as image:
            return fit_image(image, size, channels)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        return f"{path.name}: {exc}"


def _key(data_dir: Path, files: list[Path], size: tuple[int, int], channels: int) -> str:
    digest = hashlib.sha1(json.dumps([str(data_dir.resolve()), list(size), channels]).encode())
    for f in files:
        stat = f.stat()
        digest.update(f"{f.relative_to(data_dir)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
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
        raise ValueError(f"data.data_dir: none of the {len(files)} images could be read.")
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
    files, labels = folder_files(data_dir)
    cache = cache_root() / f"images-{_key(data_dir, files, size, channels)}"
    if not (cache / "meta.json").is_file():
        log.info("decoding %d images from %s into %s", len(files), data_dir, cache)
        _build(cache, files, labels, size, channels, progress)
    meta = json.loads((cache / "meta.json").read_text())
    if meta["skipped"]:
        log.warning("skipped %d unreadable image(s) in %s: %s", len(meta["skipped"]), data_dir,
                    "; ".join(meta["skipped"]))
    images = np.memmap(cache / "images.u8", dtype=np.uint8, mode="r",
                       shape=(meta["count"], *meta["shape"]))
    return images, np.array(meta["labels"], dtype=np.int64), meta["classes"]
