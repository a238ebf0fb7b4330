"""The ticket an experiment arm ships and its compact export.

Chosen on validation: the sparsest round whose validation accuracy at early stop is within 1 point
of dense's (means over seeds), its test accuracy only reported; the write-up says what its compact
export (export/exporter.py) buys in size and batch-1 latency. Only `compact_export` may import
TensorFlow, and only when the run has no such export yet: the dashboard reads the write-up, which
imports this module.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from filelock import FileLock

from ..export import export_records
from .over_seeds import Cell

HOLD_POINTS = 0.01  # "tickets hold" while within 1 point of dense
EXPORT_LOCK = ".write-up.lock"  # in RUN_DIR/export/: one write-up exports a run's round at a time


def to_ship(imp: list[Cell]) -> Cell | None:
    """The sparsest pruning round whose ticket is within 1 point of dense in validation accuracy
    at early stop (means over seeds); None if no round is. Validation, not test: a ticket chosen
    on the test split would make the test accuracy reported for it optimistic."""
    dense = statistics.fmean(imp[0].val_accuracy)
    held = [c for c in imp[1:] if statistics.fmean(c.val_accuracy) >= dense - HOLD_POINTS]
    return held[-1] if held else None


def compact_export(folder: Path, round_index: int) -> dict:
    """The run's compact export record of `round_index`: its exports.json's (or, for an arm that
    exports every round, exports_by_round.json's) when that holds an ok one, else made now as
    `lottery export --format compact --round N` makes it (kept there, so remaking the write-up
    reuses it, and shown in the run's report). Made under a lock in the run's export folder: the
    worker's write-up and `lottery experiment`'s run at once and would write one file together;
    the second finds the first's record."""
    def recorded() -> dict | None:
        for record in (export_records.read(folder).get("compact", {}),
                       export_records.read_by_round(folder).get(round_index, {}).get("compact",
                                                                                      {})):
            if record.get("status") == "ok" and record.get("round") == round_index:
                return record
        return None

    if found := recorded():  # no lock needed: the run's folder may be read-only
        return found
    (folder / export_records.EXPORT_DIR).mkdir(exist_ok=True)
    with FileLock(str(folder / export_records.EXPORT_DIR / EXPORT_LOCK)):
        if found := recorded():
            return found
        # TensorFlow: paid by the process writing the write-up
        from ..export import exporter as export
        from ..export import measure
        from ..report import page as report

        measure.limit_threads(1)  # as `lottery export` times; a no-op once TensorFlow has run
        [record] = export.export(folder, ["compact"], round_index)
        report.write(folder)  # the run's report shows its exports, as after `lottery export`
        return record
