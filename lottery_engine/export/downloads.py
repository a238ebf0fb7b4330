"""What a user downloads from a run: the ticket zip and the exported files it may hand out.

Importable without TensorFlow (the dashboard offers these); above runfolder and export_records.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import yaml

from ..foundations import runfolder
from . import export_records

MODEL_NAME = "model_name.json"  # the user's name of the model file a job copied in by its hash


def exported_file(run_dir: Path, record: dict) -> Path | None:
    """The file an export record names, if that export succeeded and its file is in the run
    folder: one exported elsewhere (`lottery export --out`) is not the run's to hand out, and
    a record is data read from disk, never a path to follow out of the run."""
    run_dir = Path(run_dir).resolve()
    if record.get("status") != "ok" or not isinstance(record.get("file"), str):
        return None
    path = (run_dir / record["file"]).resolve()
    return path if path.is_relative_to(run_dir) and path.is_file() else None


def keep_model_name(folder: Path, model_file: str | None) -> None:
    """Record the name of the user's model file before `queue.submit` copies it into the job
    folder `folder` under its content hash, so that downloads give it back by its own name."""
    if model_file:
        runfolder.write_json(Path(folder) / MODEL_NAME, Path(model_file).name)


def source_files(run_dir: Path) -> dict[str, str]:
    """The user's names of the files a run read ({} for a built-in network and dataset):
    `train.model_file` (the stored copy's name where no name was kept) and `data.path`."""
    raw = runfolder.read_frozen_config(run_dir)
    model, data = (raw.get("train") or {}).get("model_file"), (raw.get("data") or {}).get("path")
    names = {}
    if isinstance(model, str) and model:
        kept = runfolder.read_json(Path(run_dir) / MODEL_NAME, None)
        names["train.model_file"] = Path(kept if isinstance(kept, str) and kept else model).name
    if isinstance(data, str) and data:
        names["data.path"] = Path(data).name
    return names


def rerun_config(run_dir: Path) -> str:
    """The run's config as a user reruns it from the unzipped ticket folder (`lottery run
    --config config.yaml`): its model and data files by their own bare names (the model in the
    zip, the data beside it), no folder of the server it ran on."""
    raw = runfolder.read_frozen_config(run_dir)
    names = source_files(run_dir)
    if "train.model_file" in names:
        raw["train"]["model_file"] = names["train.model_file"]
    if "data.path" in names:
        raw["data"]["path"] = names["data.path"]
        raw["data"].pop("name", None)  # a built-in dataset's name: not what ran
    for section, key in (("run", "artifacts_dir"), ("imp", "results_dir")):
        if isinstance(raw.get(section), dict):
            raw[section][key] = None  # where the server kept its runs
    return yaml.safe_dump(raw, sort_keys=False)


README = "README.md"
WHAT = {  # what each file of a ticket zip holds, for its README
    runfolder.TICKET_MODEL: "the ticket: a plain Keras model (no custom objects; the pruned "
                            "weights are zeros), saved compiled as the run trained it",
    runfolder.TICKET_MASK: "which weights are pruned: one 0/1 array per pruned kernel (1 kept)",
    runfolder.TICKET_JSON: "the ticket's numbers: round, sparsity, accuracies, sizes",
    runfolder.CONFIG: "the config that ran: `lottery run --config config.yaml` in this folder "
                      "reruns it",
    runfolder.CLASSES: "the class names, in label order",
    export_records.EXPORTS_JSON: "what each export format measured (size, accuracy, speed)",
}
COMPACT = "the compact model: the ticket without the units that lost all their weights"


def readme(run_dir: Path, names: list[str]) -> str:
    """The zip's README.md: what the ticket is, each file in `names`, and how to use the model
    with plain Keras (it loads compiled, so `evaluate` needs no compile call)."""
    ticket = runfolder.read_json(Path(run_dir) / runfolder.TICKET_JSON, {})
    train = runfolder.read_frozen_config(run_dir).get("train", {})
    sparsity = 100 * ticket.get("global_sparsity", 0)
    lines = [f"# Winning ticket of {runfolder.run_name(run_dir)}", "",
             f"Round {ticket.get('round')} of the run: {sparsity:.1f}% of its prunable weights "
             f"are zero ({ticket.get('remaining_prunable', 0):,} left); val accuracy "
             f"{ticket.get('logged_val_accuracy', 0):.4f}, test accuracy "
             f"{ticket.get('test_accuracy', 0):.4f}. Its output: {ticket.get('output')}.", "",
             "## Files", ""]
    sources = source_files(run_dir)
    what = {**WHAT, sources.get("train.model_file"): "your model as the run was given it"}
    lines += [f"- `{name}`: {what.get(name, COMPACT)}" for name in names]
    if "data.path" in sources:
        lines += ["", f"To rerun it, put your data file `{sources['data.path']}` beside "
                      f"`{runfolder.CONFIG}`."]
    lines += ["", "## Use it", "",
              f"The model is saved compiled with the loss and accuracy metric the run trained "
              f"with and a fresh {train.get('optimizer', 'adam')} optimizer, so it evaluates "
              f"and trains on as it is:", "", "```python", "import keras", "",
              f'model = keras.saving.load_model("{runfolder.TICKET_MODEL}")',
              "loss, accuracy = model.evaluate(x, y)  # x as in your data, y integer labels",
              "```", ""]
    return "\n".join(lines)


def ticket_zip(run_dir: Path) -> bytes:
    """The winning ticket as one zip: model, mask, metrics and the config that made it (as
    `rerun_config` gives it, with the user's model beside it under its own name); once it has
    been exported (`lottery export`), also its compact model and every format's record
    (exports.json), so what the zip ships says what it measured; and a README that says what
    each file is and how to load the model."""
    run_dir = Path(run_dir)
    names = [runfolder.TICKET_MODEL, runfolder.TICKET_MASK, runfolder.TICKET_JSON]
    # runs from before class names were kept have no classes.json, unexported ones no records
    names += [name for name in (runfolder.CLASSES, export_records.EXPORTS_JSON)
              if (run_dir / name).is_file()]
    files = {name: run_dir / name for name in names}
    compact = export_records.read(run_dir).get("compact", {})
    path = exported_file(run_dir, compact)
    if path and compact.get("round") == runfolder.read_json(run_dir / runfolder.TICKET_JSON, {}).get("round"):
        files[str(path.relative_to(run_dir.resolve()))] = path  # not another round's compact
    stored = (runfolder.read_frozen_config(run_dir).get("train") or {}).get("model_file")
    if isinstance(stored, str) and (run_dir / Path(stored).name).is_file():  # pinned inside
        files[source_files(run_dir)["train.model_file"]] = run_dir / Path(stored).name
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(README, readme(run_dir, [*files, runfolder.CONFIG]))
        archive.writestr(runfolder.CONFIG, rerun_config(run_dir))
        for name, source in files.items():
            archive.write(source, name)
    return buffer.getvalue()
