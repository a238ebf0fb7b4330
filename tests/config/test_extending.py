"""A network of one's own is a builder and one registry entry (docs/extending.md): registered from
this file alone, it is validated, trained, pruned and recorded like a built-in, no engine module
touched."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers


from lottery_engine import pipeline, preflight
from lottery_engine.config import architectures
from lottery_engine.config.architectures import Architecture
from lottery_engine.config.data_sources import DATA_SOURCES, DataSource
from lottery_engine.data import dataset as data_lib
from lottery_engine.config.load import ConfigError
from lottery_engine.foundations import dotted, runfolder
from lottery_engine.pruning.masks import load_masks

from tests.conftest import tiny_config


def toy_net(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """A dense net with two prunable layers; the first layer rescales uint8 images as every
    built-in's does."""
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Rescaling(1.0 / 255, name="rescale"),
        layers.Flatten(name="flatten"),
        layers.Dense(32, activation="relu", name="hidden"),
        layers.Dense(num_classes, activation="softmax", name="output"),
    ], name="toy")


@pytest.fixture
def toy() -> Architecture:
    """The toy network registered for one test, and taken out again so that no other test's
    list of allowed architectures names it."""
    entry = architectures.register(
        Architecture("toy", f"{__name__}:toy_net", ("hidden", "output"), min_side=12))
    yield entry
    del architectures.ARCHITECTURES[entry.name]


def test_a_registered_network_validates_trains_prunes_and_records_its_rounds(toy, tmp_path):
    run_dir = tmp_path / "toy"
    pipeline.execute(tiny_config(train__arch="toy"), run_dir)
    records = runfolder.read_rounds(run_dir)
    assert [r["round"] for r in records] == [0, 1, 2]
    assert records[2]["global_sparsity"] == pytest.approx(1 - 0.8 ** 2, abs=1e-3)
    masks = load_masks(run_dir / runfolder.mask_file(2))
    assert list(masks) == ["hidden", "output"]
    assert all(0 < mask.mean() < 1 for mask in masks.values())


def test_its_entry_drives_the_config_checks(toy):
    with pytest.raises(ConfigError) as refused:
        tiny_config(train__arch="toy", imp__prunable_layers=["hiden"],
                    data__image_size=[10, 10])
    assert str(refused.value).splitlines() == [
        "data.image_size: invalid value [10, 10]; toy's poolings halve the image, so it needs "
        "at least 12×12.",
        "imp.prunable_layers: 'hiden' matches no prunable layer of toy. Did you mean 'hidden'? "
        "Prunable: hidden, output."]
    with pytest.raises(ValueError, match="'toy' is already registered"):
        architectures.register(toy)


def test_every_entry_names_a_function_that_exists():
    """A registry names builders and loaders as text (config stays free of TensorFlow), so a
    typo there would only surface when a run builds that network: resolve them all here."""
    named = [arch.builder for arch in architectures.ARCHITECTURES.values()]
    named += [source.loader for source in DATA_SOURCES.values()]
    assert all(callable(dotted.function(spec)) for spec in named)


def stripes(cfg, progress) -> data_lib.Pool:
    """A toy source: 60 images of 3 classes, each class a brighter band of rows."""
    labels = np.arange(60) % 3
    images = np.zeros((60, *cfg.image_size, cfg.channels), np.uint8)
    for image, label in zip(images, labels):
        image[4 * label:4 * label + 4] = 255
    return data_lib.Pool(images, labels, ["top", "middle", "bottom"])


def test_a_registered_data_source_is_checked_split_and_loaded(monkeypatch):
    """Its one registry line is all the validator, the preflight's class check and the loader
    need (a source preflight has no class counts for is loaded to read its labels)."""
    monkeypatch.setitem(DATA_SOURCES, "stripes",
                        DataSource("stripes", f"{__name__}:stripes", "data.name", ("bands",)))
    raw = {"data": {"source": "stripes", "name": "bands", "image_size": [12, 12],
                    "train_split": 0.5, "val_split": 0.25}}
    cfg = preflight.from_dict(raw)
    data = data_lib.load(cfg.data, seed=0)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (30, 15, 15)
    assert data.class_names == ["top", "middle", "bottom"]
    with pytest.raises(ConfigError, match="data.train_split / data.val_split: cannot split"):
        preflight.from_dict({"data": {**raw["data"], "limit_total": 20, "val_split": 0.05}})
