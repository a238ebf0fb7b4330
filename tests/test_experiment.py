"""Keras datasets as a source, and the lottery ticket experiment in miniature."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from lottery_engine import config as config_lib
from lottery_engine import data as data_lib
from lottery_engine import experiment, runfolder

from .conftest import ROOT


def _require_fashion_mnist():
    if not data_lib.DEBIAN_FASHION_MNIST.is_dir():
        reason = ("Debian's dataset-fashion-mnist is not installed "
                  "(apt-get install dataset-fashion-mnist)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def test_fashion_mnist_through_the_keras_source():
    _require_fashion_mnist()
    cfg = config_lib.from_dict({"data": {"source": "keras", "name": "fashion_mnist",
                                         "image_size": [28, 28], "train_split": 0.9,
                                         "val_split": 0.1}})
    ds = data_lib.load(cfg.data, seed=5)
    assert ds.x_train.shape == (54000, 28, 28, 1) and ds.x_train.dtype == np.uint8
    assert ds.x_val.shape == (6000, 28, 28, 1)
    assert ds.x_test.shape == (10000, 28, 28, 1)  # the official test split, untouched
    assert ds.num_classes == 10 and ds.class_names[9] == "Ankle boot"
    assert np.bincount(ds.y_val).tolist() == [600] * 10  # stratified
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    again = data_lib.load(cfg.data, seed=5)
    np.testing.assert_array_equal(again.split.val, ds.split.val)


def test_keras_source_limit_and_resize():
    _require_fashion_mnist()
    cfg = config_lib.from_dict({"data": {"source": "keras", "name": "fashion_mnist",
                                         "image_size": [16, 16], "channels": 3,
                                         "limit_total": 500}})
    ds = data_lib.load(cfg.data, seed=0)
    assert len(ds.y_train) + len(ds.y_val) == 500
    assert ds.x_train.shape[1:] == (16, 16, 3) and ds.x_test.shape == (10000, 16, 16, 3)


def test_missing_dataset_offline_says_both_ways_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))
    monkeypatch.setattr(data_lib, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
    import keras

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    cfg = config_lib.from_dict({"data": {"source": "keras", "name": "fashion_mnist"}})
    with pytest.raises(FileNotFoundError) as info:
        data_lib.load(cfg.data, seed=0)
    message = str(info.value)
    assert "data.name: could not load fashion_mnist" in message
    assert "apt-get install dataset-fashion-mnist" in message and "network" in message


def test_miniature_experiment_writes_results_and_run_folders(tmp_path):
    _require_fashion_mnist()
    out, results = tmp_path / "runs", tmp_path / "docs" / "RESULTS.md"
    cmd = [sys.executable, "-m", "lottery_engine.cli", "experiment", "--config",
           "configs/experiment_fashion.yaml", "--seeds", "0", "--out", str(out),
           "--results", str(results), "--set", "data.limit_total=300",
           "--set", "imp.num_rounds=2", "--set", "train.epochs=1"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    text = results.read_text()
    assert "### LeNet-300-100" in text and "### Conv LeNet" in text
    assert "Dense baseline test accuracy" in text and "![test accuracy" in text
    assert results.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for label in ("lenet-300-100", "conv-lenet"):
        folder = out / f"{label}-seed0"
        assert runfolder.is_complete(folder)
        assert set(runfolder.series(folder)) == {"imp", "random_reinit", "random_prune"}
    cfg = config_lib.load(out / "lenet-300-100-seed0" / runfolder.CONFIG)
    assert (cfg.train.arch, cfg.imp.scope, cfg.imp.layer_rates) == \
        ("lenet_300_100", "layerwise", {"output": 0.1})
    table_rows = [line for line in text.splitlines() if line.startswith("| 2 |")]
    assert len(table_rows) == 2  # round 2 of each architecture


def test_headline_numbers_come_from_the_rounds():
    def row(r, s, test):
        return {"round": r, "sparsity": s, "remaining": 1 - s, "val": test, "val_sd": 0,
                "test": test, "test_sd": 0}

    series = {"imp": [row(0, 0, 0.90), row(1, 0.8, 0.895), row(2, 0.9, 0.88)],
              "random_reinit": [row(0, 0, 0.90), row(1, 0.8, 0.85), row(2, 0.9, 0.80)],
              "random_prune": [row(0, 0, 0.90), row(1, 0.8, 0.84), row(2, 0.9, 0.70)]}
    head = experiment.headline(series)
    assert head["held_sparsity"] == 0.8
    assert [g["round"] for g in head["gaps"]] == [1, 2]  # nothing within 3 points of 95%
    assert head["gaps"][1]["random_reinit"] == pytest.approx(0.08)
    assert head["gaps"][1]["random_prune"] == pytest.approx(0.18)
