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


README = "README.md"
WHAT = {  # what each file of a ticket zip holds, for its README
    runfolder.TICKET_MODEL: "the ticket: a plain Keras model (no custom objects; the pruned "
                            "weights are zeros), saved compiled as the run trained it",
    runfolder.TICKET_MASK: "which weights are pruned: one 0/1 array per pruned kernel (1 kept)",
    runfolder.TICKET_JSON: "the ticket's numbers: round, sparsity, accuracies, sizes",
    runfolder.CONFIG: "the config of the run that found it",
    runfolder.CLASSES: "the class names, in label order",
    export_records.EXPORTS_JSON: "what each export format measured (size, accuracy, speed)",
}
COMPACT = "the compact model: the ticket without the units that lost all their weights"


def readme(run_dir: Path, names: list[str]) -> str:
    """The zip's README.md: what the ticket is, each file in `names`, and how to use the model
    with plain Keras (it loads compiled, so `evaluate` needs no compile call)."""
    ticket = runfolder.read_json(Path(run_dir) / runfolder.TICKET_JSON, {})
    train = runfolder.frozen_config(run_dir).get("train", {})
    sparsity = 100 * ticket.get("global_sparsity", 0)
    lines = [f"# Winning ticket of {runfolder.run_name(run_dir)}", "",
             f"Round {ticket.get('round')} of the run: {sparsity:.1f}% of its prunable weights "
             f"are zero ({ticket.get('remaining_prunable', 0):,} left); val accuracy "
             f"{ticket.get('logged_val_accuracy', 0):.4f}, test accuracy "
             f"{ticket.get('test_accuracy', 0):.4f}. Its output: {ticket.get('output')}.", "",
             "## Files", ""]
    lines += [f"- `{name}`: {WHAT.get(name, COMPACT)}" for name in names]
    lines += ["", "## Use it", "",
              f"The model is saved compiled with the loss and accuracy metric the run trained "
              f"with and a fresh {train.get('optimizer', 'adam')} optimizer, so it evaluates "
              f"and trains on as it is:", "", "```python", "import keras", "",
              f'model = keras.saving.load_model("{runfolder.TICKET_MODEL}")',
              "loss, accuracy = model.evaluate(x, y)  # x as in your data, y integer labels",
              "```", ""]
    return "\n".join(lines)


def ticket_zip(run_dir: Path) -> bytes:
    """The winning ticket as one zip: model, mask, metrics and the config that made it; once it
    has been exported (`lottery export`), also its compact model and every format's record
    (exports.json), so what the zip ships says what it measured; and a README that says what
    each file is and how to load the model."""
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
        archive.writestr(README, readme(run_dir, names))
        for name in names:
            archive.write(run_dir / name, name)
    return buffer.getvalue()
