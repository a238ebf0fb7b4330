"""The `lottery` command line: run IMP, rebuild a ticket or a report, and drive the job queue."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from . import config as config_lib  # noqa: E402
from . import runfolder  # noqa: E402
from .events import Listener  # noqa: E402


class ProgressBar(Listener):
    """One status line on stderr: round, epoch and a batch bar, redrawn at most ten times a second."""

    def __init__(self, cfg: config_lib.Config, stream=sys.stderr):
        self.cfg, self.stream, self.last = cfg, stream, 0.0
        self.round, self.series, self.sparsity = 0, "imp", 0.0

    def round_started(self, round_index, series, sparsity):
        self.round, self.series, self.sparsity = round_index, series, sparsity

    def batch_finished(self, round_index, epoch, batch, batches):
        now = time.monotonic()
        if not self.stream.isatty() or (now - self.last < 0.1 and batch != batches):
            return
        self.last = now
        filled = int(30 * batch / batches)
        self.stream.write(
            f"\rround {self.round}/{self.cfg.imp.num_rounds} {self.series:<13} "
            f"sparsity {100 * self.sparsity:5.1f}%  epoch {epoch + 1}/{self.cfg.train.epochs} "
            f"[{'=' * filled}{' ' * (30 - filled)}] {batch}/{batches}")
        self.stream.flush()

    def round_finished(self, record):
        self.stream.write(
            f"\rround {record['round']} {record['series']:<13} sparsity "
            f"{100 * record['global_sparsity']:5.1f}%  val acc {record['val_accuracy']:.4f}  "
            f"test acc {record['test_accuracy']:.4f}{' ' * 30}\n")
        self.stream.flush()


def _cmd_run(args: argparse.Namespace) -> int:
    cfg = config_lib.load(args.config, args.set)
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    if runfolder.is_complete(out):
        raise config_lib.ConfigError(f"--out {out}: holds a finished run; choose another folder.")
    from . import pipeline

    summary = pipeline.execute(cfg, out, ProgressBar(cfg))
    ticket = summary["ticket"]
    if ticket:
        print(f"winning ticket: round {ticket['round']}, sparsity "
              f"{100 * ticket['global_sparsity']:.1f}%, val accuracy "
              f"{ticket['reloaded_val_accuracy']:.4f} (reproduced from the saved model), "
              f"test accuracy {ticket['test_accuracy']:.4f}")
    print(f"run folder: {out}")
    return 0


def _cmd_ticket(args: argparse.Namespace) -> int:
    from . import ticket

    summary = ticket.make(Path(args.run_dir))
    print(f"round {summary['round']}: val accuracy {summary['reloaded_val_accuracy']:.6f} "
          f"(logged {summary['logged_val_accuracy']:.6f}); dense {summary['dense_bytes']:,} B, "
          f"compressed {summary['compressed_bytes']:,} B")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from . import report

    run_dir = Path(args.run_dir)
    if not runfolder.read_rounds(run_dir):
        raise FileNotFoundError(f"{run_dir / runfolder.ROUNDS}: no finished rounds to report.")
    report.write(run_dir)
    print(f"wrote {run_dir / runfolder.REPORT_HTML} and {run_dir / runfolder.REPORT_MD}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lottery", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run IMP from a YAML config",
                         description="Run Iterative Magnitude Pruning from a YAML config.")
    run.add_argument("--config", required=True, help="YAML config, e.g. configs/quickstart.yaml")
    run.add_argument("--out", help="run folder (default runs/<name>-<time>); an unfinished one "
                                   "is resumed after its last finished round")
    run.add_argument("--set", action="append", default=[], metavar="KEY.PATH=VALUE",
                     help="override a config value, e.g. --set imp.prune_rate=0.3 (repeatable)")
    run.set_defaults(func=_cmd_run)

    ticket = sub.add_parser("ticket", help="save and verify the winning ticket of a run",
                            description="Pick the best pruned round, save it, re-evaluate it.")
    ticket.add_argument("run_dir")
    ticket.set_defaults(func=_cmd_ticket)

    report = sub.add_parser("report", help="write the HTML report and Markdown table of a run",
                            description="Write report.html and rounds.md into a run folder.")
    report.add_argument("run_dir")
    report.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (config_lib.ConfigError, FileNotFoundError, RuntimeError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
