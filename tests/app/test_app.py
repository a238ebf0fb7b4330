"""The dashboard through Streamlit's AppTest, over job folders made by a real worker."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from app.lab import plain
from jobs import queue
from lottery_engine.config import load as config_lib
from lottery_engine.foundations import runfolder

from tests.conftest import ROOT
from tests.jobs_helpers import start_worker, stop, tiny_yaml, wait_for, wait_state

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


def figures(at: AppTest) -> list[dict]:
    """The Plotly figures the page hands to its chart component, in page order."""
    return [json.loads(json.loads(c.proto.json)) for c in at.get("bidi_component")
            if c.proto.component_name == "lottery_lab_chart"]


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
    assert at.error[0].value.startswith(plain("Not queued: Rewind (init, epoch:K or step:N): "
                                              "'late' does not work here;"))
    assert "config key `imp.rewind`" in [c.value for c in at.caption]
    assert queue.list_jobs(tmp_path) == []


def test_launch_form_folder_without_path_names_the_key(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    at.radio[0].set_value("image folder")
    at.button[0].click().run()
    assert at.error[0].value.startswith("Not queued: Image folder path: ")
    assert "config key `data.data_dir`" in [c.value for c in at.caption]
    assert queue.list_jobs(tmp_path) == []


def test_launch_form_queues_a_job_with_the_chosen_values(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    assert "No worker has sent a heartbeat" in at.warning[0].value
    by_label = {n.label: n for n in at.number_input}
    by_label["Pruning rounds (after the dense round 0)"].set_value(3)
    by_label["Prune rate per round"].set_value(0.3)
    by_label["Epochs per round"].set_value(1)
    next(s for s in at.selectbox if s.label == "Scope").set_value("layerwise")
    next(m for m in at.multiselect if m.label == "Controls").set_value(["random_prune"])
    at.button[0].click().run()
    assert not at.error
    jobs = queue.list_jobs(tmp_path)
    assert len(jobs) == 1 and at.success[0].value == "Queued quickstart."
    cfg = config_lib.load(tmp_path / jobs[0]["id"] / runfolder.CONFIG)
    assert (cfg.imp.num_rounds, cfg.imp.prune_rate, cfg.imp.scope, cfg.imp.controls) == \
        (3, 0.3, "layerwise", ["random_prune"])
    assert cfg.data.source == "bundled" and cfg.train.epochs == 1


def test_yaml_tab_refuses_malformed_and_queues_valid(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    at.text_area(key="yaml_text").set_value("imp: {prune_rate: [").run()
    button(at, "Queue this config").click().run()
    assert "malformed YAML" in at.error[0].value
    at.text_area(key="yaml_text").set_value("imp: {prune_rate: 2}").run()
    button(at, "Queue this config").click().run()
    assert "imp.prune_rate: invalid value 2" in at.error[0].value
    assert queue.list_jobs(tmp_path) == []
    at.text_area(key="yaml_text").set_value(tiny_yaml("pasted")).run()
    button(at, "Queue this config").click().run()
    assert [j["name"] for j in queue.list_jobs(tmp_path)] == ["pasted"]


def select_rows(at: AppTest, rows: list[int]) -> AppTest:
    """What clicking rows of the run table does (AppTest has no clicks on a dataframe)."""
    at.session_state[at.dataframe[0].key] = {"selection": {"rows": rows, "columns": [],
                                                           "cells": []}}
    return at.run()


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_runs_table_filters_cancels_and_deletes_after_asking(served, tmp_path, monkeypatch):
    home, job_id = served
    waiting = queue.submit(tiny_yaml("waiting"), home)
    queue.annotate(waiting, home, tags=["sweep-a"])
    at = app(home, monkeypatch, "views/runs.py")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["name"])[:2] == ["waiting", "finished"]  # newest first
    finished = table[table["name"] == "finished"].iloc[0]
    assert finished["state"] == "done" and finished["arch"] == "lenet"
    assert finished["data"] == "digits" and finished["ticket round"] >= 1
    assert 0 < finished["ticket val acc"] <= 1 and finished["progress"] == 1.0
    assert "No worker has sent a heartbeat" in at.warning[0].value

    at.text_input(key="search").set_value("SWEEP").run()  # by tag, any case
    assert list(at.dataframe[0].value["name"]) == ["waiting"]
    at.text_input(key="search").set_value("").run()
    at.multiselect(key="states").set_value(["done"]).run()
    assert list(at.dataframe[0].value["name"]) == ["finished"]
    at.multiselect(key="states").set_value([]).run()

    select_rows(at, [0])
    assert button(at, "Delete").disabled  # queued: cancel it first
    button(at, "Cancel").click().run()
    assert queue.get(waiting, home)["state"] == "cancelled"
    select_rows(at, [0])
    button(at, "Delete").click().run()
    assert "Delete 1 run(s) and their folders for good?" in at.warning[-1].value
    assert waiting in [j["id"] for j in queue.list_jobs(home)]  # nothing deleted yet
    button(at, "Keep them").click().run()
    assert waiting in [j["id"] for j in queue.list_jobs(home)]
    select_rows(at, [0])
    button(at, "Delete").click().run()
    button(at, "Yes, delete").click().run()
    assert waiting not in [j["id"] for j in queue.list_jobs(home)]


def test_cancel_shows_cancelling_at_once(tmp_path, monkeypatch):
    job_id = queue.submit(tiny_yaml("long"), tmp_path)
    queue.update(job_id, tmp_path, state=queue.RUNNING, worker="w", heartbeat=time.time(),
                 started=time.time())  # as a worker's claim leaves it
    at = app(tmp_path, monkeypatch, "views/run.py", job=job_id)
    button(at, "Cancel this run").click().run()
    assert button(at, "Cancelling…").disabled
    assert at.title[0].value == "long · cancelling…"
    at = app(tmp_path, monkeypatch, "views/runs.py")
    assert at.dataframe[0].value["state"][0] == "cancelling…"


def test_run_page_shows_a_finished_run_and_offers_the_ticket(served, monkeypatch):
    home, job_id = served
    made = {}  # what each download button would hand over when clicked
    original = MediaFileManager.add_deferred

    def capture(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        made[file_name] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", capture)
    at = app(home, monkeypatch, "views/run.py", job=job_id)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pruning rounds done"] == "2 / 2" and metrics["Sparsity reached"] == "36.0%"
    assert "Round 0 trains the dense network; then 2 pruning rounds" in at.caption[0].value
    charts = figures(at)  # in page order: left column, right column, then epochs
    assert len(charts) == 5  # sparsity/accuracy, heatmap, remaining weights, FLOPs, epochs
    assert "val accuracy, random reinit" in [t["name"] for t in charts[0]["data"]]  # control
    assert charts[1]["data"][0]["type"] == "heatmap"
    assert all(c["layout"]["uirevision"] for c in charts)  # so a redraw keeps the user's zoom
    assert charts[4]["layout"]["title"]["text"] == \
        "Round 2, the last to finish: loss and accuracy per epoch"  # not "training" once done
    assert len(at.dataframe[0].value) == 3
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download the winning ticket (.zip)", "Download the HTML report"]
    ticket = json.loads((home / job_id / runfolder.TICKET_JSON).read_text())
    zip_name = f"finished-ticket-r{ticket['round']}.zip"  # after the run, not its id
    assert set(made) == {zip_name, "finished-report.html"}  # made on click

    with zipfile.ZipFile(io.BytesIO(made[zip_name]())) as archive:
        assert sorted(archive.namelist()) == sorted([
            "README.md", runfolder.TICKET_MODEL, runfolder.TICKET_MASK, runfolder.TICKET_JSON,
            runfolder.CONFIG, runfolder.CLASSES])
        archive.extractall(home / "unzipped")
    import keras

    model = keras.saving.load_model(home / "unzipped" / runfolder.TICKET_MODEL, safe_mode=True)
    probabilities = model.predict(np.zeros((2, 16, 16, 1), np.uint8), verbose=0)
    assert probabilities.shape == (2, 10)
    assert b"<html" in made["finished-report.html"]()[:200].lower()


def test_the_winning_ticket_is_one_group_on_run_runs_and_compare(served, monkeypatch):
    """Its round, sparsity, weights left, val and test accuracy all of the ticket's round, never
    the last round's sparsity beside the best accuracy of another."""
    home, job_id = served
    ticket = json.loads((home / job_id / runfolder.TICKET_JSON).read_text())
    record = next(r for r in runfolder.read_rounds(home / job_id) if r["round"] == ticket["round"])
    at = app(home, monkeypatch, "views/run.py", job=job_id)
    metrics = {m.label: m.value for m in at.metric}
    assert "Best val accuracy" not in metrics
    assert metrics["Round"] == str(ticket["round"])
    assert metrics["Ticket sparsity"] == f"{100 * record['global_sparsity']:.1f}%"
    assert metrics["Weights left"] == f"{record['remaining_prunable']:,}"
    assert metrics["Val accuracy"] == f"{record['val_accuracy']:.4f}"
    assert metrics["Test accuracy"] == f"{record['test_accuracy']:.4f}"
    assert [m.value for m in at.markdown][:2] == ["**Progress**", "**Winning ticket**"]
    # its size said as what it is: the ticket stored dense, not the dense network
    assert (f"Its weights take {ticket['dense_bytes']:,} bytes stored dense (zeros included) "
            f"and {ticket['compressed_bytes']:,} zip-compressed.") in at.markdown[2].value

    row = app(home, monkeypatch, "views/runs.py").dataframe[0].value.iloc[-1]
    assert row["ticket round"] == ticket["round"]
    assert row["ticket sparsity %"] == round(100 * record["global_sparsity"], 1)
    assert (row["ticket val acc"], row["ticket test acc"]) == (record["val_accuracy"],
                                                               record["test_accuracy"])
    assert "best val acc" not in row

    at = app(home, monkeypatch, "views/compare.py")
    found = at.dataframe[-1].value.iloc[0]  # the parallel chart's table
    assert found["ticket val accuracy"] == record["val_accuracy"]
    assert found["ticket sparsity %"] == pytest.approx(100 * record["global_sparsity"])


def test_run_page_shows_progress_of_a_running_job(tmp_path, monkeypatch):
    # 20 rounds: long enough to be still running when cancelled (6 finished first on the
    # fused step under CI's load); cancelled, it costs no more
    job_id = queue.submit(tiny_yaml("live", rounds=20, epochs=8, limit=500), tmp_path)
    worker = start_worker(tmp_path)
    try:
        wait_for(lambda: queue.get(job_id, tmp_path).get("rounds_done", 0) >= 1
                 and queue.get(job_id, tmp_path).get("history"))
        at = app(tmp_path, monkeypatch, "views/run.py", job=job_id)
        assert not at.exception
        assert not at.warning  # a worker is alive
        bars = at.get("progress")
        assert bars and "round" in bars[0].proto.text and "ETA" in bars[0].proto.text
        done = next(m.value for m in at.metric if m.label == "Pruning rounds done")
        assert int(done.split(" / ")[0]) >= 0 and done.endswith("/ 20")
        assert len(figures(at)) == 5  # the current round's epochs included
        assert not at.get("download_button")
        queue.cancel(job_id, tmp_path)
        assert wait_state(tmp_path, job_id, timeout=60)["state"] == "cancelled"
    finally:
        stop(worker)


def test_compare_page_overlays_a_run_and_its_controls(served, monkeypatch):
    home, job_id = served
    at = app(home, monkeypatch, "views/compare.py")
    assert not at.exception
    assert at.multiselect[0].value == [f"finished · {job_id[-6:]}"]  # the newest done runs
    names = [t["name"] for t in figures(at)[0]["data"]]
    assert "ticket" in names and "random reinit" in names
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
    at.radio[0].set_value("keras dataset").run()  # its field shows once the source is chosen
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
    button(at, "Queue this config").click().run()
    assert not at.error
    assert [j["name"] for j in queue.list_jobs(tmp_path)] == ["uploaded"]


def test_run_page_of_a_queued_job_waits_quietly(tmp_path, monkeypatch):
    job_id = queue.submit(tiny_yaml("waiting"), tmp_path)
    at = app(tmp_path, monkeypatch, "views/run.py", job=job_id)
    assert not at.exception
    assert at.title[0].value == "waiting · queued"
    assert next(m.value for m in at.metric if m.label == "Pruning rounds done") == "0 / 2"


def test_run_page_rereads_a_rounds_file_that_was_rewritten_shorter(served, monkeypatch):
    home, job_id = served
    path = home / job_id / runfolder.ROUNDS
    original = path.read_text()
    at = app(home, monkeypatch, "views/run.py", job=job_id)
    assert next(m.value for m in at.metric if m.label == "Pruning rounds done") == "2 / 2"
    try:
        runfolder.keep_rounds_below(path, 1)  # as a resumed run does with unfinished rounds
        at.run()
        assert not at.exception
        assert next(m.value for m in at.metric if m.label == "Pruning rounds done") == "0 / 2"
    finally:
        runfolder.atomic_write(path, original)


def test_yaml_tab_refuses_empty_text_and_an_alias_bomb_quickly(tmp_path, monkeypatch):
    from tests.jobs.test_hardening_input import BOMB

    at = app(tmp_path, monkeypatch)
    at.text_area(key="yaml_text").set_value("   \n").run()
    button(at, "Queue this config").click().run()
    assert "config: empty" in at.error[0].value
    at.text_area(key="yaml_text").set_value(BOMB).run()
    start = time.perf_counter()
    button(at, "Queue this config").click().run()
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
    assert at.title[0].value.startswith("\\[click\\](http\\://x) \\<img src=x")
    broken = queue.submit(tiny_yaml("broken"), tmp_path)
    (tmp_path / broken / queue.STATUS).write_text("{garbage")
    at = app(tmp_path, monkeypatch, "views/runs.py")
    assert not at.exception
    row = at.dataframe[0].value.iloc[0]
    assert row["state"] == "broken" and "status.json cannot be read" in row["error"]
    select_rows(at, [0])
    button(at, "Delete").click().run()
    button(at, "Yes, delete").click().run()
    assert [j["id"] for j in queue.list_jobs(tmp_path)] == [job_id]


def test_run_page_says_what_a_job_does_before_its_first_batch(tmp_path, monkeypatch):
    job_id = queue.submit(tiny_yaml("starting"), tmp_path)
    queue.update(job_id, tmp_path, state=queue.RUNNING, worker="w", heartbeat=time.time(),
                 started=time.time())
    at = app(tmp_path, monkeypatch, "views/run.py", job=job_id)
    assert "starting the job's process" in at.info[0].value
    queue.update(job_id, tmp_path, phase="loading data")
    assert at.run().info[0].value == "loading data…"
    queue.update(job_id, tmp_path, task="decoding images", task_done=1200, task_total=25000)
    assert at.run().info[0].value == "decoding images: 1,200 of 25,000"
    queue.update(job_id, tmp_path, batches=10, batch=3, task=None)
    assert not at.run().info and "dense round 0, epoch 0/1, batch 3/10" in \
        at.get("progress")[0].proto.text


def test_rename_notes_tags_and_a_config_diff_on_the_run_page(tmp_path, monkeypatch):
    first = queue.submit(tiny_yaml("first"), tmp_path)
    second = queue.submit(tiny_yaml("second").replace("prune_rate: 0.2", "prune_rate: 0.3"),
                          tmp_path)
    at = app(tmp_path, monkeypatch, "views/run.py", job=second)
    next(t for t in at.text_input if t.label == "Name").set_value("renamed")
    next(t for t in at.text_area if t.label == "Notes").set_value("lr looks high")
    next(t for t in at.text_input if t.label.startswith("Tags")).set_value("sweep, lenet")
    button(at, "Save").click().run()
    at = app(tmp_path, monkeypatch, "views/run.py", job=second)  # a fresh session
    assert at.title[0].value == "renamed · queued"
    assert next(t for t in at.text_area if t.label == "Notes").value == "lr looks high"
    assert queue.get(second, tmp_path)["tags"] == ["sweep", "lenet"]
    at.selectbox(key="diff_against").set_value(first).run()
    diff = at.code[-1].value
    assert "-  prune_rate: 0.2" in diff and "+  prune_rate: 0.3" in diff
    assert "-  name: first" in diff


def test_a_refused_form_value_is_explained_next_to_its_field(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch)
    next(n for n in at.number_input if n.label == "Prune rate per round").set_value(1.5)
    at.button[0].click().run()
    assert len(at.error) == 1
    assert at.error[0].value == ("Not queued: Prune rate per round: 1.5 does not work here; give "
                                 "a number in (0, 1).")
    assert queue.list_jobs(tmp_path) == []
