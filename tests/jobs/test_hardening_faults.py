"""Faults: a torn rounds file, broken job status files, a full disk, an unusable home. No fault
loses a finished round, and the queue keeps being served."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess

import pytest

from jobs import queue
from lottery_engine import pipeline
from lottery_engine.foundations import runfolder

from tests.conftest import round_record, tiny_config
from tests.jobs_helpers import start_worker, stop, tiny_yaml, wait_for, wait_state
from tests.jobs.test_hardening_input import assert_one_line_error, lottery


def test_a_torn_rounds_file_is_read_around_and_resumed_to_every_round_once(tmp_path, caplog):
    cfg = tiny_config()
    uninterrupted = pipeline.execute(cfg, tmp_path / "whole")["rounds"]
    run = tmp_path / "torn"
    shutil.copytree(tmp_path / "whole", run)
    (run / runfolder.FINISHED).unlink()
    rounds = run / runfolder.ROUNDS
    text = rounds.read_text()
    rounds.write_text(text[: text.rindex('{"round": 2') + 40])  # a writer killed mid-line
    caplog.set_level(logging.INFO, "lottery")

    assert [r["round"] for r in runfolder.read_rounds(run)] == [0, 1]
    assert "incomplete last line" in caplog.text

    resumed = pipeline.execute(cfg, run)["rounds"]
    lines = rounds.read_text().splitlines()
    assert [json.loads(line)["round"] for line in lines] == [0, 1, 2]
    assert "dropped an incomplete last line" in caplog.text
    for before, after in zip(uninterrupted, resumed):
        assert after["val_accuracy"] == before["val_accuracy"]
        assert after["layer_sparsity"] == before["layer_sparsity"]


def test_a_line_that_is_not_a_record_is_skipped_not_fatal(tmp_path, caplog):
    zero, one, two, three = (json.dumps(round_record(r).to_json()) for r in range(4))
    (tmp_path / runfolder.ROUNDS).write_text(f'{zero}\n{one[:30]}{two}\n{{"round": 2}}\n'
                                             f'{three}\n')
    caplog.set_level(logging.WARNING, "lottery")
    assert [r.round for r in runfolder.read_rounds(tmp_path)] == [0, 3]
    assert caplog.text.count("skipped a line that is not") == 2  # not JSON; not a record


def _break(home, job_id, content: str) -> None:
    (home / job_id / queue.STATUS).write_text(content)


def test_broken_status_files_never_stop_the_cli_or_a_worker(tmp_path):
    garbage = queue.submit(tiny_yaml("garbage"), tmp_path)
    partial = queue.submit(tiny_yaml("partial"), tmp_path)
    good = queue.submit(tiny_yaml("good", rounds=1), tmp_path)
    _break(tmp_path, garbage, "{not json")
    status = queue.get(partial, tmp_path)
    del status["submitted"]
    _break(tmp_path, partial, json.dumps(status))

    listed = lottery("jobs", "--home", str(tmp_path))
    assert listed.returncode == 0 and "Traceback" not in listed.stderr
    assert f"{garbage}  broken" in listed.stdout and "status.json cannot be read" in listed.stdout
    assert f"{partial}  broken" in listed.stdout and "status.json lacks submitted" in listed.stdout

    worker = start_worker(tmp_path)
    try:
        assert wait_state(tmp_path, good)["state"] == "done"
        assert worker.poll() is None  # still serving
    finally:
        stop(worker)
    assert queue.get(garbage, tmp_path)["state"] == "broken"  # never claimed

    assert_one_line_error(lottery("cancel", garbage, "--home", str(tmp_path)),
                          f"job {garbage}: broken (status.json cannot be read")
    for job_id in (garbage, partial):
        assert lottery("delete", job_id, "--home", str(tmp_path)).returncode == 0
        assert not (tmp_path / job_id).exists()


def test_a_worker_refuses_a_home_it_cannot_use_in_one_line(tmp_path):
    home = tmp_path / "home"
    home.write_text("a file, not a folder")
    assert_one_line_error(lottery("worker", "--home", str(home), "--once"),
                          f"queue home {home}: cannot be used")


LENET_28 = """
run: {name: NAME, seed: 3, device: cpu}
data: {source: bundled, name: digits, image_size: [28, 28], channels: 1, limit_total: 300}
train: {arch: lenet, epochs: 1, batch_size: 32}
imp: {prune_rate: 0.2, num_rounds: ROUNDS, target_sparsity: 0.99}
report: {html: false}
"""


@pytest.fixture
def tiny_disk(tmp_path):
    """A 3 MB tmpfs: the queue home on a disk that fills within a few rounds."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_job_with_its_cause_and_keeps_finished_rounds(tiny_disk):
    home = tiny_disk
    job_id = queue.submit(LENET_28.replace("NAME", "filler").replace("ROUNDS", "12"), home)
    worker = start_worker(home)
    try:
        status = wait_state(home, job_id, timeout=300)
        assert status["state"] == "failed", status
        assert status["error"].startswith("disk full: no space left on the device while "
                                          f"writing to the folder {home}"), status["error"]
        finished = [r["round"] for r in runfolder.read_rounds(home / job_id)]
        assert finished and finished == list(range(len(finished)))  # kept, each once
        assert worker.poll() is None  # the worker keeps serving

        queue.delete(job_id, home)  # free the disk; the same worker takes the next job
        next_id = queue.submit(tiny_yaml("after", rounds=1, extra="report: {html: false}"),
                               home)  # the HTML report embeds 4.6 MB of plotly.js
        after = wait_state(home, next_id)
        assert after["state"] == "done", after.get("error")
    finally:
        stop(worker)
    assert wait_for(lambda: worker.poll() is not None, timeout=20)
