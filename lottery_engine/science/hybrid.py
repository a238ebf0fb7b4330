"""The hybrid baseline (SPEC §5): pooled features from a named conv layer, then a RandomForest.

It answers "how much of the CNN's accuracy does a cheap classifier get from part of the network?"
and places that against the IMP rounds on one accuracy-vs-FLOPs figure.
"""

from __future__ import annotations

from pathlib import Path

import keras
from sklearn.ensemble import RandomForestClassifier

from ..config import load as config_lib
from ..config.architectures import ARCHITECTURES
from ..data import dataset as data_lib
from ..evaluation import flops, metrics
from ..foundations import runfolder
from ..models import builders as models

def _up_to(model: keras.Model, name: str) -> keras.Model:
    """A model from the input to `name`'s output, globally average-pooled. A layer of the model
    itself is cut from its graph (a ResNet is no chain of layers); one inside a nested base is
    reached by calling the layers before that base in turn."""
    if name in {layer.name for layer in model.layers}:
        features = model.get_layer(name).output
        return keras.Model(model.inputs, keras.layers.GlobalAveragePooling2D()(features))
    x = inputs = keras.Input(model.input_shape[1:])
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model) and name in [l.name for l in layer.layers]:
            x = keras.Model(layer.input, layer.get_layer(name).output)(x)
            break
        x = layer(x)
    else:
        raise ValueError(f"--layer {name}: no such layer in {model.name}.")
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def _model(cfg: config_lib.Config, dataset: data_lib.Dataset, run_dir: Path | None,
           kind: str) -> keras.Model:
    if run_dir is not None and kind == "ticket":
        return keras.saving.load_model(run_dir / runfolder.TICKET_MODEL, safe_mode=True)
    keras.utils.set_random_seed(cfg.run.seed)
    model = models.build(cfg.train, dataset.input_shape, dataset.num_classes)
    if run_dir is not None:
        model.load_weights(run_dir / runfolder.weights_file(0))
    return model


def run(cfg: config_lib.Config, out_dir: Path, run_dir: Path | None = None,
        kind: str = "dense", layer: str | None = None, trees: int = 200) -> dict:
    """Fit the forest on train features, report test accuracy and F1; write test_metrics.json."""
    layer = layer or ARCHITECTURES[cfg.train.arch].hybrid_layer
    if layer is None:
        raise ValueError(f"train.arch: {cfg.train.arch} has no conv layer for the hybrid "
                         f"baseline; pass --layer.")
    split = data_lib.load_split(run_dir / runfolder.SPLIT) if run_dir else None
    dataset = data_lib.load(cfg.data, cfg.run.seed, split)
    model = _model(cfg, dataset, run_dir, kind)
    extractor = _up_to(model, layer)
    features = {name: extractor.predict(x, batch_size=64, verbose=0)
                for name, x in (("train", dataset.x_train), ("test", dataset.x_test))}
    forest = RandomForestClassifier(n_estimators=trees, random_state=cfg.run.seed, n_jobs=-1)
    forest.fit(features["train"], dataset.y_train)
    scores = metrics.classification_metrics(dataset.y_test,
                                            forest.predict_proba(features["test"]), "test")
    source = f"{kind} of {run_dir}" if run_dir else f"{cfg.train.arch} ({cfg.train.weights})"
    result = {"model": source, "layer": layer, "trees": trees,
              "accuracy": scores["test_accuracy"], "f1": scores["test_f1"],
              "flops": flops.flops_until(model, layer)[0],
              "train_images": int(len(dataset.y_train)), "test_images": int(len(dataset.y_test))}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runfolder.write_json(out_dir / runfolder.HYBRID_METRICS, result)
    return result
