"""Dogs-vs-Cats scale: 25,000 JPEGs at 128x128, decoded once, cached, memory-mapped.

Generates the flat cat/dog folder in a temp dir, then in fresh processes measures
  first load:  decode + write the uint8 cache + gather the seeded train/val/test splits;
  cached load: memory-map the cache + gather the same splits.
Prints seconds and peak RSS of each and the speed-up. Targets: peak RSS <= 1.5 GB for both,
cached load >= 5x faster than the first.

    python benchmarks/data_scale.py [--images 25000] [--size 128] [--quick]

--quick: 200 images at 32x32, the same code path in seconds, for tests/test_benchmarks.py; its
numbers mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

import _common  # benchmarks/_common.py: the command line they share

LOAD = """
import json, resource, sys, time
from lottery_engine import preflight
from lottery_engine.data import dataset
cfg = preflight.from_dict({"data": {"source": "folder", "data_dir": sys.argv[1],
                                    "image_size": [int(sys.argv[2])] * 2, "channels": 3}})
start = time.perf_counter()
ds = dataset.load(cfg.data, seed=0)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024, "train": list(ds.x_train.shape),
    "bytes": int(ds.x_train.nbytes + ds.x_val.nbytes + ds.x_test.nbytes)}))
"""


def generate(folder: Path, count: int, size: int) -> None:
    """Photos they are not, but JPEGs of the real size and layout, with per-image content."""
    def one(i: int) -> None:
        rng = np.random.default_rng(i)
        label = "cat" if i % 2 else "dog"
        small = rng.integers(0, 255, size=(size // 8, size // 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((size, size), Image.BILINEAR)
        image.save(folder / f"{label}.{i // 2}.jpg", quality=85)

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(one, range(count)))


def measure(folder: Path, size: int, cache: Path) -> dict:
    env = {**os.environ, "LOTTERY_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", LOAD, str(folder), str(size)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--images", type=int, default=25_000)
    parser.add_argument("--size", type=int, default=128)
    args = _common.parse(parser, images=200, size=32)
    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp) / "train", Path(tmp) / "cache"
        folder.mkdir()
        start = time.perf_counter()
        generate(folder, args.images, args.size)
        print(f"generated {args.images:,} JPEGs at {args.size}x{args.size} in "
              f"{time.perf_counter() - start:.0f} s")
        first = measure(folder, args.size, cache)
        cached = measure(folder, args.size, cache)
    print(f"splits in memory: {first['bytes'] / 2**30:.2f} GiB uint8 (train {first['train']})")
    for name, result in (("first load (decode + cache)", first), ("cached load (memmap)", cached)):
        print(f"  {name:<29} {result['seconds']:7.1f} s   peak RSS "
              f"{result['peak_rss_mb'] / 1024:.2f} GB   (target <= 1.5 GB)")
    print(f"  cached load is {first['seconds'] / cached['seconds']:.1f}x faster (target >= 5x)")


if __name__ == "__main__":
    main()
