"""Keras datasets as a source, and the lottery ticket experiment in miniature."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from lottery_engine.config import load as config_lib
from lottery_engine.data import dataset as data_lib
from lottery_engine.foundations import runfolder

from tests.conftest import ROOT, tiny_config


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


def _experiment_file(tmp_path, runs: str, notes: str = "") -> str:
    path = tmp_path / "experiment.yaml"
    path.write_text(f"name: Miniature\nnotes: {notes!r}\nruns:\n{runs}")
    return str(path)


def test_miniature_experiment_writes_results_and_run_folders(tmp_path):
    _require_fashion_mnist()
    out, results = tmp_path / "runs", tmp_path / "docs" / "RESULTS.md"
    configs = ROOT / "configs"
    spec = _experiment_file(tmp_path, (
        f"  - {{label: LeNet-300-100, config: {configs / 'fashion_lenet_300_100.yaml'}, "
        f"seeds: [0]}}\n"
        f"  - {{label: Conv LeNet, config: {configs / 'fashion_lenet.yaml'}, seeds: [0]}}\n"
        f"  - {{label: Late, config: {configs / 'fashion_lenet_300_100.yaml'}, seeds: [0], "
        f"set: ['imp.rewind=step:3', 'imp.controls=[]']}}\n"), notes="Why 15 epochs: because.")
    cmd = [sys.executable, "-m", "jobs.cli", "experiment", "--local", "--config", spec,
           "--out", str(out), "--results", str(results), "--set", "data.limit_total=300",
           "--set", "imp.num_rounds=2", "--set", "train.epochs=1", "--set", "train.eval_every=2"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    text = results.read_text()
    assert "## LeNet-300-100" in text and "## Conv LeNet" in text and "## Late" in text
    assert "Why 15 epochs: because." in text and "early-stop point" in text
    assert "Protocol: lenet_300_100, layerwise pruning of 20% per round (output 10%)" in text
    assert results.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for label in ("lenet-300-100", "conv-lenet"):
        folder = out / f"{label}-seed0"
        assert runfolder.is_complete(folder)
        assert set(runfolder.series(folder)) == {"imp", "random_reinit", "random_prune"}
    assert set(runfolder.series(out / "late-seed0")) == {"imp"}
    assert runfolder.read_rounds(out / "late-seed0")[1]["start_step"] == 3
    cfg = config_lib.load(out / "lenet-300-100-seed0" / runfolder.CONFIG)
    assert (cfg.train.arch, cfg.imp.scope, cfg.imp.layer_rates) == \
        ("lenet_300_100", "layerwise", {"output": 0.1})
    table_rows = [line for line in text.splitlines() if line.startswith("| 2 |")]
    assert len(table_rows) == 3  # round 2 of each arm; one seed: no difference tables


def _numbers(folder) -> dict:
    """Every per-round number a write-up uses, by series."""
    keys = ("round", "global_sparsity", "val_accuracy", "test_accuracy", "early_stop_step",
            "early_stop_test_accuracy", "steps")
    return {name: [{k: r[k] for k in keys} for r in records]
            for name, records in runfolder.series(folder).items()}


def test_an_experiment_through_the_queue_with_two_workers_equals_local(tmp_path):
    """2 seeds x 2 rounds: one job per seed, taken by two real workers, same numbers as --local."""
    config = tmp_path / "tiny.yaml"
    config.write_text(config_lib.to_yaml(tiny_config(train__eval_every=3,
                                                     imp__controls=["random_reinit"])))
    spec = _experiment_file(tmp_path, f"  - {{label: Tiny, config: {config}, seeds: [0, 1]}}\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    base = [sys.executable, "-m", "jobs.cli", "experiment", "--config", spec]
    local = subprocess.run(base + ["--local", "--out", str(tmp_path / "local"), "--results",
                                   str(tmp_path / "local.md")],
                           cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert local.returncode == 0, local.stderr[-3000:]
    home = tmp_path / "home"
    queued = subprocess.run(base + ["--home", str(home), "--workers", "2", "--results",
                                    str(tmp_path / "queued.md")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert queued.returncode == 0, queued.stderr[-3000:]
    assert "2/2 jobs finished" in queued.stderr
    from jobs import experiments

    [meta] = experiments.list_experiments(home)
    jobs = experiments.statuses(home, meta["id"])
    assert {j["state"] for j in jobs} == {"done"} and sorted(j["seed"] for j in jobs) == [0, 1]
    assert len({j["worker"] for j in jobs}) == 2  # each worker took one
    for job in jobs:
        assert _numbers(home / job["id"]) == _numbers(tmp_path / "local" / f"tiny-seed{job['seed']}")
    assert (experiments.folder(home, meta["id"]) / experiments.RESULTS).is_file()
    # the same write-up from both ways (but for the line naming the command, the wall time and
    # the ticket to ship's export, timed anew)
    def body(path):
        return [line.split(" Its compact export")[0] for line in path.read_text().splitlines()
                if not any(w in line for w in ("Made by", "min", ".png"))]
    assert body(tmp_path / "queued.md") == body(tmp_path / "local.md")
