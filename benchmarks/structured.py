"""Does a channel ticket run faster than an unstructured ticket of the same accuracy? Both, and the
dense network they came from, exported (compact, float TFLite, int8 TFLite) and timed in one call:
file size and latency per sample at batch 1 and 256 on one thread, each against the dense network.

    python benchmarks/structured.py [--arch lenet|conv2] [--repeats 25] [--quick]

Two IMP runs of one seed are made here at `make structured`'s protocol
(configs/structured_<arch>.yaml: 4 rounds of 30% on Fashion-MNIST; the bundled digits when
Fashion-MNIST is absent): IMP-Refill (channels) and unstructured IMP. The channel ticket is the
refill run's fastest round within 1 point of dense validation accuracy (science/faster.py chooses
it, as the write-up does); the unstructured ticket is the weight run's round closest to it in
validation accuracy. Round 0 of the refill run is the dense network. Every model is timed
through export/measure.py (median of repeats after a warm-up); Keras speed-ups are the compact
model against the masked dense ticket timed in the same export, LiteRT ones against the dense
network's file of the same format, as in the write-up's "Tickets that run faster". The last
lines give the spread of the dense network timed thrice: the noise every ratio carries.

--quick: digits at 16x16, one epoch, two rounds at 50%, two repeats: the same code path in
seconds, for tests/test_benchmarks.py; its numbers mean nothing.
"""

from __future__ import annotations

import os
import statistics
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
from lottery_engine.export import export_records, measure  # noqa: E402
from lottery_engine.export import exporter as export  # noqa: E402
from lottery_engine.export.every_round import round_path  # noqa: E402
from lottery_engine.foundations import runfolder  # noqa: E402
from lottery_engine.science import faster  # noqa: E402

FORMATS = ("compact", "tflite", "tflite-int8")
ARMS = {"channel": ["imp.granularity=channel", "imp.refill=true"], "unstructured": []}
RUN = ["report.html=false", "report.markdown=false"]
DIGITS = ["data.source=bundled", "data.name=digits", "data.image_size=[16, 16]",
          "data.limit_total=null", "data.train_split=0.7", "data.val_split=0.2",
          "train.eval_every=null"]
QUICK = ["imp.prune_rate=0.5", "imp.num_rounds=2", "train.epochs=1", "data.limit_total=300"]


def _fashion_mnist_here() -> bool:
    cached = keras_home() / "datasets" / data_lib.KERAS_CACHE_DIRS["fashion_mnist"]
    return data_lib.DEBIAN_FASHION_MNIST.is_dir() or len(list(cached.glob("*-ubyte.gz"))) == 4


def make_run(arch: str, arm: str, folder: Path, quick: bool) -> Path:
    """One IMP run of `arch` at the arm's granularity, the structured experiment's protocol."""
    digits = quick or not _fashion_mnist_here()
    overrides = [*RUN, *ARMS[arm], *(DIGITS if digits else []), *(QUICK if quick else []),
                 f"run.name={arch}-{arm}"]
    pipeline.execute(preflight.load(ROOT / "configs" / f"structured_{arch}.yaml", overrides),
                     folder)
    return folder


def exported(run_dir: Path, round_index: int, repeats: int) -> dict[str, dict]:
    """The round exported in every format, by format (kept with the run's other rounds)."""
    exporter = export.Exporter(run_dir, round_index, repeats)
    return {fmt: exporter.run(fmt, round_path(run_dir, round_index, fmt), by_round=True)
            for fmt in FORMATS}


def _val(run_dir: Path, round_index: int) -> float:
    return runfolder.read_rounds(run_dir)[round_index].early_stop_val_accuracy


def choose(channel: Path, unstructured: Path) -> tuple[int, int]:
    """The channel ticket (faster.fastest over the refill run's exported rounds) and the
    unstructured round closest to it in validation accuracy (the sparser on a tie)."""
    arm = faster.points({0: channel})
    chosen = faster.fastest(arm)
    round_c = chosen.round if chosen else arm[-1].round  # none holds: the last, said below
    target = _val(channel, round_c)
    records = runfolder.read_rounds(unstructured)
    round_u = min(records[1:], key=lambda r: (abs(r.early_stop_val_accuracy - target),
                                              -r["round"]))["round"]
    return round_c, round_u


def _row(name: str, fmt: str, record: dict, ratios: dict[str, float]) -> str:
    if record["status"] != "ok":
        return f"{name:<13} {fmt:<12} failed: {record['error']}"
    cells = [f"{export_records.human_bytes(record['bytes']):>9} "
             f"{export_records.ratio(ratios.get(f'{fmt} size', float('nan'))):>6}"]
    cells += [f"{record['latency_ms_per_sample'][b]:>8.4f} "
              f"{export_records.ratio(ratios.get(f'{fmt} {b}', float('nan'))):>6}"
              for b in faster.BATCHES]
    cells.append(f"{100 * record['test_accuracy']:>6.2f}%")
    return f"{name:<13} {fmt:<12} " + "   ".join(cells)


def report(channel: Path, unstructured: Path, repeats: int) -> None:
    """Export and time the dense network and both tickets in this call, and print them."""
    # the channel run's rounds are all exported: faster.fastest chooses among measured rounds
    rounds = len(runfolder.read_rounds(channel))
    by_round = {r: exported(channel, r, repeats) for r in range(rounds)}
    round_c, round_u = choose(channel, unstructured)
    tickets = {"dense": (channel, 0, by_round[0]),
               "channel": (channel, round_c, by_round[round_c]),
               "unstructured": (unstructured, round_u, exported(unstructured, round_u, repeats))}
    for name, (run_dir, r, records) in tickets.items():
        record = runfolder.read_rounds(run_dir)[r]
        left = record["remaining_prunable"] / record["total_prunable"]
        units = (f", {100 * record['remaining_units'] / record['total_units']:.1f}% of the units"
                 if record.get("total_units") else "")
        print(f"{name} ticket: round {r}, {100 * left:.1f}% of the weights{units} left, "
              f"val acc {100 * _val(run_dir, r):.2f}%")
    print(f"{'ticket':<13} {'format':<12} {'size':>9} {'x dense':>6}   {'b1 ms':>8} "
          f"{'faster':>6}   {'b256 ms':>8} {'faster':>6}   {'test acc':>7}")
    for name, (_, _, records) in tickets.items():
        ratios = faster.ratios(records, by_round[0])
        for fmt, record in records.items():
            print(_row(name, fmt, record, ratios))
    dense_ms = [records["compact"]["reference"]["latency_ms_per_sample"]
                for _, _, records in tickets.values() if records["compact"]["status"] == "ok"]
    for batch in faster.BATCHES:
        times = [d[batch] for d in dense_ms]
        print(f"the masked dense network timed {len(times)} times in this call, batch "
              f"{batch.split('_')[1]}: median {statistics.median(times):.4f} ms/sample, spread "
              f"{100 * (max(times) / min(times) - 1):.0f}% (max/min - 1): the noise of a ratio")


def main() -> None:
    parser = _common.parser(__doc__)
    parser.add_argument("--arch", choices=["lenet", "conv2"], default="lenet")
    parser.add_argument("--repeats", type=int, default=measure.REPEATS)
    args = _common.parse(parser, repeats=2)
    measure.limit_threads(1)
    print(f"one thread; median of {args.repeats} repeats at batch 1 and "
          f"{max(3, args.repeats // 5)} at batch 256; 'faster' is dense time / this time, "
          f"'x dense' this file / the dense network's of the same format")
    with tempfile.TemporaryDirectory() as tmp:
        runs = {arm: make_run(args.arch, arm, Path(tmp) / arm, args.quick) for arm in ARMS}
        report(runs["channel"], runs["unstructured"], args.repeats)


if __name__ == "__main__":
    main()
