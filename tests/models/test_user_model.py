"""The user's own network: a .keras file or a factory, on the user's .npz, through the whole run."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from lottery_engine import pipeline, preflight
from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError
from lottery_engine.export import downloads
from lottery_engine.foundations import runfolder
from lottery_engine.lottery.trainer import Trainer
from lottery_engine.models import keras_file
from lottery_engine.pruning import prunable
from lottery_engine.pruning.masks import load_masks
from tests import user_models

KERNELS = ["conv", "block/conv", "hidden", "logits"]


def user_config(model_file: Path, data: Path, **train) -> config_lib.Config:
    """The config with its model file and data checked, as `lottery run` and submit check it."""
    return preflight.from_dict({
        "run": {"name": "user", "seed": 5},
        "data": {"source": "arrays", "path": str(data)},
        "train": {"arch": "file", "model_file": str(model_file), "epochs": 2, "batch_size": 32,
                  **train},
        "imp": {"prune_rate": 0.3, "num_rounds": 2},
    })


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("user")
    user_models.functional_model().save(folder / "net.keras")
    return folder / "net.keras", user_models.save_digits_npz(folder / "digits.npz")


@pytest.fixture(scope="module")
def user_run(files, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "user"
    pipeline.execute(user_config(*files), run_dir)
    return run_dir


def test_exactly_the_dense_and_conv_kernels_are_pruned_names_qualified_where_ambiguous(files):
    model = keras.saving.load_model(files[0])
    assert list(prunable.select(model, None)) == KERNELS
    assert list(prunable.select(model, ["block/*", "log*"])) == ["block/conv", "logits"]
    with pytest.raises(ConfigError, match=r"imp.prunable_layers: 'blk\*' matches no prunable "
                                          r"layer of this model. Prunable layers: conv, block/conv"):
        prunable.select(model, ["blk*"])


def test_a_user_model_runs_two_rounds_from_an_npz(files, user_run):
    records = runfolder.read_rounds(user_run)
    assert [r["round"] for r in records] == [0, 1, 2]
    masks = load_masks(user_run / runfolder.mask_file(2))
    assert list(masks) == KERNELS
    assert records[2]["global_sparsity"] == pytest.approx(1 - 0.7 ** 2, abs=1e-3)
    assert set(records[2]["layer_flops"]) == set(KERNELS)
    assert records[2]["layer_flops"]["block/conv"] < records[0]["layer_flops"]["block/conv"]
    # the model travels in the folder, named by content: nothing depends on the original path
    frozen = config_lib.load_run(user_run)
    assert Path(frozen.train.model_file).parent == user_run
    assert Path(frozen.train.model_file).name == keras_file.content_name(files[0])


def test_theta0_is_the_files_weights(files, user_run):
    original = keras.saving.load_model(files[0])
    model = keras.saving.load_model(files[0])
    model.load_weights(user_run / runfolder.REWIND)
    for saved, theirs in zip(model.get_weights(), original.get_weights()):
        np.testing.assert_array_equal(saved, theirs)


def test_the_ticket_is_a_plain_keras_model_with_exact_zeros_and_its_constraint(user_run):
    ticket = runfolder.read_json(user_run / runfolder.TICKET_JSON)
    assert ticket["output"] == "logits"
    assert ticket["reloaded_val_accuracy"] == pytest.approx(ticket["logged_val_accuracy"],
                                                            abs=1e-6)
    model = keras.saving.load_model(user_run / runfolder.TICKET_MODEL)  # no custom objects
    masks = load_masks(user_run / runfolder.TICKET_MASK)
    kernels = {k.name: k.variable.numpy() for k in prunable.all_kernels(model)}
    for name, mask in masks.items():
        assert mask.min() == 0.0
        assert np.all(kernels[name][mask == 0] == 0.0)
    norms = np.sqrt((kernels["hidden"] ** 2).sum(axis=0))
    assert norms.max() <= 0.5 + 1e-5  # the user's max-norm still holds after pruning


def test_init_fresh_is_reproducible_and_not_the_files_weights(files):
    from lottery_engine.data import dataset as data_lib

    cfg = user_config(*files, init="fresh")
    dataset = data_lib.load(cfg.data, cfg.run.seed)
    weights = [Trainer(cfg, dataset, Path("unused")).manager.rewind_weights
               for _ in range(2)]
    original = keras.saving.load_model(files[0]).get_weights()
    for a, b, c in zip(*weights, original):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, c) for a, c in zip(weights[0], original))


def test_a_lambda_layer_is_refused_in_one_line_before_anything_is_written(tmp_path, files):
    user_models.lambda_model().save(tmp_path / "lam.keras")
    with pytest.raises(ConfigError) as caught:
        user_config(tmp_path / "lam.keras", files[1])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("train.model_file: layer 'halve' of lam.keras is a Lambda layer")


def test_data_that_does_not_fit_the_model_is_refused_before_a_run_folder_exists(tmp_path, files):
    from jobs import cli

    np.savez(tmp_path / "rows.npz", x_train=np.zeros((60, 12), np.float32),
             y_train=np.arange(60) % 3)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(config_lib.to_yaml(user_config(files[0], files[1])).replace(
        str(files[1]), str(tmp_path / "rows.npz")))
    out = tmp_path / "run"
    assert cli.main(["run", "--config", str(cfg), "--out", str(out)]) == 2
    assert not out.exists()


def test_a_factory_model_with_a_registered_custom_layer(tmp_path, files):
    cfg = config_lib.from_dict({
        "run": {"name": "factory", "seed": 1},
        "data": {"source": "arrays", "path": str(files[1])},
        "train": {"arch": "factory", "factory": "tests.user_models:factory", "epochs": 1},
        "imp": {"num_rounds": 1, "controls": ["random_reinit"]},
    })
    summary = pipeline.execute(cfg, tmp_path / "run")
    assert list(load_masks(tmp_path / "run" / runfolder.mask_file(1))) == ["dense", "out"]
    assert summary["ticket"]["output"] == "probabilities"
    model = keras.saving.load_model(tmp_path / "run" / runfolder.TICKET_MODEL)
    assert isinstance(model.get_layer("gain"), user_models.Gain)


def test_find_ticket_on_an_in_memory_model_lands_in_the_dashboard(tmp_path, monkeypatch):
    from jobs import queue
    from lottery_engine import find_ticket
    from tests.app.test_app import app, figures

    monkeypatch.setenv("LOTTERY_HOME", str(tmp_path / "home"))
    x, y = user_models.digits(300)
    result = find_ticket(user_models.functional_model(seed=9), (x, y), num_rounds=1, epochs=1,
                         prune_rate=0.5, seed=2)
    assert result.run_dir.parent == tmp_path / "home"
    assert [r["round"] for r in result.records] == [0, 1]
    assert result.ticket_path.is_file()
    kernel = result.model.get_layer("hidden").kernel.numpy()
    assert np.mean(kernel == 0) > 0.3
    [listed] = queue.list_jobs(tmp_path / "home")  # a finished run folder in the home
    assert (listed["id"], listed["state"], listed["name"]) == (
        result.run_dir.name, queue.DONE, "user_net")
    at = app(tmp_path / "home", monkeypatch, "views/run.py", job=listed["id"])
    assert not at.exception and len(figures(at)) >= 4
    with pytest.raises(ConfigError, match=r"find_ticket\(name=...\): ambiguous"):
        find_ticket(user_models.functional_model(), (x, y), out=tmp_path / "x", name="a")
    with pytest.raises(ConfigError, match=r"unknown setting. Did you mean 'num_rounds'"):
        find_ticket(user_models.functional_model(), (x, y), out=tmp_path / "y", num_round=2)


def test_a_csv_with_string_labels_keeps_its_class_names_in_the_run_and_the_ticket(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris()
    names = np.array(["virginica", "setosa", "versicolor"])[iris.target]
    rows = ["a,b,c,d,species"] + [",".join(f"{v:.1f}" for v in x) + f",{label}"
                                  for x, label in zip(iris.data, names)]
    (tmp_path / "iris.csv").write_text("\n".join(rows) + "\n")
    keras.utils.set_random_seed(0)
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                      keras.layers.Dense(3, activation="softmax")]).save(tmp_path / "mlp.keras")
    cfg = config_lib.from_dict({
        "data": {"source": "csv", "path": str(tmp_path / "iris.csv"), "label": "species"},
        "train": {"arch": "file", "model_file": str(tmp_path / "mlp.keras"), "epochs": 2,
                  "batch_size": 16},
        "imp": {"num_rounds": 1}})
    pipeline.execute(cfg, tmp_path / "run")
    classes = ["setosa", "versicolor", "virginica"]
    assert runfolder.read_json(tmp_path / "run" / runfolder.CLASSES) == classes
    with zipfile.ZipFile(io.BytesIO(downloads.ticket_zip(tmp_path / "run"))) as archive:
        assert archive.read(runfolder.CLASSES) == (tmp_path / "run" / runfolder.CLASSES).read_bytes()


def test_a_queued_user_model_is_copied_into_its_job_folder(tmp_path, files, monkeypatch):
    from jobs import queue

    monkeypatch.chdir(files[0].parent)
    cfg = user_config(Path(files[0].name), Path(files[1].name))  # relative to this folder
    job_id = queue.submit(cfg, tmp_path)
    frozen = (tmp_path / job_id / runfolder.CONFIG).read_text()
    assert f"model_file: {keras_file.content_name(files[0])}\n" in frozen
    assert f"path: {files[1]}\n" in frozen  # made absolute where it was submitted
    assert config_lib.load_run(tmp_path / job_id).train.model_file == str(
        tmp_path / job_id / keras_file.content_name(files[0]))


def test_relative_paths_in_a_config_file_are_read_beside_it_and_stored_absolute(tmp_path, files,
                                                                               monkeypatch):
    from jobs import queue

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "net.keras").write_bytes(files[0].read_bytes())
    (folder / "digits.npz").write_bytes(files[1].read_bytes())
    (folder / "run.yaml").write_text(
        "data: {source: arrays, path: digits.npz}\n"
        "train: {arch: file, model_file: net.keras}\n")
    monkeypatch.chdir(tmp_path)  # submitted from another folder than the config's
    cfg = config_lib.load(folder / "run.yaml")
    assert cfg.data.path == str(folder / "digits.npz")
    job_id = queue.submit(cfg, tmp_path / "home")
    assert f"path: {folder / 'digits.npz'}\n" in (tmp_path / "home" / job_id / "config.yaml"
                                                  ).read_text()


PASS_THROUGH = {"dropout": lambda: [keras.layers.Dropout(0.0)],
                "identity": lambda: [keras.layers.Identity()],
                "reshape": lambda: [keras.layers.Reshape((10,))],
                "flatten": lambda: [keras.layers.Flatten()],
                "linear activation": lambda: [keras.layers.Activation("linear")],
                "noise and dropout": lambda: [keras.layers.GaussianNoise(0.1),
                                              keras.layers.Dropout(0.5)],
                "nested block": lambda: [keras.Sequential([keras.layers.Dropout(0.2)])]}


@pytest.mark.parametrize("after", PASS_THROUGH.values(), ids=PASS_THROUGH)
def test_a_softmax_is_found_through_layers_that_pass_its_values_on(after):
    from lottery_engine.models import builders as models

    assert models.is_logits(user_models.softmax_then(*after())) is False


def test_a_softmax_behind_a_layer_that_changes_it_is_refused_asking_for_train_loss():
    from lottery_engine.models import builders as models

    model = user_models.softmax_then(keras.layers.Rescaling(2.0, name="double"))
    with pytest.raises(ConfigError) as caught:
        models.is_logits(model)
    assert str(caught.value) == (
        "train.loss: the output layer 'double' (Rescaling) comes after the softmax of 'probs', "
        "so whether the model outputs logits or probabilities is not clear; set train.loss: "
        "logits or probabilities.")
    assert models.is_logits(model, "probabilities") is False


def test_softmax_then_dropout_from_a_file_trains_on_the_real_cross_entropy(tmp_path, files):
    from lottery_engine import model_summary
    from lottery_engine.models import builders as models
    from lottery_engine.training import keras_fit

    user_models.softmax_then(keras.layers.Dropout(0.0, name="drop")).save(tmp_path / "p.keras")
    cfg = user_config(tmp_path / "p.keras", files[1])
    assert model_summary.summarize(cfg)["output"] == "probabilities"
    model = models.build(cfg.train, (8, 8, 1), 10)
    keras_fit.compile_model(model, cfg.train, models.is_logits(model, cfg.train.loss))
    x, y = user_models.digits(64)
    probabilities = model.predict(x, verbose=0)
    cross_entropy = -np.mean(np.log(probabilities[np.arange(len(y)), y]))
    assert model.evaluate(x, y, verbose=0)[0] == pytest.approx(cross_entropy, rel=1e-4)


def test_a_queued_runs_ticket_zip_names_the_users_files_and_reruns_from_its_folder(tmp_path,
                                                                                   files):
    """Stored as the dashboard stores uploads (by hash, under the user's own name) and queued:
    the zip's config, README and the report name fmnist_convnet.keras and fmnist.npz, never a
    hash or a server folder, and `lottery run --config config.yaml` in the unzipped folder,
    with the data file beside it, gives the same rounds (same config and seed on CPU)."""
    from jobs import queue

    from tests.jobs_helpers import start_worker
    from tests.jobs.test_hardening_input import ROOT, lottery

    home = tmp_path / "home"
    model, data = home / "models/0a1b/fmnist_convnet.keras", home / "data/2c3d/fmnist.npz"
    for stored, original in ((model, files[0]), (data, files[1])):
        stored.parent.mkdir(parents=True)
        stored.write_bytes(original.read_bytes())
    job_id = queue.submit(user_config(model, data, epochs=1), home)
    assert start_worker(home, "--once").wait(300) == 0
    run_dir = home / job_id
    assert "Network: fmnist_convnet.keras (your model) on fmnist.npz." in (
        run_dir / runfolder.REPORT_HTML).read_text()

    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(io.BytesIO(downloads.ticket_zip(run_dir))) as archive:
        archive.extractall(unzipped)
    config = (unzipped / runfolder.CONFIG).read_text()
    assert "model_file: fmnist_convnet.keras\n" in config and "path: fmnist.npz\n" in config
    assert str(home) not in config and "digits" not in config
    assert (unzipped / "fmnist_convnet.keras").read_bytes() == files[0].read_bytes()
    readme = (unzipped / downloads.README).read_text()
    assert "- `fmnist_convnet.keras`: your model" in readme and "`fmnist.npz` beside" in readme

    (unzipped / "fmnist.npz").write_bytes(files[1].read_bytes())
    result = lottery("run", "--config", "config.yaml", "--out", "rerun", cwd=unzipped,
                     env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    again = runfolder.read_rounds(unzipped / "rerun")
    assert [(r["val_accuracy"], r["global_sparsity"]) for r in again] == [
        (r["val_accuracy"], r["global_sparsity"]) for r in runfolder.read_rounds(run_dir)]
