"""Image folders with hostile entries, and the original plan's configs running as written."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from PIL import Image

from lottery_engine import pipeline
from lottery_engine import preflight
from lottery_engine.config import load as config_lib
from lottery_engine.data import image_folder
from lottery_engine.foundations import runfolder

from tests.conftest import ROOT, tiny_config
from tests.jobs.test_hardening_input import lottery
from tests.data.test_images import make_flat, make_subfolders, private_cache  # noqa: F401 (autouse)


def test_loops_dangling_links_and_non_images_are_skipped_and_named(tmp_path, caplog):
    folder = make_subfolders(tmp_path / "sub", per_class=10)
    os.symlink("loop.png", folder / "a" / "loop.png")  # a link to itself: ELOOP on stat
    os.symlink(tmp_path / "nowhere.png", folder / "b" / "dangling.png")
    (folder / "a" / "notes.txt").write_text("not an image")
    (folder / "stray.png").write_bytes(b"outside every class folder")
    os.symlink(folder / "loopdir", folder / "loopdir")
    caplog.set_level(logging.INFO, "lottery")

    listing = image_folder.list_folder(folder)
    assert listing.classes == ["a", "b"] and len(listing.files) == 20
    reasons = "\n".join(listing.skipped)
    assert "a/loop.png: Too many levels of symbolic links" in reasons
    assert "b/dangling.png: No such file or directory" in reasons
    assert "a/notes.txt: not a .jpg, .jpeg or .png file" in reasons
    assert "stray.png: not inside a class subfolder" in reasons
    assert "loopdir: Too many levels of symbolic links" in reasons

    images, labels, classes = image_folder.load(folder, (16, 16), 3)
    assert images.shape == (20, 16, 16, 3) and np.bincount(labels).tolist() == [10, 10]
    assert "skipped 5 file(s)" in caplog.text and "a/loop.png" in caplog.text


def test_a_run_on_a_folder_with_a_symlink_loop_does_not_trace_back(tmp_path):
    folder = make_flat(tmp_path / "flat", per_class=12)
    os.symlink("cat.loop.jpg", folder / "cat.loop.jpg")
    out = tmp_path / "out"
    result = lottery("run", "--config", "configs/quickstart.yaml", "--out", str(out),
                     "--set", "data.source=folder", "--set", f"data.data_dir={folder}",
                     "--set", "data.image_size=[16, 16]", "--set", "data.channels=3",
                     "--set", "train.epochs=1", "--set", "imp.num_rounds=1",
                     env={"LOTTERY_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    assert "cat.loop.jpg: Too many levels of symbolic links" in (out / runfolder.LOG).read_text()


def test_a_decompression_bomb_is_refused_by_its_pixel_count(tmp_path, caplog):
    folder = make_flat(tmp_path / "flat", per_class=12)
    Image.new("1", (9500, 9500)).save(folder / "cat.bomb.png")  # 90 Mpx in a few kB
    assert (folder / "cat.bomb.png").stat().st_size < 100_000
    caplog.set_level(logging.INFO, "lottery")
    images, _, _ = image_folder.load(folder, (16, 16), 3)
    assert len(images) == 26  # 24 JPEGs + two PNGs; the corrupt JPEG and the bomb are out
    assert ("cat.bomb.png: 9500x9500 is 90,250,000 pixels, over the limit of 89,478,485"
            in caplog.text)


# --- the original plan's configs ---------------------------------------------------------------

def test_plan_lenet_config_runs_on_an_image_folder_into_its_results_dir(tmp_path):
    folder = make_flat(tmp_path / "flat", per_class=12)
    result = lottery("run", "--config", str(ROOT / "configs" / "plan_imp_lenet.yaml"),
                     "--set", f"data.data_dir={folder}", "--set", "data.image_size=[16, 16]",
                     "--set", "train.epochs_per_round=1", "--set", "imp.num_rounds=2",
                     "--set", "imp.prunable_layers=[conv_2, dense_1]",
                     cwd=tmp_path, env={"LOTTERY_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    [run] = (tmp_path / "results" / "imp_lenet").iterdir()  # results_dir, relative to the cwd
    assert run.name.startswith("imp_lenet-")
    records = runfolder.read_rounds(run)
    assert [r["round"] for r in records] == [0, 1, 2]
    assert set(records[2]["layer_sparsity"]) == {"conv_2", "dense_1"}  # prunable_layers
    frozen = config_lib.load(run / runfolder.CONFIG)
    assert frozen.train.epochs == 1 and frozen.imp.prune_rate == 0.2  # today's spelling


def test_plan_vgg16_config_runs_with_its_base_flops_and_hybrid_metrics(tmp_path, caplog):
    folder = make_flat(tmp_path / "flat", per_class=12)
    metrics = tmp_path / "hybrid" / "test_metrics.json"
    metrics.parent.mkdir()
    runfolder.write_json(metrics, {"layer": "block3_conv3", "accuracy": 0.75, "f1": 0.7,
                                   "flops": 123_456_789})
    cfg = preflight.load(ROOT / "configs" / "plan_imp_vgg16.yaml", [
        f"data.data_dir={folder}", "data.image_size=[32, 32]", "run.device=cpu",
        "train.weights=none", "train.epochs_per_round=1", "imp.num_rounds=1",
        f"report.hybrid_pipeline_metrics_path={metrics}"])
    caplog.set_level(logging.WARNING, "lottery")
    summary = pipeline.execute(cfg, tmp_path / "vgg")
    assert summary["rounds"][0]["layer_flops"]["vgg16"] == 14_714_734_080
    assert "is about VGG16's parameter count" in caplog.text and "10,022,289,408" not in \
        caplog.text  # the computed figure is at 32x32, not 128x128
    assert "hybrid: block3_conv3 + RandomForest" in (tmp_path / "vgg" /
                                                     runfolder.REPORT_HTML).read_text()


def test_early_stopping_keeps_the_weights_of_the_lowest_validation_loss(tmp_path):
    cfg = tiny_config(train__epochs=6, train__early_stopping=True, train__patience=1,
                      train__learning_rate=0.02, imp__num_rounds=1)
    for record in pipeline.execute(cfg, tmp_path / "run")["rounds"]:
        history = record["history"]["val_loss"]
        assert 1 <= record["epochs"] <= 6 and len(history) == record["epochs"]
        assert record["val_loss"] == pytest.approx(min(history), rel=1e-4)
