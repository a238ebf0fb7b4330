"""The command line's progress: one status line on stderr while a run trains.

Shared by `lottery run` and the notebook API (`find_ticket`), which show the same line.
"""

from __future__ import annotations

import sys
import time

from ..foundations.events import IMP, Listener
from ..config.schema import Config


def bar(done: int, total: int, width: int = 30) -> str:
    """`[=====     ] 5/10`: a text progress bar."""
    filled = int(width * done / total)
    return f"[{'=' * filled}{' ' * (width - filled)}] {done}/{total}"


class ProgressBar(Listener):
    """One status line on stderr: round, epoch and a batch bar, redrawn at most ten times a second."""

    def __init__(self, cfg: Config, stream=None):
        # sys.stderr as it is now, not as it was when this module was imported: a notebook or a
        # test harness may have replaced (and since closed) the one of import time
        self.cfg, self.stream, self.last = cfg, stream or sys.stderr, 0.0
        self.round, self.series, self.sparsity = 0, IMP, 0.0

    def round_started(self, round_index, series, sparsity):
        self.round, self.series, self.sparsity = round_index, series, sparsity

    def batch_finished(self, round_index, epoch, batch, batches):
        now = time.monotonic()
        if not self.stream.isatty() or (now - self.last < 0.1 and batch != batches):
            return
        self.last = now
        self.stream.write(
            f"\rround {self.round}/{self.cfg.imp.num_rounds} {self.series:<13} "
            f"sparsity {100 * self.sparsity:5.1f}%  epoch {epoch + 1}/{self.cfg.train.epochs} "
            + bar(batch, batches))
        self.stream.flush()

    def work_progress(self, task, done, total):
        if self.stream.isatty() or done == total:
            end = "\n" if done == total else ""
            self.stream.write(f"\r{task:<20} {bar(done, total)}{end}")
            self.stream.flush()

    def round_finished(self, record):
        self.stream.write(
            f"\rround {record.round} {record.series:<13} sparsity "
            f"{100 * record.global_sparsity:5.1f}%  val acc {record.val_accuracy:.4f}  "
            f"test acc {record.test_accuracy:.4f}{' ' * 30}\n")
        self.stream.flush()
