"""What a user downloads from a run: the ticket zip and the exported files it may hand out.

Importable without TensorFlow (the dashboard offers these); above runfolder and export_records.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from ..foundations import runfolder
from . import export_records


def exported_file(run_dir: Path, record: dict) -> Path | None:
    """The file an export record names, if that export succeeded and its file is in the run
    folder: one exported elsewhere (`lottery export --out`) is not the run's to hand out, and
    a record is data read from disk, never a path to follow out of the run."""
    run_dir = Path(run_dir).resolve()
    if record.get("status") != "ok" or not isinstance(record.get("file"), str):
        return None
    path = (run_dir / record["file"]).resolve()
    return path if path.is_relative_to(run_dir) and path.is_file() else None


def ticket_zip(run_dir: Path) -> bytes:
    """The winning ticket as one zip: model, mask, metrics and the config that made it; once it
    has been exported (`lottery export`), also its compact model and every format's record
    (exports.json), so what the zip ships says what it measured."""
    run_dir = Path(run_dir)
    names = [runfolder.TICKET_MODEL, runfolder.TICKET_MASK, runfolder.TICKET_JSON, runfolder.CONFIG]
    # runs from before class names were kept have no classes.json, unexported ones no records
    names += [name for name in (runfolder.CLASSES, export_records.EXPORTS_JSON)
              if (run_dir / name).is_file()]
    compact = export_records.read(run_dir).get("compact", {})
    path = exported_file(run_dir, compact)
    if path and compact.get("round") == runfolder.read_json(run_dir / runfolder.TICKET_JSON, {}).get("round"):
        names.append(str(path.relative_to(run_dir.resolve())))  # not another round's compact
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.write(run_dir / name, name)
    return buffer.getvalue()
