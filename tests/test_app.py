"""The dashboard through Streamlit's AppTest, over job folders made by a real worker."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from app.lab import plain
from jobs import queue
from lottery_engine import config as config_lib
from lottery_engine import runfolder

from .conftest import ROOT
from .jobs_helpers import start_worker, stop, tiny_yaml, wait_for, wait_state

APP = str(ROOT / "app" / "streamlit_app.py")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A home with one finished job, run by a real worker (`--once`)."""
    home = tmp_path_factory.mktemp("home")
    job_id = queue.submit(tiny_yaml("finished", extra="imp: {num_rounds: 2, controls: "
                                    "[random_reinit]}").replace(
        "imp: {prune_rate: 0.2, num_rounds: 2, target_sparsity: 0.99}\n", ""), home)
    worker = start_worker(home, "--once")
    worker.wait(300)
    assert queue.get(job_id, home)["state"] == "done"
    return home, job_id


def app(home, monkeypatch, page=None, **query) -> AppTest:
    monkeypatch.setenv("LOTTERY_HOME", str(home))
    at = AppTest.from_file(APP, default_timeout=60)
    if page:
        at.switch_page(page)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_launch_form_refuses_a_bad_config_and_queues_nothing(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    assert not at.exception
    rewind = next(t for t in at.text_input if t.label.startswith("Rewind"))
    rewind.set_value("late")
    at.button[0].click().run()
    assert "imp.rewind: invalid value 'late'" in at.error[0].value
    assert queue.list_jobs(tmp_path) == []


def test_launch_form_folder_without_path_names_the_key(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    at.radio[0].set_value("image folder")
    at.button[0].click().run()
    assert "data.data_dir" in at.error[0].value
    assert queue.list_jobs(tmp_path) == []


def test_launch_form_queues_a_job_with_the_chosen_values(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    assert "No worker has sent a heartbeat" in at.warning[0].value
    by_label = {n.label: n for n in at.number_input}
    by_label["Rounds"].set_value(3)
    by_label["Prune rate per round"].set_value(0.3)
    by_label["Epochs per round"].set_value(1)
    next(s for s in at.selectbox if s.label == "Scope").set_value("layerwise")
    next(m for m in at.multiselect if m.label == "Controls").set_value(["random_prune"])
    at.button[0].click().run()
    assert not at.error
    jobs = queue.list_jobs(tmp_path)
    assert len(jobs) == 1 and jobs[0]["id"] in at.success[0].value
    cfg = config_lib.load(tmp_path / jobs[0]["id"] / runfolder.CONFIG)
    assert (cfg.imp.num_rounds, cfg.imp.prune_rate, cfg.imp.scope, cfg.imp.controls) == \
        (3, 0.3, "layerwise", ["random_prune"])
    assert cfg.data.source == "bundled" and cfg.train.epochs == 1


def test_yaml_tab_refuses_malformed_and_queues_valid(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    at.text_area(key="yaml_text").set_value("imp: {prune_rate: [").run()
    at.button[1].click().run()
    assert "malformed YAML" in at.error[0].value
    at.text_area(key="yaml_text").set_value("imp: {prune_rate: 2}").run()
    at.button[1].click().run()
    assert "imp.prune_rate: invalid value 2" in at.error[0].value
    assert queue.list_jobs(tmp_path) == []
    at.text_area(key="yaml_text").set_value(tiny_yaml("pasted")).run()
    at.button[1].click().run()
    assert [j["name"] for j in queue.list_jobs(tmp_path)] == ["pasted"]


def test_runs_page_lists_jobs_and_cancels_a_queued_one(served, tmp_path, monkeypatch):
    home, job_id = served
    waiting = queue.submit(tiny_yaml("waiting"), home)
    at = app(home, monkeypatch, "views/runs.py")
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "done" in captions and "queued" in captions and "best val acc 0." in captions
    assert "No worker has sent a heartbeat" in at.warning[0].value
    next(b for b in at.button if b.key == f"cancel-{waiting}").click().run()
    assert queue.get(waiting, home)["state"] == "cancelled"
    next(b for b in at.button if b.key == f"delete-{waiting}").click().run()
    assert waiting not in [j["id"] for j in queue.list_jobs(home)]


def test_run_page_shows_a_finished_run_and_offers_the_ticket(served, monkeypatch):
    home, job_id = served
    captured = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        captured[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    at = app(home, monkeypatch, "views/run.py", job=job_id)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rounds finished"] == "3" and metrics["Sparsity"] == "36.0%"
    charts = at.get("plotly_chart")
    assert len(charts) == 5  # sparsity/accuracy, remaining weights, heatmap, FLOPs, epochs
    assert '"type":"heatmap"' in charts[2].proto.spec.replace(" ", "")
    assert len(at.dataframe[0].value) == 3
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download the winning ticket (.zip)", "Download the HTML report"]

    data = captured[f"{job_id}-winning-ticket.zip"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == sorted([
            runfolder.TICKET_MODEL, runfolder.TICKET_MASK, runfolder.TICKET_JSON,
            runfolder.CONFIG])
        archive.extractall(home / "unzipped")
    import keras

    model = keras.saving.load_model(home / "unzipped" / runfolder.TICKET_MODEL, safe_mode=True)
    probabilities = model.predict(np.zeros((2, 16, 16, 1), np.uint8), verbose=0)
    assert probabilities.shape == (2, 10)
    assert b"<html" in captured[f"{job_id}-report.html"][:200].lower()


def test_run_page_shows_progress_of_a_running_job(tmp_path, monkeypatch):
    job_id = queue.submit(tiny_yaml("live", rounds=6, epochs=8, limit=500), tmp_path)
    worker = start_worker(tmp_path)
    try:
        wait_for(lambda: queue.get(job_id, tmp_path).get("rounds_done", 0) >= 1
                 and queue.get(job_id, tmp_path).get("history"))
        at = app(tmp_path, monkeypatch, "views/run.py", job=job_id)
        assert not at.exception
        assert not at.warning  # a worker is alive
        bars = at.get("progress")
        assert bars and "round" in bars[0].proto.text and "ETA" in bars[0].proto.text
        assert int(next(m.value for m in at.metric if m.label == "Rounds finished")) >= 1
        assert len(at.get("plotly_chart")) == 5  # the current round's epochs included
        assert not at.get("download_button")
        queue.cancel(job_id, tmp_path)
        assert wait_state(tmp_path, job_id, timeout=60)["state"] == "cancelled"
    finally:
        stop(worker)


def test_compare_page_overlays_a_run_and_its_controls(served, monkeypatch):
    home, job_id = served
    at = app(home, monkeypatch, "views/compare.py")
    assert not at.exception
    spec = at.get("plotly_chart")[0].proto.spec
    assert f"finished \\u00b7 {job_id} \\u00b7 imp" in spec and "random_reinit" in spec
    assert len(at.dataframe[0].value) == 6  # 3 rounds x 2 series


def test_compare_page_opens_experiment_run_folders(served, tiny_run, monkeypatch):
    home, job_id = served
    import shutil

    shutil.copytree(tiny_run, home / "experiment-x" / "tiny-seed7")
    at = app(home, monkeypatch, "views/compare.py")
    options = at.multiselect[0].options
    assert "experiment-x/tiny-seed7" in options
    at.multiselect[0].set_value(["experiment-x/tiny-seed7"]).run()
    assert len(at.dataframe[0].value) == 9  # imp and its two controls, 3 rounds each


def test_the_dashboard_never_imports_tensorflow(served):
    home, _ = served
    code = f"""
import os, sys
os.environ["LOTTERY_HOME"] = {str(home)!r}
from streamlit.testing.v1 import AppTest
for page in ["views/launch.py", "views/runs.py", "views/run.py", "views/compare.py"]:
    at = AppTest.from_file({APP!r}, default_timeout=60)
    at.switch_page(page)
    at.run()
    assert not at.exception, (page, at.exception)
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "TF imported"
print("clean")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0 and "clean" in result.stdout, result.stderr[-2000:]


def test_launch_form_queues_a_keras_dataset_run(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    at.radio[0].set_value("keras dataset")
    next(s for s in at.selectbox if s.label == "Keras dataset").set_value("fashion_mnist")
    at.button[0].click().run()
    assert not at.error
    cfg = config_lib.load(tmp_path / queue.list_jobs(tmp_path)[0]["id"] / runfolder.CONFIG)
    assert (cfg.data.source, cfg.data.name) == ("keras", "fashion_mnist")


def test_uploaded_yaml_fills_the_editor_and_queues(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    at.file_uploader[0].set_value(("mine.yaml", tiny_yaml("uploaded").encode(),
                                   "application/x-yaml")).run()
    assert "name: uploaded" in at.text_area(key="yaml_text").value
    at.button[1].click().run()
    assert not at.error
    assert [j["name"] for j in queue.list_jobs(tmp_path)] == ["uploaded"]


def test_run_page_of_a_queued_job_waits_quietly(tmp_path, monkeypatch):
    job_id = queue.submit(tiny_yaml("waiting"), tmp_path)
    at = app(tmp_path, monkeypatch, "views/run.py", job=job_id)
    assert not at.exception
    assert at.title[0].value == "waiting · queued"
    assert next(m.value for m in at.metric if m.label == "Rounds finished") == "0"


def test_run_page_rereads_a_rounds_file_that_was_rewritten_shorter(served, monkeypatch):
    home, job_id = served
    path = home / job_id / runfolder.ROUNDS
    original = path.read_text()
    at = app(home, monkeypatch, "views/run.py", job=job_id)
    assert next(m.value for m in at.metric if m.label == "Rounds finished") == "3"
    try:
        runfolder.keep_rounds_below(path, 1)  # as a resumed run does with unfinished rounds
        at.run()
        assert not at.exception
        assert next(m.value for m in at.metric if m.label == "Rounds finished") == "1"
    finally:
        runfolder.atomic_write(path, original)


def test_yaml_tab_refuses_empty_text_and_an_alias_bomb_quickly(tmp_path, monkeypatch):
    from .test_hardening_input import BOMB

    at = app(tmp_path, monkeypatch)
    at.text_area(key="yaml_text").set_value("   \n").run()
    at.button[1].click().run()
    assert "config: empty" in at.error[0].value
    at.text_area(key="yaml_text").set_value(BOMB).run()
    start = time.perf_counter()
    at.button[1].click().run()
    assert time.perf_counter() - start < 5  # the whole rerun, not minutes
    assert "expands to more than 10,000 values" in at.error[0].value
    assert queue.list_jobs(tmp_path) == []


def test_names_are_shown_as_plain_text_and_broken_jobs_can_be_deleted(tmp_path, monkeypatch):
    hostile = "[click](http://x) <img src=x onerror=alert(1)> **bold**"
    job_id = queue.submit(tiny_yaml("placeholder").replace("name: placeholder",
                                                           f"name: '{hostile}'"), tmp_path)
    at = app(tmp_path, monkeypatch, "views/run.py", job=job_id)
    assert not at.exception
    assert at.title[0].value == f"{plain(hostile)} · queued"
    assert at.title[0].value.startswith("\\[click\\]\\(http\\://x\\) \\<img src=x")
    broken = queue.submit(tiny_yaml("broken"), tmp_path)
    (tmp_path / broken / queue.STATUS).write_text("{garbage")
    at = app(tmp_path, monkeypatch, "views/runs.py")
    assert not at.exception
    assert any(plain("status.json cannot be read") in e.value for e in at.error)
    next(b for b in at.button if b.key == f"delete-{broken}").click().run()
    assert [j["id"] for j in queue.list_jobs(tmp_path)] == [job_id]
