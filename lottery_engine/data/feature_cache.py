"""The frozen-base feature cache (SPEC §8): each image's base output, computed once, kept on disk.

Stored as float32, not float16: float16 would halve the disk (25,000 × 8,192 values: 0.8 GB
instead of 0.4 GB) but would change the head's inputs by up to ~1e-3 relative, so masks and
accuracies would drift from training through the base; float32 keeps them the same. The key hashes
the extractor's weights and the exact images, so a different base, seed or image set never reuses
a stale file. Reloads are memory-mapped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import keras
import numpy as np

from .image_folder import Progress, cache_root

log = logging.getLogger("lottery")
BATCH = 64


def _key(extractor: keras.Model, images: np.ndarray) -> str:
    digest = hashlib.sha1(json.dumps([list(images.shape), keras.__version__]).encode())
    for weight in extractor.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    for start in range(0, len(images), 4096):
        digest.update(np.ascontiguousarray(images[start:start + 4096]).tobytes())
    return digest.hexdigest()[:20]


def cached(extractor: keras.Model, images: np.ndarray, progress: Progress | None = None,
           task: str = "caching base features") -> np.ndarray:
    """The extractor's float32 output for every image, from the cache or computed into it."""
    shape = (len(images), *extractor.output_shape[1:])
    path = cache_root() / f"features-{_key(extractor, images)}.f32"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(path.name + f".staging-{os.getpid()}")
        log.info("computing frozen-base features for %d images into %s", len(images), path)
        with open(staging, "wb") as out:
            for start in range(0, len(images), BATCH):
                batch = extractor.predict_on_batch(images[start:start + BATCH])
                out.write(np.asarray(batch, dtype=np.float32).tobytes())
                if progress:
                    progress(task, min(start + BATCH, len(images)), len(images))
        os.replace(staging, path)
    return np.memmap(path, dtype=np.float32, mode="r", shape=shape)
