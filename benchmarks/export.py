"""What does exporting a ticket buy? Every `lottery export` format of a sparse ticket against the
dense masked ticket, measured in the same call: file size, latency per sample at batch 1 and 256
(one thread), test accuracy, and how many hidden units compaction removed.

    python benchmarks/export.py [--run RUN_DIR ...] [--repeats 25] [--quick]

Without --run, two tickets are made here by short IMP runs (configs/fashion_*.yaml with 20,000
Fashion-MNIST images, 2 epochs per round, 5 rounds at 50%: about 3% of the weights left; the bundled
digits when Fashion-MNIST is absent): LeNet-300-100 and the conv LeNet. The sparsest round of each
run is exported (with --run, too). TensorFlow runs on one thread, like LiteRT.

--quick: digits at 16x16, one epoch, two rounds at 80%, two repeats: the same code path in seconds,
for tests/test_benchmarks.py; its numbers mean nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402  # benchmarks/_common.py: the command line they share
from lottery_engine.foundations import quiet_import  # noqa: E402

quiet_import.tensorflow()

from lottery_engine import pipeline  # noqa: E402
from lottery_engine import preflight  # noqa: E402
from lottery_engine.data import dataset as data_lib  # noqa: E402
from lottery_engine.data.keras_cache import keras_home  # noqa: E402
from lottery_engine.export import export_records, measure, tflite_export  # noqa: E402
from lottery_engine.export import exporter as export  # noqa: E402
from lottery_engine.foundations import runfolder  # noqa: E402

ARCHS = ("lenet_300_100", "lenet")
RUN = ["imp.prune_rate=0.5", "imp.num_rounds=5", "imp.controls=[]", "train.epochs=2",
       "train.early_stopping=false", "data.limit_total=20000", "report.html=false",
       "report.markdown=false"]
DIGITS = ["data.source=bundled", "data.name=digits", "data.image_size=[16, 16]",
          "data.train_split=0.7", "data.val_split=0.2", "train.eval_every=null"]
QUICK = ["imp.prune_rate=0.8", "imp.num_rounds=2", "train.epochs=1", "data.limit_total=300"]


def _fashion_mnist_here() -> bool:
    cached = keras_home() / "datasets" / data_lib.KERAS_CACHE_DIRS["fashion_mnist"]
    return data_lib.DEBIAN_FASHION_MNIST.is_dir() or len(list(cached.glob("*-ubyte.gz"))) == 4


def make_run(arch: str, folder: Path, quick: bool) -> Path:
    """A short IMP run of `arch` down to a few percent of its weights."""
    digits = quick or not _fashion_mnist_here()
    overrides = [*RUN, *(DIGITS if digits else []), *(QUICK if quick else []),
                 f"run.name={arch}-{'digits' if digits else 'fashion_mnist'}"]
    cfg = preflight.load(ROOT / "configs" / f"fashion_{arch}.yaml", overrides)
    pipeline.execute(cfg, folder)
    return folder


def _sparsest(run_dir: Path) -> dict:
    return max(runfolder.read_rounds(run_dir), key=lambda r: r["round"])


def _row(record: dict) -> str:
    if record["status"] != "ok":
        return f"{record['format']:<12} failed: {record['error']}"
    ref, latency = record["reference"], record["latency_ms_per_sample"]
    dense = ref["latency_ms_per_sample"]
    cells = [
        f"{export_records.human_bytes(record['bytes']):>9} "
        f"{export_records.ratio(record['bytes'] / ref['bytes']):>6}",
        f"{record['parameters']['stored']:>9,} {record['parameters']['nonzero']:>8,}",
        *(f"{latency[key]:>8.4f} {export_records.ratio(dense[key] / latency[key]):>6}"
          for key in ("batch_1", "batch_256")),
        f"{100 * record['test_accuracy']:>6.2f}% {100 * record['test_accuracy_change']:+6.2f}",
    ]
    return f"{record['format']:<12} " + "   ".join(cells)


def _units(record: dict) -> str:
    """Hidden units removed by compaction, in all and per layer."""
    layers = record["compaction"]["layers"]
    before = sum(entry["units"][0] for entry in layers.values())
    parts = ", ".join(f"{name} {e['units'][0]}->{e['units'][1]} ({e['dropped']} dead, "
                      f"{e['folded']} constant)" for name, e in layers.items())
    return f"{record['compaction']['units_removed']} of {before} hidden units removed: {parts}"


def _against_dense_tflite(exporter: export.Exporter, sparse: dict) -> str:
    """The sparse float TFLite against a dense float TFLite of the same ticket (no sparsity
    encoding), both through LiteRT on one thread: what sparsity buys within one runtime."""
    if sparse["status"] != "ok":
        return "sparse tflite failed; no comparison with a dense TFLite"
    content = tflite_export.convert(exporter.ticket, None, sparse=False)
    dense, _ = measure.measure_tflite(content, exporter.x_test, exporter.data.y_test,
                                      exporter.logits, exporter.repeats)
    latency = sparse["latency_ms_per_sample"]
    speed = ", ".join(f"speed-up {export_records.ratio(dense.latency[key] / latency[key])} at "
                      f"{key.replace('_', ' ')}" for key in ("batch_1", "batch_256"))
    return (f"sparse tflite vs a dense float TFLite of the same ticket "
            f"({export_records.human_bytes(len(content))}): "
            f"{export_records.ratio(sparse['bytes'] / len(content))} the size (target <= 0.25x), "
            f"{speed} (target >= 1.5x at batch 1)")


def report(run_dir: Path, repeats: int) -> None:
    last = _sparsest(run_dir)
    label = f"{runfolder.run_name(run_dir)} r{last['round']}"
    exporter = export.Exporter(run_dir, last["round"], repeats)
    records = [exporter.run(fmt, export_records.default_path(run_dir, fmt))
               for fmt in export.FORMATS]
    left = last["remaining_prunable"] / last["total_prunable"]
    print(f"\n{label}: round {last['round']}, {100 * left:.1f}% of prunable weights left")
    print(f"{'format':<12} {'size':>9} {'x dense':>6}   {'stored':>9} "
          f"{'nonzero':>8}   {'b1 ms':>8} {'faster':>6}   {'b256 ms':>8} {'faster':>6}   "
          f"{'test acc':>7} {'points':>6}")
    for record in records:
        print(_row(record))
    compact = next(r for r in records if r["format"] == "compact")
    if compact["status"] == "ok":
        print(f"{label} compaction: {_units(compact)}")
    for record in records:
        print(f"{label} {record['summary']}")
    tflite = next(r for r in records if r["format"] == "tflite")
    print(f"{label} {_against_dense_tflite(exporter, tflite)}")


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--run", type=Path, action="append", default=[],
                        help="a finished run folder to export (repeatable)")
    parser.add_argument("--repeats", type=int, default=measure.REPEATS)
    args = _common.parse(parser, repeats=2)
    measure.limit_threads(1)
    print(f"one thread; median of {args.repeats} repeats at batch 1 and "
          f"{max(3, args.repeats // 5)} at batch 256; 'faster' is dense time / this time")
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.run or [make_run(arch, Path(tmp) / arch, args.quick) for arch in ARCHS]
        for run_dir in runs:
            report(run_dir, args.repeats)


if __name__ == "__main__":
    main()
