"""The event interface a run reports through: a CLI bar, a worker's status file, a log.

Kept free of TensorFlow so that listeners can live in processes that never train.
"""

from __future__ import annotations

from .round_record import RoundRecord

# the `series` of the ticket's own rounds (IMP); a control's series is the control's name
IMP = "imp"
# the `series` of a round whose ticket and controls train together as one stack: its batches
# stand for every series of the round, its epochs reported live are the ticket's
STACK = "ticket + controls"


class Listener:
    """Receives progress while a run goes; override what you need. Raising stops the run."""

    def round_started(self, round_index: int, series: str, sparsity: float) -> None: ...

    def batch_finished(self, round_index: int, epoch: int, batch: int, batches: int) -> None: ...

    def epoch_finished(self, round_index: int, epoch: int, logs: dict) -> None: ...

    def round_finished(self, record: RoundRecord) -> None: ...

    def phase_started(self, phase: str) -> None:
        """A step before the first batch: loading data, building the model, compiling."""

    def work_progress(self, task: str, done: int, total: int) -> None:
        """Long preparation work before training: decoding images, filling a feature cache."""


class RunCancelled(Exception):
    """Raised by a listener to stop a run at a batch boundary; finished rounds stay on disk."""
