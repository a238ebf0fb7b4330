"""Exporting a ticket through the queue: the Run page queues an export job (the dashboard never
runs TensorFlow), a real worker runs it into the run's folder, the page shows what each format
measured with its file, a format that fails fails the job and keeps what the others wrote, and
the ticket zip ships the compact model with the records."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from app import lab
from jobs import queue, worker
from jobs.ray_worker import RayWorker
from lottery_engine import pipeline
from lottery_engine.export import downloads, export_records
from lottery_engine.export import exporter as export
from lottery_engine.foundations import runfolder

from tests.conftest import ROOT, tiny_config
from tests.jobs_helpers import start_worker, stop, tiny_yaml, wait_for, wait_state

APP = str(ROOT / "app" / "streamlit_app.py")
EXPORT_BUTTON = "Export (Keras, compact, TFLite, int8)"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A home with three finished runs (made outside the queue, as `lottery run` makes them)
    whose tickets one real worker exports from the queue, oldest job first: `shipped` to the
    end; `blocked`, whose tflite file's path is a folder, so that format fails for real; and
    `cancelled`, cancelled while its first format is under way."""
    home = tmp_path_factory.mktemp("home")
    runs = {"shipped": runfolder.new_run_dir(home, "shipped")}
    pipeline.execute(tiny_config(report__html=False, report__markdown=False), runs["shipped"])
    for name in ("blocked", "cancelled"):
        runs[name] = runfolder.new_run_dir(home, name)
        shutil.copytree(runs["shipped"], runs[name])
    export_records.default_path(runs["blocked"], "tflite").mkdir(parents=True)
    ids = {name: queue.submit_export(run.name, home) for name, run in runs.items()}
    proc = start_worker(home)
    try:
        progress = home / ids["cancelled"] / worker.PROGRESS
        wait_for(lambda: runfolder.read_json(progress, {}).get("phase", "").startswith(
            "exporting keras"), timeout=180, every=0.02)
        assert queue.cancel(ids["cancelled"], home) == "running"
        ends = {name: wait_state(home, job_id, timeout=180) for name, job_id in ids.items()}
    finally:
        stop(proc)
    return home, runs, ends


def test_a_worker_runs_the_export_job_into_the_run_folder(exported):
    home, runs, ends = exported
    shipped, end = runs["shipped"], ends["shipped"]
    assert end["state"] == "done" and end["run"] == shipped.name, end
    records = export_records.read(shipped)
    assert list(records) == list(export.FORMATS)
    assert all(r["status"] == "ok" for r in records.values()), records
    assert all(downloads.exported_file(shipped, r) for r in records.values())
    assert records["tflite"]["runtime"].startswith("LiteRT")
    log = (home / end["id"] / runfolder.LOG).read_text()
    assert [line.split(":")[0] for line in log.splitlines()] == list(export.FORMATS)
    assert worker.job_line(end) == f"{end['id']}  done      export of tiny"  # lottery jobs
    assert end["id"] not in [row["id"] for row in lab.job_rows(queue.list_jobs(home))]


def test_a_format_that_fails_fails_the_job_and_the_others_are_kept(exported):
    _, runs, ends = exported
    blocked, end = runs["blocked"], ends["blocked"]
    assert end["state"] == "failed"
    assert end["error"].startswith("1 of 4 formats failed (the others are kept): tflite: failed: ")
    records = export_records.read(blocked)
    assert {fmt: r["status"] for fmt, r in records.items()} == {
        "keras": "ok", "compact": "ok", "tflite": "failed", "tflite-int8": "ok"}
    assert downloads.exported_file(blocked, records["tflite-int8"]).stat().st_size > 0


def test_a_cancelled_export_stops_before_its_next_format_and_keeps_the_ones_done(exported):
    _, runs, ends = exported
    assert ends["cancelled"]["state"] == "cancelled"
    done = list(export_records.read(runs["cancelled"]))
    assert done == list(export.FORMATS)[:len(done)] and 1 <= len(done) < len(export.FORMATS)


def captured_downloads(monkeypatch) -> dict:
    """What each download button would hand over when clicked, by file name."""
    made = {}
    original = MediaFileManager.add_deferred

    def capture(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        made[file_name] = data_callable
        return original(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", capture)
    return made


def run_page(home, run_id, monkeypatch) -> AppTest:
    monkeypatch.setenv("LOTTERY_HOME", str(home))
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("views/run.py")
    at.query_params["job"] = run_id
    return at.run()


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_run_page_shows_the_exports_and_the_zip_ships_the_compact_model(exported, monkeypatch):
    home, runs, _ = exported
    shipped, blocked = runs["shipped"], runs["blocked"]
    made = captured_downloads(monkeypatch)
    at = run_page(home, shipped.name, monkeypatch)
    assert not at.exception and not at.error
    assert not button(at, EXPORT_BUTTON).disabled  # the last export is done
    table = at.dataframe[1].value  # after the rounds table
    assert list(table["format"]) == list(export.FORMATS)
    assert list(table["status"]) == ["ok"] * 4
    assert table["size × dense"][0] == "1.0x"  # the dense ticket itself
    records = export_records.read(shipped)
    assert table["test acc %"].tolist() == pytest.approx(
        [100 * r["test_accuracy"] for r in records.values()])
    # named after the run, "tiny", with its id: the three runs share that name; and the round
    stem, ticket = f"tiny-{shipped.name}", runfolder.read_json(shipped / runfolder.TICKET_JSON)
    names = {f"{stem}-r{records[fmt]['round']}-{fmt}.{ext}"
             for fmt, ext in export_records.FORMATS.items()}
    assert names <= set(made)
    for fmt in export.FORMATS:  # read when clicked: the file as it is on disk
        path = export_records.default_path(shipped, fmt)
        assert made[f"{stem}-r{records[fmt]['round']}-{path.name}"]() == path.read_bytes()

    with zipfile.ZipFile(io.BytesIO(made[f"{stem}-ticket-r{ticket['round']}.zip"]())) as archive:
        assert {"export/compact.keras", export_records.EXPORTS_JSON} <= set(archive.namelist())
        archive.extractall(home / "unzipped")
    compact = keras.saving.load_model(home / "unzipped" / "export" / "compact.keras",
                                      safe_mode=True)
    assert compact.predict(np.zeros((2, 16, 16, 1), np.float32), verbose=0).shape == (2, 10)
    assert compact.count_params() == records["compact"]["parameters"]["stored"]

    at = run_page(home, blocked.name, monkeypatch)
    assert "The last export failed: 1 of 4 formats failed" in at.error[0].value
    table = at.dataframe[1].value
    assert table["status"].tolist() == ["ok", "ok", "failed", "ok"]
    assert "directory" in table["error"][2]
    offered = [name.removeprefix(f"tiny-{blocked.name}-r1-") for name in made
               if name.startswith(f"tiny-{blocked.name}-r1-")]
    assert offered == [  # a failed format offers no file
        "keras.keras", "compact.keras", "tflite-int8.tflite"]


def test_a_compact_model_that_kept_every_unit_says_why_it_is_the_same_size(exported, tmp_path,
                                                                           monkeypatch):
    _, runs, _ = exported
    run_dir = tmp_path / runs["shipped"].name
    shutil.copytree(runs["shipped"], run_dir)
    records = json.loads((run_dir / export_records.EXPORTS_JSON).read_text())
    records["compact"]["compaction"]["units_removed"] = 0  # unstructured: no unit emptied
    (run_dir / export_records.EXPORTS_JSON).write_text(json.dumps(records))
    table = run_page(tmp_path, run_dir.name, monkeypatch).dataframe[1].value
    notes = dict(zip(table["format"], table["note"]))
    assert notes["compact"] == "no unit lost all its weights: IMP's sparsity is unstructured"
    assert not isinstance(notes["keras"], str) and not isinstance(notes["tflite"], str)


def test_export_button_queues_one_job_that_can_be_cancelled_and_replaced(exported, tmp_path,
                                                                        monkeypatch):
    _, runs, _ = exported
    run_id = runs["shipped"].name
    shutil.copytree(runs["shipped"], tmp_path / run_id)
    at = run_page(tmp_path, run_id, monkeypatch)
    button(at, EXPORT_BUTTON).click().run()
    queued, = queue.export_jobs(queue.list_jobs(tmp_path), run_id)
    assert queued["state"] == "queued" and queued["name"] == "export of tiny"
    assert at.info[0].value == "Export queued"
    assert "No worker has sent a heartbeat" in at.warning[0].value
    assert button(at, "Exporting…").disabled
    with pytest.raises(queue.JobError, match="already queued"):
        queue.submit_export(run_id, tmp_path)

    button(at, "Cancel the export").click().run()
    assert queue.get(queued["id"], tmp_path)["state"] == "cancelled"
    assert any(c.value.startswith("The last export was cancelled") for c in at.caption)
    button(at, EXPORT_BUTTON).click().run()
    again, = queue.export_jobs(queue.list_jobs(tmp_path), run_id)  # the cancelled one replaced
    assert again["id"] != queued["id"] and again["state"] == "queued"

    # a Ray dispatcher leaves it to a local worker, saying so
    ray_dispatcher = object.__new__(RayWorker)  # its reason needs no cluster
    assert queue.claim("ray", 1, tmp_path, unable=ray_dispatcher._unable) is None
    assert at.run().info[0].value == ("Export queued: export jobs run on a local worker (lottery "
                                      "worker), not on the Ray cluster")
    assert queue.claim("local", 1, tmp_path) == again["id"]  # as a worker's progress shows it
    queue.heartbeat(again["id"], tmp_path, "local", {"phase": "exporting compact (2 of 4)"})
    assert at.run().info[0].value == "exporting compact (2 of 4)…"
    button(at, "Cancel the export").click().run()
    assert at.info[0].value.endswith("(cancelling: it stops before the next format)")

    queue.finish(again["id"], tmp_path, "cancelled")
    queue.submit_export(run_id, tmp_path)
    queue.delete(run_id, tmp_path)  # its export jobs that no worker holds go with it
    assert queue.list_jobs(tmp_path) == []


def test_only_a_finished_run_with_a_ticket_is_exported(tmp_path):
    job_id = queue.submit(tiny_yaml("waiting"), tmp_path)
    with pytest.raises(queue.JobError, match="has no winning ticket yet"):
        queue.submit_export(job_id, tmp_path)
    with pytest.raises(queue.JobError, match="not a job id"):
        queue.submit_export("../elsewhere", tmp_path)
    assert [j["id"] for j in queue.list_jobs(tmp_path)] == [job_id]


def test_the_export_table_never_imports_tensorflow(exported):
    home, runs, _ = exported
    shipped = runs["shipped"]
    code = f"""
import os, sys
os.environ["LOTTERY_HOME"] = {str(home)!r}
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({APP!r}, default_timeout=60)
at.switch_page("views/run.py")
at.query_params["job"] = {shipped.name!r}
at.run()
assert not at.exception, at.exception
assert list(at.dataframe[1].value["format"]) == ["keras", "compact", "tflite", "tflite-int8"]
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "TF imported"
print("clean")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0 and "clean" in result.stdout, result.stderr[-2000:]


def test_the_report_gets_a_deploying_section_once_exported(exported):
    html = (exported[1]["shipped"] / runfolder.REPORT_HTML).read_text()
    assert "<h2>Deploying the ticket</h2>" in html and "id='exports'" in html
    assert html.count("<tr>", html.index("id='exports'"), html.index("</table>", html.index(
        "id='exports'"))) == 1 + 4  # the header and a row per format
