"""The Launch page with the user's own model and data, through Streamlit's AppTest.

Uploads go through AppTest's own file_uploader (`set_value((name, bytes, mime))`), so the page
saves, summarises (a real `python -m lottery_engine.model_summary` subprocess) and queues exactly as
it does for a browser upload. Only the test imports Keras, to make the models.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from keras import layers
from streamlit.testing.v1 import AppTest

from app import user_files
from app.lab import plain
from jobs import queue
from lottery_engine.foundations import runfolder

from tests.app.test_app import app, button
from tests.user_models import lambda_model, save_digits_npz

OWN_MODEL, OWN_DATA = "my own model (.keras)", "my own data (.npz / .csv)"


def keras_bytes(model: keras.Model, folder: Path) -> bytes:
    path = folder / f"{model.name}.keras"
    model.save(path)
    return path.read_bytes()


def small_model(classes: int = 10) -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, name="conv")(inputs)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, layers.Dense(classes, name="out")(x), name="small")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    """A model that fits 10-class 8x8x1 digits, one with 3 outputs, one with a Lambda, the data."""
    folder = tmp_path_factory.mktemp("user_files")
    keras.utils.set_random_seed(0)
    return {"small": keras_bytes(small_model(), folder),
            "three": keras_bytes(small_model(3), folder),
            "lambda": keras_bytes(lambda_model(), folder),
            "digits": save_digits_npz(folder / "digits.npz", limit=300).read_bytes()}


def own_chosen(at: AppTest) -> AppTest:
    """Pick "my own model" and "my own data", which shows their uploaders."""
    next(s for s in at.selectbox if s.label == "Architecture").set_value(OWN_MODEL)
    at.radio[0].set_value(OWN_DATA)
    return at.run()


def choose_own(at: AppTest, model: bytes, data: bytes) -> AppTest:
    """Pick "my own model" and "my own data" and upload both, as a user does in the browser."""
    own_chosen(at)
    at.file_uploader(key="model_upload").set_value(("mine.keras", model, "application/zip"))
    at.file_uploader(key="data_upload").set_value(("digits.npz", data, "application/zip"))
    return at.run()


def test_an_uploaded_model_is_summarised_then_queued_with_its_file(files, tmp_path,
                                                                    monkeypatch):
    at = choose_own(app(tmp_path, monkeypatch), files["small"], files["digits"])
    assert not at.exception and not at.error
    model_column = at.columns[0]
    rows = model_column.dataframe[0].value.to_dict("records")
    assert rows == [
        {"layer": "conv", "type": "Conv2D", "parameters": 40,
         "pruned": "conv: 20% per round (global)"},
        {"layer": "out", "type": "Dense", "parameters": 1450,
         "pruned": "out: 20% per round (global)"}]
    caption = model_column.caption[0].value
    assert "1,490 parameters" in caption and "1,476 of them prunable" in caption
    assert "output logits" in caption and "10 classes" in caption
    assert queue.list_jobs(tmp_path) == []  # shown before anything is queued

    saved = tmp_path / "models" / hashlib.sha256(files["small"]).hexdigest()[:16] / "mine.keras"
    assert saved.read_bytes() == files["small"]
    assert at.text_input(key="launch.run.name").value == "mine"  # named after the user's model
    at.button[0].click().run()
    assert not at.error and len(at.dataframe) == 1  # the summary once, above the button
    assert [link.proto.label for link in at.get("page_link")][-1] == "Watch mine"
    jobs = queue.list_jobs(tmp_path)
    assert len(jobs) == 1 and at.success[0].value == "Queued mine."  # the model's name
    frozen = yaml.safe_load((tmp_path / jobs[0]["id"] / runfolder.CONFIG).read_text())
    assert frozen["train"]["arch"] == "file"
    assert (tmp_path / jobs[0]["id"] / frozen["train"]["model_file"]).read_bytes() == \
        files["small"]
    assert frozen["data"]["source"] == "arrays"
    assert Path(frozen["data"]["path"]).parent.parent == (tmp_path / "data").resolve()
    assert Path(frozen["data"]["path"]).name == "digits.npz"  # the user's name for it


def test_a_refused_model_is_explained_next_to_it_and_nothing_is_queued(files, tmp_path,
                                                                       monkeypatch):
    at = choose_own(app(tmp_path, monkeypatch), files["lambda"], files["digits"])
    refusal = at.columns[0].error[0].value  # under the model's uploader
    assert "Your model: layer 'halve' of mine.keras" in refusal and "Lambda" in refusal
    at.button[0].click().run()
    assert len(at.error) == 1 and queue.list_jobs(tmp_path) == []

    at.file_uploader(key="model_upload").set_value(("three.keras", files["three"],
                                                    "application/zip")).run()
    refusal = at.columns[0].error[0].value  # model_summary's own refusal, from the subprocess
    assert "Your model: the model's output has shape (None, 3)" in refusal
    assert "10 classes" in refusal and not at.columns[0].dataframe
    at.button[0].click().run()
    assert len(at.error) == 1 and queue.list_jobs(tmp_path) == []


def yaml_config(train: dict, data_path: Path) -> str:
    return yaml.safe_dump({"run": {"name": "pasted"},
                           "data": {"source": "arrays", "path": str(data_path)},
                           "train": {"epochs": 1, **train}, "imp": {"num_rounds": 1}})


def test_yaml_tab_refuses_a_factory_and_summarises_a_model_file(files, tmp_path, monkeypatch):
    data = user_files.save_bytes(files["digits"], tmp_path / "mine", "digits.npz")
    model = user_files.save_bytes(files["small"], tmp_path / "mine", "small.keras")
    at = app(tmp_path, monkeypatch)
    factory = {"arch": "factory", "factory": "tests.user_models:factory"}
    at.text_area(key="yaml_text").set_value(yaml_config(factory, data)).run()
    button(at, "Queue this config").click().run()
    assert len(at.error) == 1 and "\n" not in at.error[0].value
    assert at.error[0].value.startswith("Not queued: train.arch: factory runs your own")
    assert "lottery submit --config FILE" in at.error[0].value
    assert queue.list_jobs(tmp_path) == []

    at.text_area(key="yaml_text").set_value(
        yaml_config({"arch": "file", "model_file": str(model)}, data)).run()
    button(at, "Queue this config").click().run()
    assert not at.error
    assert [r["layer"] for r in at.dataframe[0].value.to_dict("records")] == ["conv", "out"]
    assert [j["name"] for j in queue.list_jobs(tmp_path)] == ["pasted"]


def test_an_upload_is_saved_once_by_content(tmp_path):
    first = user_files.save_bytes(b"same bytes", tmp_path / "models", "net.keras")
    again = user_files.save_bytes(b"same bytes", tmp_path / "models", "net.keras")
    other = user_files.save_bytes(b"other bytes", tmp_path / "models", "net.keras")
    assert first == again != other and first.name == other.name == "net.keras"
    assert first.parent.name == hashlib.sha256(b"same bytes").hexdigest()[:16]
    assert sorted(p.relative_to(tmp_path / "models") for p in (tmp_path / "models").rglob("*")
                  if p.is_file()) == sorted(  # no temporary file left behind
        p.relative_to(tmp_path / "models") for p in (first, other))


def onehot_npz(digits: bytes, folder: Path) -> bytes:
    """The digits with one-hot labels, the way a Keras tutorial prepares them: refused."""
    path = folder / "digits.npz"
    path.write_bytes(digits)
    with np.load(path) as arrays:
        x, y = arrays["x_train"], arrays["y_train"]
    np.savez(folder / "onehot.npz", x_train=x, y_train=np.eye(10, dtype="float32")[y])
    return (folder / "onehot.npz").read_bytes()


def test_a_refused_upload_is_named_as_uploaded_and_its_replacement_shows_no_error(
        files, tmp_path, monkeypatch):
    at = own_chosen(app(tmp_path, monkeypatch))
    at.file_uploader(key="model_upload").set_value(("mine.keras", files["small"],
                                                    "application/zip"))
    onehot = onehot_npz(files["digits"], tmp_path)
    at.file_uploader(key="data_upload").set_value(("fmnist_onehot.npz", onehot,
                                                   "application/zip")).run()
    [refusal] = at.columns[1].error  # under the data uploader, naming the user's file
    assert refusal.value.startswith("Cannot be queued: Your data file: y_train of "
                                    "fmnist_onehot.npz has shape (300, 10)")
    assert hashlib.sha256(onehot).hexdigest()[:16] not in refusal.value
    assert "config key `data.path`" in [c.value for c in at.columns[1].caption]

    at.file_uploader(key="data_upload").set_value(None).run()  # the browser removes the old file
    assert not at.error  # ... before the new one arrives: no file yet is no error
    at.file_uploader(key="data_upload").set_value(("fmnist.npz", files["digits"],
                                                   "application/zip")).run()
    assert not at.error and at.columns[0].dataframe
    assert not any(c.value.startswith("Checking") for c in at.caption)  # only the result stays


def test_own_data_without_a_file_asks_for_an_upload_in_plain_words(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    at.radio[0].set_value(OWN_DATA)
    at.run()
    assert not at.error  # nothing uploaded yet is not an error
    at.button[0].click().run()
    [refusal] = at.error
    assert refusal.value == ("Not queued: Upload your data: a .npz file with x_train and y_train "
                             "(x_test and y_test if you have them), or a .csv file with a header "
                             "row and a label column.")
    assert "config key `data.path`" in [c.value for c in at.caption]
    assert queue.list_jobs(tmp_path) == []


def test_the_launch_form_keeps_values_and_uploads_across_pages_until_queued_or_reset(
        files, tmp_path, monkeypatch):
    at = choose_own(app(tmp_path, monkeypatch), files["small"], files["digits"])
    epochs = next(n for n in at.number_input if n.label == "Epochs per round")
    epochs.set_value(3)
    at.text_input(key="launch.run.name").set_value("kept")
    at.run()
    at.switch_page("views/runs.py").run()
    at.switch_page("views/launch.py").run()  # back: the uploaders themselves are empty again
    assert not at.exception and not at.error
    assert next(n for n in at.number_input if n.label == "Epochs per round").value == 3
    assert at.text_input(key="launch.run.name").value == "kept"
    captions = [c.value for c in at.caption]
    assert "Using mine.keras, uploaded earlier; upload another file to replace it." in captions
    assert "Using digits.npz, uploaded earlier; upload another file to replace it." in captions
    assert at.columns[0].dataframe  # the kept model is summarised again
    next(b for b in at.button if b.label == "Queue run").click().run()
    [job] = queue.list_jobs(tmp_path)
    frozen = yaml.safe_load((tmp_path / job["id"] / runfolder.CONFIG).read_text())
    assert (job["name"], frozen["train"]["epochs"]) == ("kept", 3)
    assert (tmp_path / job["id"] / frozen["train"]["model_file"]).read_bytes() == files["small"]

    at.run()  # queued: the next visit starts afresh
    assert next(s for s in at.selectbox if s.label == "Architecture").value != OWN_MODEL
    assert not any(c.value.startswith("Using ") for c in at.caption)

    at = choose_own(app(tmp_path, monkeypatch), files["small"], files["digits"])
    next(b for b in at.button if b.label == "Reset form").click().run()
    assert next(n for n in at.number_input if n.label == "Epochs per round").value != 3
    assert next(s for s in at.selectbox if s.label == "Architecture").value != OWN_MODEL
    next(s for s in at.selectbox if s.label == "Architecture").set_value(OWN_MODEL).run()
    assert not any(c.value.startswith("Using ") for c in at.caption)  # the uploads are gone


def test_the_model_is_summarised_before_its_data_and_the_data_alone_as_it_arrives(
        files, tmp_path, monkeypatch):
    at = own_chosen(app(tmp_path, monkeypatch))
    at.file_uploader(key="model_upload").set_value(("mine.keras", files["small"],
                                                    "application/zip")).run()
    assert not at.error  # no data yet: not an error, and the model is described already
    assert [r["layer"] for r in at.columns[0].dataframe[0].value.to_dict("records")] == [
        "conv", "out"]
    assert at.columns[0].caption[0].value.endswith(
        "its input (8, 8, 1) and 10 outputs (logits) are checked against your data once it is "
        "uploaded.")

    at = own_chosen(app(tmp_path, monkeypatch))  # the data first, its model still to come
    at.file_uploader(key="data_upload").set_value(("digits.npz", files["digits"],
                                                   "application/zip")).run()
    assert not at.error and not at.columns[0].dataframe
    assert at.columns[1].caption[0].value == plain(
        "digits.npz: examples of shape (8, 8, 1), 10 classes; rows: train 300; the run splits "
        "val and test off train.")
