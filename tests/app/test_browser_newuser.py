"""A new user's path in a real browser, from upload to a shipped ticket (issue 33): a convnet of
their own (written here as a Keras user writes one, not from the project's code) and an .npz;
a refused one-hot file, replaced; a visit to Runs and back; queue, watch, export, download; then,
outside the browser, the ticket evaluated as loaded and its config rerun from the unzipped folder.
"""

from __future__ import annotations

import re
import shutil
import zipfile

import keras
import numpy as np

from benchmarks import _probe as probe

from tests.app.test_browser import DOCS, OUTPUT, _choose, _page, browser  # noqa: F401  (a fixture)
from tests.jobs.test_hardening_input import ROOT, lottery
from tests.user_models import digits


def users_files(folder) -> dict[str, object]:
    """What the user brings: a convnet saved with model.save, their data with integer labels,
    and the same data one-hot encoded (as many Keras tutorials prepare it)."""
    x, y = digits(200)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ], name="convnet")
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(folder / "convnet.keras")
    np.savez(folder / "fmnist.npz", x_train=x, y_train=y)
    np.savez(folder / "fmnist_onehot.npz", x_train=x, y_train=np.eye(10)[y])
    return {"x": x, "y": y}


def test_a_new_user_uploads_queues_exports_and_reruns_their_own_model(browser, tmp_path):
    from playwright.sync_api import expect

    data = users_files(tmp_path)
    with probe.served(tmp_path / "home", tmp_path / "serve.log") as url:
        page = _page(browser)
        page.goto(url)
        _choose(page, "Architecture", "my own model (.keras)")
        page.get_by_text("my own data (.npz / .csv)").click()
        uploader = page.locator("[data-testid=stFileUploader]")
        uploader.filter(has_text="Keras model").locator("input[type=file]").set_input_files(
            tmp_path / "convnet.keras")
        expect(page.get_by_text("are checked against your data once it is uploaded")) \
            .to_be_visible()  # the model's summary, before any data
        data_input = uploader.filter(has_text="Data (.npz").locator("input[type=file]")
        data_input.set_input_files(tmp_path / "fmnist_onehot.npz")
        expect(page.get_by_text("Your data file: y_train of fmnist_onehot.npz has shape")) \
            .to_be_visible()
        data_input.set_input_files(tmp_path / "fmnist.npz")
        errors = page.locator("[data-testid=stAlertContentError]")
        fit = page.get_by_text("input (8, 8, 1), 10 classes, output probabilities")
        seen = set()
        for _ in range(400):  # sample the page while it checks the new file
            seen |= set(errors.all_inner_texts())
            if fit.is_visible():
                break
            page.wait_for_timeout(150)
        assert not [text for text in seen if "onehot" not in text], seen  # only the old refusal
        expect(fit).to_be_visible()
        expect(page.get_by_text("fmnist.npz: examples of shape (8, 8, 1)")).to_be_visible()
        expect(errors).to_have_count(0)
        for label in ("Pruning rounds (after the dense round 0)", "Epochs per round"):
            field = page.get_by_label(label, exact=True)
            field.fill("1")
            field.press("Tab")
        page.get_by_role("heading", name="Launch a run").click()
        expect(page.get_by_text(re.compile("^Checking "))).to_have_count(0)
        page.screenshot(path=str(DOCS / "newuser_launch.png"))

        page.get_by_role("link", name="Runs").click()
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        page.get_by_role("link", name="Launch").click()
        expect(page.get_by_text("Using convnet.keras, uploaded earlier")).to_be_visible()
        expect(page.get_by_text("Using fmnist.npz, uploaded earlier")).to_be_visible()
        page.get_by_role("button", name="Queue run").click()
        expect(page.get_by_text("Queued convnet.")).to_be_visible()
        page.get_by_role("link", name="Watch convnet").click()

        expect(page.get_by_text("Winning ticket").first).to_be_visible()
        export = page.get_by_role("button", name="Export (Keras, compact, TFLite, int8)")
        expect(export).to_be_visible(timeout=240_000)
        export.click()
        expect(page.get_by_role("button", name=re.compile(r"^tflite-int8 \("))).to_be_visible(
            timeout=240_000)
        expect(page.get_by_role("button", name="Exporting…")).to_have_count(0)
        page.screenshot(path=str(DOCS / "newuser_exported.png"), full_page=True)
        with page.expect_download() as info:
            page.get_by_role("button", name="Download the winning ticket (.zip)").click()
        assert re.fullmatch(r"convnet-ticket-r1\.zip", info.value.suggested_filename)
        zipped = OUTPUT / info.value.suggested_filename
        info.value.save_as(zipped)

    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(unzipped)
    ticket = keras.saving.load_model(unzipped / "winning_ticket_model.keras")
    loss, accuracy = ticket.evaluate(data["x"], data["y"], verbose=0)  # no compile call
    assert loss > 0 and 0 <= accuracy <= 1
    shutil.copyfile(tmp_path / "fmnist.npz", unzipped / "fmnist.npz")
    result = lottery("run", "--config", "config.yaml", "--out", "rerun", cwd=unzipped,
                     env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert (unzipped / "rerun" / "winning_ticket_model.keras").is_file()
