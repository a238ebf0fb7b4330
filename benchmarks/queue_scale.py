"""Numbers for docs/SCALE.md: what one dispatcher pays per job as a cluster grows.

    python benchmarks/queue_scale.py [--jobs 100 1000] [--vgg-size 128] [--quick]

- The queue home's lock: the time of one heartbeat and one claim (every status.json is read under
  the lock) with N jobs in the home, on this machine's disk.
- Streaming volume: the bytes a Ray task sends back per pruning round (the round's weights file,
  the masks of the ticket and two controls, the record), for LeNet-300-100 and VGG16 at 128x128
  with a frozen base (built without downloading weights; file sizes do not depend on the values).

--quick: 10 and 50 jobs, VGG16 at 32x32: the same code path in seconds, for
tests/test_benchmarks.py; its numbers are not the ones of docs/SCALE.md.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402  # benchmarks/_common.py: the command line they share
from jobs import queue  # noqa: E402
from lottery_engine.config import load as config_lib  # noqa: E402

JOB = """
run: {name: scale, seed: 0, device: cpu}
data: {source: bundled, name: digits, image_size: [8, 8], channels: 1}
train: {arch: lenet, epochs: 1}
"""


def lock_costs(n: int, work: Path) -> tuple[float, float]:
    """Median ms of a heartbeat and of a claim (nothing claimable but the last job) among n."""
    home = work / f"home-{n}"
    home.mkdir()
    ids = [queue.submit(JOB, home) for _ in range(n)]
    for job_id in ids[:-1]:
        queue.update(job_id, home, state=queue.DONE)
    claimed = queue.claim("bench", os.getpid(), home)
    beats, claims = [], []
    for _ in range(20):
        t = time.perf_counter()
        queue.heartbeat(claimed, home, "bench", {"round": 1})
        beats.append(time.perf_counter() - t)
        t = time.perf_counter()
        queue.claim("other", os.getpid(), home)  # finds nothing: reads every status
        claims.append(time.perf_counter() - t)
    return 1000 * statistics.median(beats), 1000 * statistics.median(claims)


def round_bytes(arch: str, size: int, channels: int, classes: int, work: Path) -> dict[str, int]:
    """Bytes of what one pruning round adds to a run folder (ticket weights, three mask files)."""
    import numpy as np

    from lottery_engine.foundations import quiet_import

    quiet_import.tensorflow()
    from lottery_engine.pruning import masks, prunable
    from lottery_engine.models import builders as models

    cfg = config_lib.loads(f"""
run: {{name: {arch}, seed: 0, device: cpu}}
data: {{source: bundled, name: digits, image_size: [{size}, {size}], channels: {channels}}}
train: {{arch: {arch}, weights: none, epochs: 1}}
""")
    model = models.build(cfg.train, (size, size, channels), classes)
    manager = masks.MaskManager(model, prunable.select(model, cfg.imp.prunable_layers))
    weights, mask = work / f"{arch}.weights.h5", work / f"{arch}.npz"
    model.save_weights(weights)
    manager.save(mask)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    return {"weights": weights.stat().st_size, "masks": 3 * mask.stat().st_size,
            "params": model.count_params(), "trainable": trainable}


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--vgg-size", type=int, default=128, help="VGG16's image side")
    args = _common.parse(parser, jobs=[10, 50], vgg_size=32)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in args.jobs:
            beat, claim = lock_costs(n, work)
            print(f"{n:5d} jobs in the home: heartbeat {beat:6.2f} ms, claim {claim:7.2f} ms "
                  f"(median of 20)")
        for arch, size, channels in (("lenet_300_100", 28, 1), ("vgg16", args.vgg_size, 3)):
            b = round_bytes(arch, size, channels, 2, work)
            print(f"{arch} at {size}x{size}: {b['params']:,} parameters ({b['trainable']:,} "
                  f"trainable); per round {b['weights'] / 1e6:.1f} MB of weights + "
                  f"{b['masks'] / 1e6:.1f} MB of masks (ticket and two controls)")


if __name__ == "__main__":
    main()
