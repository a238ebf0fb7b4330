"""Every round of a finished run exported and timed, for an experiment that asks (`export:` on an
arm): how accuracy trades against size and latency is read from these, round by round.

Each round is exported as `lottery export --round N --format F` would export it, but checked
and timed on the test split's first EXAMPLES examples, into RUN_DIR/export/rounds/rN/ and the
run's exports_by_round.json (export_records), never its exports.json: that holds the ticket's
exports, which the Run page shows. Round 0 is the dense network itself, so its records are the
dense baseline of every runtime (the dense LiteRT files included), timed in the same process as
the other rounds. A (round, format) already recorded is not exported again, so an interrupted
export resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

from ..config.load import ConfigError
from ..foundations import runfolder
from . import export_records

ROUNDS_DIR = "rounds"  # in RUN_DIR/export/
# test examples each round's export checks and times on: enough to check the compact model's
# logits and to time batches of 256, at a fifth of the whole Fashion-MNIST test split's cost (it
# is predicted six times per round); a round's accuracy comes from its own record (whole split)
EXAMPLES = 2000


def check_formats(formats: object, where: str) -> list[str]:
    """A list of export formats, each known and given once; one line naming `where` if not."""
    known = list(export_records.FORMATS)
    if (not isinstance(formats, list) or not formats or len(set(map(str, formats))) != len(formats)
            or any(f not in known for f in formats)):
        raise ConfigError(f"{where}: {formats!r} is not a list of distinct export formats; give "
                          f"some of [{', '.join(known)}], e.g. [compact, tflite, tflite-int8].")
    return [str(f) for f in formats]


def round_path(run_dir: Path, round_index: int, fmt: str) -> Path:
    """RUN_DIR/export/rounds/r<N>/<format>.<ext>."""
    return (Path(run_dir) / export_records.EXPORT_DIR / ROUNDS_DIR / f"r{round_index}"
            / f"{fmt}.{export_records.FORMATS[fmt]}")


def export_rounds(run_dir: Path, formats: list[str], repeats: int | None = None) -> list[dict]:
    """Export every finished round of the run's ticket series in `formats` (see the module's
    docstring), timing each `repeats` times (None: measure.REPEATS); returns the records made
    now. Imports TensorFlow only when there is something to export (experiment.py, which the
    dashboard imports, imports this module); the caller has set its threads."""
    done = export_records.read_by_round(run_dir)
    todo = {r["round"]: [f for f in formats if f not in done.get(r["round"], {})]
            for r in runfolder.read_rounds(run_dir)}
    todo = {round_index: missing for round_index, missing in todo.items() if missing}
    if not todo:
        return []
    from .exporter import Exporter
    from .measure import REPEATS

    made = []
    for round_index, missing in todo.items():
        exporter = Exporter(Path(run_dir), round_index, repeats or REPEATS, EXAMPLES)
        made += [exporter.run(fmt, round_path(run_dir, round_index, fmt), by_round=True)
                 for fmt in missing]
    return made
