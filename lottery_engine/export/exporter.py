"""`lottery export`: a ticket you can ship, and what shipping it buys, measured.

A ticket is a dense `.keras` file that is mostly zeros: no smaller and no faster than the network it
came from. Four formats, each written to a file and recorded in `RUN_DIR/exports.json`:

- `keras`: the masked dense model, as ticket.py makes it: the reference every other format is
  measured against.
- `compact`: a smaller dense Keras model without the ticket's dead units, its constant units folded
  into the next layer's bias (compact.py says what goes and where); its logits (the output layer's
  pre-activation, before softmax or sigmoid squash differences) must equal the ticket's to 1e-5 on
  the test split, or it is not exported.
- `tflite`: float32 TFLite of the compact model, weights sparse-encoded.
- `tflite-int8`: full-integer TFLite of the compact model, calibrated on examples of the run's own
  training split, sparse where the runtime can run it (tflite_export.py).

Every record holds the file's size, its parameters (stored and nonzero), its test accuracy through
its own runtime (Keras, or the LiteRT interpreter) and the change from the ticket's, its largest
output difference from the ticket, and its latency per sample at batch 1 and 256 (median of
repeats, TFLite on one thread) and the FLOPs of the model it holds (the ticket's dense FLOPs, the
compact model's own: what a dense runtime computes), beside the same numbers for the dense ticket
measured in the same call: a ratio between two calls would mostly measure the machine. A format
that cannot be made fails alone, with its one-line reason recorded; the others still export.

`--out` names the file of one format. It may not lie inside a run folder (the one exported, or any
folder holding a run's config.yaml and split.npz) other than in its `export/` subfolder, so an
export cannot replace a run's records or its winning ticket; the path is resolved first (symlinks,
`..`), and an existing file is replaced only with `--force`.
"""

from __future__ import annotations

import logging
import time
from functools import cached_property
from pathlib import Path

import keras
import numpy as np

from ..config import load as config_lib
from ..data import dataset as data_lib
from ..evaluation.flops import model_flops
from ..foundations import faults, keras_internals, runfolder
from ..foundations.faults import UserError
from ..foundations.round_record import RoundRecord
from ..lottery import ticket
from ..models import builders as models
from ..pruning import prunable
from ..pruning.masks import load_masks
from ..training import keras_fit
from . import compact as compact_lib
from . import export_records, tflite_export
from .measure import (REPEATS, Measured, keras_parameters, keras_threads, measure_keras,
                      measure_tflite, saved_bytes)

log = logging.getLogger("lottery")

FORMATS = tuple(export_records.FORMATS)
TOLERANCE = 1e-5  # the compact model's largest logit difference from the ticket (scaled > 1)
CALIBRATION_EXAMPLES = 300


class ExportError(UserError, RuntimeError):
    """The export cannot start: no such round, format or output path."""


def choose_round(run_dir: Path, cfg: config_lib.Config, round_index: int | None) -> int:
    """The requested round, else the winning ticket's (as ticket.py chooses it)."""
    records = runfolder.read_rounds(run_dir)
    if round_index is None:
        if not any(r.round >= 1 for r in records):
            raise ExportError(_no_pruned_round(run_dir, cfg.imp.num_rounds, records))
        return ticket.select_round(records, cfg.imp.select_metric).round
    if not (run_dir / runfolder.weights_file(round_index)).is_file():
        done = ", ".join(str(r.round) for r in records) or "none"
        raise ExportError(f"--round {round_index}: {run_dir} has no weights for that round; "
                          f"finished rounds: {done}.")
    return round_index


def _no_pruned_round(run_dir: Path, num_rounds: int, records: list[RoundRecord]) -> str:
    """Why there is no ticket yet: a run made to prune nothing (imp.num_rounds 0), or one whose
    first pruned round has not finished (still running, stopped early, or failed)."""
    dense = ", or export the dense network with --round 0" if records else ""
    if num_rounds == 0:
        return (f"{run_dir}: has no pruned round to export: it ran with imp.num_rounds 0 (the "
                f"dense network only); run it again with imp.num_rounds >= 1{dense}.")
    return (f"{run_dir}: has not finished a pruned round yet ({len(records)} of {num_rounds + 1} "
            f"rounds done, round 0 being the dense network); export once round 1 has "
            f"finished{dense}.")


def round_model(run_dir: Path, cfg: config_lib.Config, dataset: data_lib.Dataset,
                round_index: int) -> keras.Model:
    """Round `round_index`'s trained weights with its mask applied: the masked dense ticket."""
    model = models.build(cfg.train, dataset.input_shape, dataset.num_classes)
    model.load_weights(run_dir / runfolder.weights_file(round_index))
    kernels = {k.name: k.variable for k in prunable.all_kernels(model)}
    for name, mask in load_masks(run_dir / runfolder.mask_file(round_index)).items():
        kernels[name].assign(kernels[name].numpy() * mask)
    return model


def logits_model(model: keras.Model) -> keras.Model:
    """The model up to its output layer's pre-activation: softmax squashes differences (logits
    that differ by a constant, or in a class far below the top, give the same probabilities), so
    two models are compared on logits. A model that already outputs them, or whose output layer
    is not a softmax or sigmoid one (train.loss: probabilities over a custom layer), is itself."""
    layer, node_index, _ = keras_internals.made_by(model.outputs[0])
    [tensor] = keras_internals.call_tensors(layer, "input", node_index)
    if isinstance(layer, keras.Model):
        inner = logits_model(layer)
        return model if inner is layer else keras.Model(model.inputs, inner(tensor))
    if isinstance(layer, keras.layers.Softmax):
        return keras.Model(model.inputs, tensor)
    if getattr(getattr(layer, "activation", None), "__name__", None) not in ("softmax", "sigmoid"):
        return model
    linear = layer.__class__.from_config({**layer.get_config(), "activation": "linear"})
    logits = linear(tensor)
    linear.set_weights(layer.get_weights())
    return keras.Model(model.inputs, logits)


class Exporter:
    """One `lottery export` call: the run, its data, the masked ticket measured once as the
    reference, and the compaction that the compact and TFLite formats share."""

    def __init__(self, run_dir: Path, round_index: int | None = None, repeats: int = REPEATS,
                 examples: int | None = None):
        """`examples`: check and time on the test split's first that many examples only (every
        round of an experiment, every_round.py); None: the whole split, as `lottery export`."""
        self.run_dir = Path(run_dir)
        self.cfg = config_lib.load_run(self.run_dir)
        self.round = choose_round(self.run_dir, self.cfg, round_index)
        self.data = data_lib.load(self.cfg.data, self.cfg.run.seed,
                                  data_lib.load_split(self.run_dir / runfolder.SPLIT))
        # kept in its own dtype: images stay uint8 until a batch
        self.x_test, self.y_test = self.data.x_test[:examples], self.data.y_test[:examples]
        self.limited = {} if examples is None else {"test_examples": len(self.x_test)}
        self.ticket = round_model(self.run_dir, self.cfg, self.data, self.round)
        self.logits = models.is_logits(self.ticket, self.cfg.train.loss)
        keras_fit.compile_to_save(self.ticket, self.cfg.train, self.logits)  # saved as exported
        self.repeats = repeats
        self.dense = measure_keras(self.ticket, self.x_test, self.y_test, self.logits, repeats)
        (self.run_dir / export_records.EXPORT_DIR).mkdir(exist_ok=True)
        self.reference = {
            "format": "keras", "runtime": f"Keras {keras.__version__}",
            "bytes": saved_bytes(self.ticket, self.run_dir / export_records.EXPORT_DIR),
            "parameters": keras_parameters(self.ticket),
            "test_accuracy": self.dense.accuracy,
            "latency_ms_per_sample": self.dense.latency,
        }

    def _checked_compaction(self) -> compact_lib.Compaction:
        """The compact model, checked against the ticket on the test split, logits to logits
        (see logits_model)."""
        result = compact_lib.compact(self.ticket)
        logits = [logits_model(model).predict(self.x_test, batch_size=256, verbose=0)
                  for model in (self.ticket, result.model)]
        difference = float(np.abs(logits[1] - logits[0]).max())
        scale = max(1.0, float(np.abs(logits[0]).max()))
        if difference > TOLERANCE * scale:
            raise RuntimeError(f"the compact model's logits differ from the ticket's by "
                               f"{difference:.3g} (more than {TOLERANCE:g}); not exported")
        return result

    @cached_property
    def _compaction_outcome(self) -> compact_lib.Compaction | Exception:
        """Compacted once per call: three formats use it, and a failure is not worth retrying."""
        try:
            return self._checked_compaction()
        except Exception as exc:  # recorded by each format that needs it
            return exc

    def compaction(self) -> compact_lib.Compaction:
        if isinstance(self._compaction_outcome, Exception):
            raise self._compaction_outcome
        return self._compaction_outcome

    def _source(self) -> tuple[keras.Model, dict]:
        """What TFLite is made from: the compact model, or the ticket if compaction failed (the
        TFLite formats do not fail with the compact one)."""
        outcome = self._compaction_outcome
        if isinstance(outcome, Exception):
            return self.ticket, {"source": f"keras (compaction failed: {faults.describe(outcome)})"}
        return outcome.model, {"source": "compact", "compaction": outcome.to_json()}

    def _record(self, fmt: str, path: Path, measured: Measured, parameters: dict,
                runtime: str, **extra) -> dict:
        try:
            shown = str(path.resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            shown = str(path.resolve())
        record = {
            "format": fmt, "status": "ok", "round": self.round, "file": shown,
            "bytes": path.stat().st_size, "runtime": runtime,
            "output": "logits" if self.logits else "probabilities",
            "parameters": parameters, "test_accuracy": measured.accuracy,
            "test_accuracy_change": measured.accuracy - self.dense.accuracy,
            "max_output_difference": float(np.abs(measured.outputs - self.dense.outputs).max()),
            "latency_ms_per_sample": measured.latency, "reference": self.reference,
            "threads": {"keras": keras_threads(), "tflite": 1}, **self.limited, **extra,
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        record["summary"] = export_records.summary(record)
        return record

    def _keras_file(self, fmt: str, model: keras.Model, path: Path, **extra) -> dict:
        """Save compiled as the run trained (its loss and metric, a fresh optimizer of its kind:
        `evaluate` works on the file), load back with safe_mode (as a user will) and measure
        what was loaded."""
        keras_fit.compile_to_save(model, self.cfg.train, self.logits)
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        measured = measure_keras(loaded, self.x_test, self.y_test, self.logits,
                                 self.repeats)
        return self._record(fmt, path, measured, keras_parameters(loaded),
                            f"Keras {keras.__version__}", flops=model_flops(loaded), **extra)

    def keras(self, path: Path) -> dict:
        return self._keras_file("keras", self.ticket, path)

    def compact(self, path: Path) -> dict:
        compaction = self.compaction()
        return self._keras_file("compact", compaction.model, path,
                                compaction=compaction.to_json())

    def _calibration(self) -> np.ndarray:
        """A few hundred training examples, drawn under the run's seed."""
        rows = np.random.default_rng(self.cfg.run.seed).permutation(len(self.data.x_train))
        return self.data.x_train[np.sort(rows[:CALIBRATION_EXAMPLES])].astype(np.float32)

    def _tflite_file(self, fmt: str, path: Path, calibration: np.ndarray | None) -> dict:
        model, source = self._source()
        content, encoding = tflite_export.shippable(model, calibration, self.x_test[0])
        path.write_bytes(content)
        measured, ops = measure_tflite(path.read_bytes(), self.x_test, self.y_test,
                                       self.logits, self.repeats)
        contents = tflite_export.contents(content)
        parameters = {"stored": contents["stored"], "nonzero": contents["nonzero"]}
        return self._record(fmt, path, measured, parameters, tflite_export.RUNTIME,
                            flops=model_flops(model), **source,
                            **encoding, sparse_tensors=contents["sparse_tensors"], ops=ops)

    def tflite(self, path: Path) -> dict:
        return self._tflite_file("tflite", path, None)

    def tflite_int8(self, path: Path) -> dict:
        return self._tflite_file("tflite-int8", path, self._calibration())

    def run(self, fmt: str, path: Path, by_round: bool = False) -> dict:
        """Export one format and record it (in exports.json, or with `by_round` among every
        round's exports, leaving the ticket's alone); a failure is recorded with its one-line
        reason."""
        make = {"keras": self.keras, "compact": self.compact, "tflite": self.tflite,
                "tflite-int8": self.tflite_int8}[fmt]
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            record = make(path)
        except Exception as exc:  # any converter or runtime failure fails this format alone
            reason = faults.describe(exc, path.parent)[:300]
            log.warning("export %s of %s failed: %s", fmt, self.run_dir, reason)
            log.debug("export %s failed", fmt, exc_info=True)
            record = {"format": fmt, "status": "failed", "round": self.round, "error": reason,
                      "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            record["summary"] = export_records.summary(record)
        (export_records.write_by_round if by_round else export_records.write)(self.run_dir, record)
        return record


def _check(formats: list[str], out: Path | None) -> None:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"--format: {', '.join(unknown) or 'none given'}; the formats are "
                          f"{', '.join(FORMATS)}.")
    if out is not None and len(formats) != 1:
        raise ExportError("--out names one file: give it with one --format.")


def _is_run_folder(folder: Path) -> bool:
    """A run's folder by its own files: a frozen config beside a saved split."""
    return (folder / runfolder.CONFIG).is_file() and (folder / runfolder.SPLIT).is_file()


def _check_out(run_dir: Path, out: Path, fmt: str, force: bool) -> None:
    """Refuse an --out that would replace a run's own files (`--out RUN/rounds.jsonl` would leave
    a run that cannot be reported; `RUN/winning_ticket_model.keras` a ticket its JSON does not
    describe): inside a run folder only its export/ subfolder takes files. The path is resolved
    first, so neither a symlink nor `..` leads around the check; an existing file is replaced
    only with `force`."""
    target = Path(out).resolve()
    shown = str(out) if Path(out).absolute() == target else f"{out} (that is {target})"
    run = Path(run_dir).resolve()
    for folder in target.parents:
        export_dir = folder / export_records.EXPORT_DIR
        if (folder == run or _is_run_folder(folder)) and export_dir not in target.parents:
            raise ExportError(f"--out {shown}: is inside the run folder {folder}, whose own files "
                              f"it could replace; name a file in {export_dir} or outside the "
                              f"run folder.")
    if target.is_dir():
        raise ExportError(f"--out {shown}: is a folder; name a file in it, e.g. "
                          f"{Path(out) / f'{fmt}.{export_records.FORMATS[fmt]}'}.")
    if target.exists() and not force:
        raise ExportError(f"--out {shown}: already exists; add --force to replace it, or name "
                          f"another file.")


def export(run_dir: Path, formats: list[str] | tuple[str, ...] = FORMATS,
           round_index: int | None = None, out: Path | None = None,
           repeats: int = REPEATS, force: bool = False) -> list[dict]:
    """Export the ticket (or round `round_index`) of `run_dir` in each format, to `out` (one
    format; see _check_out, `force` replaces an existing file) or RUN_DIR/export/<format>.<ext>;
    returns the records, also kept in exports.json."""
    formats = list(formats)
    _check(formats, out)
    if out is not None:
        _check_out(run_dir, out, formats[0], force)
    exporter = Exporter(Path(run_dir), round_index, repeats)
    return [exporter.run(fmt, Path(out) if out else export_records.default_path(run_dir, fmt))
            for fmt in formats]
