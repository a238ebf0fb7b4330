"""The winning ticket: the best pruned round, saved as a plain Keras model and checked from disk.

The saved `.keras` file has no custom objects (the mask is baked into the zeros), so it loads with
`safe_mode=True` anywhere Keras runs; it is saved compiled with the run's loss and accuracy metric
and a fresh optimizer of the run's kind, so `evaluate` works on it as on a user's own saved file. It is re-evaluated from the file on the same validation split;
the accuracy must equal the logged one to 1e-6, or the ticket is not the round it claims to be.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import keras
import numpy as np

from ..config import load as config_lib
from ..data import dataset as data_lib
from ..evaluation import metrics
from ..foundations import runfolder
from ..foundations.faults import UserError
from ..foundations.round_record import RoundRecord
from ..models import builders as models
from ..pruning import prunable
from ..pruning.masks import load_masks
from ..training import keras_fit

TOLERANCE = 1e-6


class TicketError(UserError, RuntimeError):
    """The ticket cannot be made or does not reproduce its logged accuracy."""


def select_round(records: list[RoundRecord], metric: str) -> RoundRecord:
    """Best round ≥ 1 by the validation metric (earliest on ties); never looks at test numbers."""
    pruned = [r for r in records if r.round >= 1]
    if not pruned:
        raise TicketError("no pruned round to choose a ticket from: set imp.num_rounds >= 1.")
    return max(pruned, key=lambda r: (r[metric], -r.round))


def _compressed_bytes(weights: list[np.ndarray]) -> int:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, *weights)
    return buffer.getbuffer().nbytes


def make(run_dir: Path) -> dict:
    """Save `winning_ticket_model.keras` and its mask, verify them, write `winning_ticket.json`."""
    run_dir = Path(run_dir)
    cfg = config_lib.load_run(run_dir)
    best = select_round(runfolder.read_rounds(run_dir), cfg.imp.select_metric)
    dataset = data_lib.load(cfg.data, cfg.run.seed,
                            data_lib.load_split(run_dir / runfolder.SPLIT))
    keras.utils.set_random_seed(cfg.run.seed)
    model = models.build(cfg.train, dataset.input_shape, dataset.num_classes)
    model.load_weights(run_dir / runfolder.weights_file(best.round))
    masks = load_masks(run_dir / runfolder.mask_file(best.round))
    kernels = {k.name: k.variable for k in prunable.all_kernels(model)}
    for name, mask in masks.items():
        kernels[name].assign(kernels[name].numpy() * mask)
    logits = models.is_logits(model, cfg.train.loss)
    keras_fit.compile_to_save(model, cfg.train, logits)  # so load_model(...).evaluate(x, y) works
    model_path = run_dir / runfolder.TICKET_MODEL
    model.save(model_path)
    shutil.copyfile(run_dir / runfolder.mask_file(best.round), run_dir / runfolder.TICKET_MASK)

    reloaded = keras.saving.load_model(model_path, safe_mode=True)
    val = metrics.classification_metrics(
        dataset.y_val, metrics.predict_proba(reloaded, dataset.x_val, logits=logits), "val")
    weights = reloaded.get_weights()
    summary = {
        "round": best.round,
        "select_metric": cfg.imp.select_metric,
        "output": "logits" if logits else "probabilities",
        "global_sparsity": best.global_sparsity,
        "remaining_prunable": best.remaining_prunable,
        "logged_val_accuracy": best.val_accuracy,
        "reloaded_val_accuracy": val["val_accuracy"],
        "test_accuracy": best.test_accuracy,
        "val_f1": best.val_f1,
        "flops": best.flops,
        "dense_bytes": int(sum(w.nbytes for w in weights)),
        "compressed_bytes": _compressed_bytes(weights),
        "nonzero_weights": int(sum(np.count_nonzero(w) for w in weights)),
    }
    runfolder.write_json(run_dir / runfolder.TICKET_JSON, summary)
    if abs(val["val_accuracy"] - best.val_accuracy) > TOLERANCE:
        raise TicketError(
            f"winning ticket (round {best.round}) reloaded from {model_path} gives val accuracy "
            f"{val['val_accuracy']:.6f}, but the run logged {best.val_accuracy:.6f}.")
    return summary
