"""Image folders, VGG16 with a frozen base and its feature cache, FLOPs, the hybrid baseline."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from lottery_engine import pipeline
from lottery_engine import preflight
from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError, TrainConfig
from lottery_engine.data import dataset as data_lib
from lottery_engine.data import image_folder
from lottery_engine.data.keras_cache import VGG16_NOTOP_FILE
from lottery_engine.evaluation import flops
from lottery_engine.foundations import runfolder
from lottery_engine.lottery.trainer import Trainer
from lottery_engine.models import builders as models
from lottery_engine.pruning.masks import load_masks

from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LOTTERY_CACHE", str(tmp_path / "cache"))


def _image(rng, label: str) -> Image.Image:
    """Odd-sized images whose class shows in brightness and a stripe, so a model can learn it."""
    h, w = rng.integers(20, 60, size=2)
    base = 170 if label in ("cat", "a") else 60
    pixels = np.clip(rng.normal(base, 30, size=(h, w, 3)), 0, 255).astype(np.uint8)
    pixels[: h // 3] = 255 - base
    return Image.fromarray(pixels)


def make_flat(folder, per_class=30, seed=0):
    """Dogs-vs-Cats layout: cat.N.jpg / dog.N.jpg, plus a grayscale PNG, an RGBA PNG, a corrupt JPEG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for label in ("cat", "dog"):
        for i in range(per_class):
            _image(rng, label).save(folder / f"{label}.{i}.jpg", quality=90)
    _image(rng, "cat").convert("L").save(folder / f"cat.{per_class}.png")
    _image(rng, "dog").convert("RGBA").save(folder / f"dog.{per_class}.png")
    (folder / "dog.999.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return folder


def make_subfolders(folder, per_class=25, seed=1):
    rng = np.random.default_rng(seed)
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for i in range(per_class):
            _image(rng, label).save(folder / label / f"{i}.png")
    return folder


def test_flat_layout_decodes_converts_and_skips_the_corrupt_file(tmp_path, caplog):
    folder = make_flat(tmp_path / "flat")
    caplog.set_level(logging.INFO, "lottery")
    calls = []
    images, labels, classes = image_folder.load(folder, (24, 32), 3,
                                                lambda *a: calls.append(a))
    assert classes == ["cat", "dog"] and images.shape == (62, 24, 32, 3)
    assert images.dtype == np.uint8 and isinstance(images, np.memmap)
    assert np.bincount(labels).tolist() == [31, 31]
    assert "skipped 1 file(s)" in caplog.text and "dog.999.jpg" in caplog.text
    assert calls[-1] == ("decoding images", 63, 63)

    calls.clear()
    again, _, _ = image_folder.load(folder, (24, 32), 3, lambda *a: calls.append(a))
    assert calls == [] and np.array_equal(again, images)  # served from the cache
    gray, _, _ = image_folder.load(folder, (24, 32), 1)
    assert gray.shape == (62, 24, 32, 1)  # another size or channel count: another cache
    _image(np.random.default_rng(9), "cat").save(folder / "cat.100.jpg")
    grown, _, _ = image_folder.load(folder, (24, 32), 3)
    assert len(grown) == 63  # a changed folder rebuilds


def test_subfolder_layout(tmp_path):
    images, labels, classes = image_folder.load(make_subfolders(tmp_path / "sub"), (16, 16), 1)
    assert classes == ["a", "b"] and images.shape == (50, 16, 16, 1)


@pytest.mark.parametrize("setup,message", [
    (lambda p: None, "data.data_dir: folder {p} not found"),
    (lambda p: p.mkdir(), "holds no .jpg or .png images"),
    (lambda p: make_subfolders(p).joinpath("b").rename(p / ".hidden"), "has a single class (a)"),
])
def test_folder_errors_name_the_folder(tmp_path, setup, message):
    folder = tmp_path / "data"
    setup(folder)
    with pytest.raises((FileNotFoundError, ValueError), match=message.format(p=folder)
                       .replace("(", r"\(").replace(")", r"\)")):
        image_folder.load(folder, (16, 16), 1)


def _folder_config(folder, **over):
    raw = {"run": {"name": "folder", "seed": 1, "device": "cpu"},
           "data": {"source": "folder", "data_dir": str(folder), "image_size": [32, 32],
                    "channels": 3},
           "train": {"arch": "lenet", "epochs": 2, "batch_size": 8},
           "imp": {"num_rounds": 1}}
    for dotted, value in over.items():
        section, key = dotted.split("__")
        raw[section][key] = value
    return config_lib.from_dict(raw)


def test_lenet_imp_end_to_end_on_an_image_folder(tmp_path):
    run_dir = tmp_path / "run"
    summary = pipeline.execute(_folder_config(make_flat(tmp_path / "flat")), run_dir)
    assert [r["round"] for r in summary["rounds"]] == [0, 1]
    assert summary["ticket"]["reloaded_val_accuracy"] == summary["ticket"]["logged_val_accuracy"]
    assert "skipped 1 file(s)" in (run_dir / runfolder.LOG).read_text()


def test_vgg16_feature_cache_changes_nothing_but_speed(tmp_path):
    """Same seed: the round trained on cached base features and the one trained through the
    base give the same masks and val accuracy (tolerance: 1e-6 on accuracy, masks exactly equal);
    the saved full model reproduces it from the images."""
    folder = make_subfolders(tmp_path / "sub", per_class=30)
    runs = {}
    for cache in (True, False):
        cfg = _folder_config(folder, train__arch="vgg16", train__weights="none",
                             train__feature_cache=cache, train__epochs=1, imp__num_rounds=1)
        runs[cache] = pipeline.execute(cfg, tmp_path / f"cache-{cache}")
    for r in (0, 1):
        on, off = (runs[c]["rounds"][r] for c in (True, False))
        assert abs(on["val_accuracy"] - off["val_accuracy"]) <= 1e-6
        assert on["layer_sparsity"] == off["layer_sparsity"]
        a = load_masks(tmp_path / "cache-True" / runfolder.mask_file(r))
        b = load_masks(tmp_path / "cache-False" / runfolder.mask_file(r))
        assert all(np.array_equal(a[n], b[n]) for n in a)
    assert sorted(a) == ["fc1", "fc2", "output"]
    ticket = runs[True]["ticket"]
    assert abs(ticket["reloaded_val_accuracy"] - ticket["logged_val_accuracy"]) <= 1e-6
    model = keras.saving.load_model(tmp_path / "cache-True" / runfolder.TICKET_MODEL,
                                    safe_mode=True)
    assert model.get_layer("vgg16").count_params() == 14_714_688  # the whole model, base included
    assert list((tmp_path / "cache").glob("features-*.f32"))


def test_absent_imagenet_weights_fail_at_once_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(ConfigError) as info:
        models.build(TrainConfig(arch="vgg16", weights="imagenet"), (32, 32, 3), 2)
    message = str(info.value)
    assert VGG16_NOTOP_FILE in message and str(tmp_path / "keras" / "models") in message
    assert "train.weights: none" in message


def test_vgg16_base_flops_at_128():
    model = models.build(TrainConfig(arch="vgg16"), (128, 128, 3), 2)
    assert flops.model_flops(model.get_layer("vgg16")) == 10_022_289_408  # 2 x 5,011,144,704 MACs
    assert model.get_layer("fc1").kernel.shape == (8192, 256)
    per_layer = flops.layer_flops(model, {"fc1": 0.5}, include_frozen_base=True)
    assert per_layer["vgg16"] == 10_022_289_408 and per_layer["fc1"] == 8192 * 256
    assert "vgg16" not in flops.layer_flops(model, {})


def test_lenet_flops_at_128_match_a_hand_computation():
    model = models.build(TrainConfig(arch="lenet"), (128, 128, 3), 2)
    hand = {
        "conv_1": 2 * 3 * 3 * 3 * 6 * 126 * 126,      # 3x3 valid conv: 128 -> 126
        "conv_2": 2 * 3 * 3 * 6 * 16 * 61 * 61,       # pool to 63, conv to 61
        "dense_1": 2 * (30 * 30 * 16) * 120,          # pool to 30: 14,400 inputs
        "dense_2": 2 * 120 * 84,
        "output": 2 * 84 * 1,                         # one sigmoid unit for two classes
    }
    assert flops.layer_flops(model, {}) == hand
    assert model.get_layer("dense_1").kernel.shape == (14_400, 120)


def test_imp_vgg16_config_validates_and_runs_on_a_folder(tmp_path):
    folder = make_flat(tmp_path / "flat", per_class=12)
    cfg = preflight.load(ROOT / "configs" / "imp_vgg16.yaml", [
        f"data.data_dir={folder}", "data.image_size=[32, 32]", "train.weights=none",
        "train.epochs=1", "imp.num_rounds=1", "imp.controls=[]", "run.device=cpu"])
    summary = pipeline.execute(cfg, tmp_path / "vgg")
    assert summary["rounds"][1]["layer_sparsity"]["fc1"] > 0.19
    assert summary["rounds"][0]["layer_flops"]["vgg16"] > 0  # include_frozen_base: true


def test_hybrid_on_a_run_writes_metrics_and_joins_the_report(tmp_path):
    folder = make_flat(tmp_path / "flat")
    run_dir = tmp_path / "run"
    pipeline.execute(_folder_config(folder), run_dir)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "jobs.cli", "hybrid", "--run",
                             str(run_dir), "--model", "ticket", "--trees", "50"], cwd=ROOT,
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = runfolder.read_json(run_dir / "hybrid" / "test_metrics.json")
    assert metrics["layer"] == "conv_2" and 0 <= metrics["accuracy"] <= 1
    assert metrics["flops"] == 2 * 3 * 3 * 3 * 6 * 30 * 30 + 2 * 3 * 3 * 6 * 16 * 13 * 13
    assert "hybrid: conv_2 + RandomForest" in (run_dir / runfolder.REPORT_HTML).read_text()


def test_random_reinit_keeps_the_frozen_base(tmp_path):
    folder = make_subfolders(tmp_path / "sub", per_class=10)
    cfg = _folder_config(folder, train__arch="vgg16", train__weights="none", train__epochs=1)
    trainer = Trainer(cfg, data_lib.load(cfg.data, cfg.run.seed), tmp_path)
    fresh = trainer.fresh_init(seed=99)
    for variable, new, old in zip(trainer.model.weights, fresh, trainer.manager.rewind_weights):
        if not variable.trainable:
            np.testing.assert_array_equal(new, old)  # base and preprocessing untouched
        elif new.ndim > 1:
            assert not np.array_equal(new, old), variable.path  # kernels drawn anew
