"""A user's model before it runs: loaded, checked against the data, its prunable kernels listed.

`lottery run` and `lottery submit` call `summarize` before anything is written, so a model that
does not fit the data is refused in one line. The dashboard never imports TensorFlow: it runs
`python -m lottery_engine.model_summary` with the YAML config on stdin and reads the JSON it prints
({"ok": true, ...summary} or {"ok": false, "error": "one line"}).
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import keras

from . import preflight
from .config.data_sources import DATA_SOURCES
from .config.load import Config, ConfigError
from .data import user_data
from .foundations import keras_internals
from .models import builders as models
from .pruning import channels, prunable


MODEL_ONLY = "--model-only"  # describe the model file alone, its data not given yet


def data_signature(cfg: Config) -> tuple[tuple[int, ...], list[str]]:
    """The shape of one example and the class names, read without loading the data."""
    if DATA_SOURCES[cfg.data.source].suffix is not None:
        return user_data.peek(cfg.data)
    _, classes, _ = preflight.class_labels(cfg)
    return (*cfg.data.image_size, cfg.data.channels), classes


def _rate_text(cfg: Config, name: str, rates: dict[str, float]) -> str:
    rate = rates.get(name, cfg.imp.prune_rate)
    where = "own rate" if name in rates else cfg.imp.scope
    return f"{100 * rate:g}% per round ({where})"


def _layer_rows(model: keras.Model, cfg: Config, selected: list[str],
                rates: dict[str, float]) -> list[dict[str, Any]]:
    """One row per layer that holds weights: its class, parameters and what IMP does to it."""
    kernels: dict[int, list[prunable.Kernel]] = {}
    for kernel in prunable.all_kernels(model):
        kernels.setdefault(id(kernel.layer), []).append(kernel)
    rows = []
    for layer in keras_internals.all_layers(model):
        if not layer.weights or keras_internals.child_layers(layer):
            continue  # no weights, or a block whose layers have their own rows
        mine = kernels.get(id(layer), [])
        pruned = [f"{k.name}: {_rate_text(cfg, k.name, rates)}" for k in mine
                  if k.name in selected]
        rows.append({"layer": mine[0].path.split(":")[0] if mine else layer.name,
                     "type": type(layer).__name__,
                     "parameters": int(sum(math.prod(w.shape) for w in layer.weights)),
                     "pruned": "; ".join(pruned) or "not pruned"})
    return rows


def summarize(cfg: Config, with_data: bool = True) -> dict[str, Any]:
    """Build the configured model as a run would, check it against the data, and describe it.
    Raises ConfigError (one line) where the run would fail on the model. Without data (a user's
    model file the moment it is uploaded, its data still to come) it is described as its file
    has it: its own input shape and output units, checked against nothing."""
    shape, classes = data_signature(cfg) if with_data else ((), [])
    keras.utils.set_random_seed(cfg.run.seed)
    model = models.build(cfg.train, shape, len(classes))
    if with_data:
        models.check_input(model, shape)
        models.check_output(model, len(classes))
    else:
        shape = tuple(model.inputs[0].shape[1:])
        classes = [str(unit) for unit in range(model.outputs[0].shape[-1])]
    logits = models.is_logits(model, cfg.train.loss)
    selected = prunable.select(model, cfg.imp.prunable_layers)
    rates = prunable.expand_rates(model, list(selected), cfg.imp.layer_rates)
    if cfg.imp.granularity == "channel":
        channels.checked_plan(model, selected)
    return {
        "model": model.name,
        "input_shape": list(shape),
        "classes": len(classes),
        "output": "logits" if logits else "probabilities",
        "parameters": int(model.count_params()),
        "prunable_weights": int(sum(math.prod(v.shape) for v in selected.values())),
        "prunable": list(selected),
        "layers": _layer_rows(model, cfg, list(selected), rates),
    }


def main() -> int:
    """Config YAML on stdin, the summary as one JSON object on stdout; never a traceback.
    With --model-only the config's data is not the user's (a stand-in that validates) and the
    model is described alone."""
    from .foundations import quiet_import

    quiet_import.tensorflow()
    try:
        cfg = preflight.loads(sys.stdin.read())
        result = {"ok": True, **summarize(cfg, with_data=MODEL_ONLY not in sys.argv[1:])}
    except ConfigError as exc:
        result = {"ok": False, "error": str(exc)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
