"""The queue and real worker processes: claims, crashes, cancels, failures."""

from __future__ import annotations

import os
import shutil
import signal

import numpy as np
import pytest

from jobs import instability_jobs, queue, worker
from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError
from lottery_engine.foundations import runfolder
from lottery_engine.foundations.events import STACK
from lottery_engine.lottery import imp
from lottery_engine.pruning.masks import load_masks
from lottery_engine.science import instability_arm

from tests.conftest import round_record
from tests.jobs_helpers import start_worker, stop, tiny_yaml, wait_for, wait_state


def _starts(job_dir, round_index=0):
    return (job_dir / runfolder.LOG).read_text().count(f"round {round_index} (imp) starts")


def test_two_workers_four_jobs_each_run_exactly_once(tmp_path):
    ids = [queue.submit(tiny_yaml(f"job{i}"), tmp_path) for i in range(4)]
    workers = [start_worker(tmp_path), start_worker(tmp_path)]
    try:
        statuses = [wait_state(tmp_path, job_id) for job_id in ids]
    finally:
        for w in workers:
            stop(w)
    assert [s["state"] for s in statuses] == ["done"] * 4
    assert len({s["worker"] for s in statuses}) == 2  # both workers took part
    for job_id, status in zip(ids, statuses):
        job = tmp_path / job_id
        assert [r["round"] for r in runfolder.read_rounds(job)] == [0, 1, 2]
        assert _starts(job, 0) == 1 and _starts(job, 2) == 1
        assert status["resumed"] == 0 and status["best_val_accuracy"] > 0


def test_killed_worker_job_resumes_on_another_with_the_uninterrupted_result(tmp_path):
    text = tiny_yaml("crash", rounds=3, epochs=12, limit=600)
    job_id = queue.submit(text, tmp_path)
    job = tmp_path / job_id
    first = start_worker(tmp_path, "--lease", "2")
    try:
        wait_for(lambda: (p := runfolder.read_json(job / worker.PROGRESS, {})).get("round") == 2
                 and p.get("epoch", 0) >= 2, every=0.05)
        child = queue.get(job_id, tmp_path)["child_pid"]
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        wait_for(lambda: not os.path.exists(f"/proc/{child}") or
                 open(f"/proc/{child}/stat").read().split()[2] == "Z", timeout=10)
    finally:
        stop(first)
    assert queue.get(job_id, tmp_path)["state"] == "running"  # as the dead worker left it
    assert [r["round"] for r in runfolder.read_rounds(job)] == [0, 1]
    second = start_worker(tmp_path, "--lease", "2")
    try:
        status = wait_state(tmp_path, job_id)
    finally:
        stop(second)
    assert status["state"] == "done" and status["resumed"] == 1
    assert [r["round"] for r in runfolder.read_rounds(job)] == [0, 1, 2, 3]
    assert _starts(job, 1) == 1 and _starts(job, 3) == 1

    reference = tmp_path / "reference"
    imp.run(config_lib.loads(text), reference)
    for r in range(4):
        a, b = load_masks(job / runfolder.mask_file(r)), load_masks(reference /
                                                                   runfolder.mask_file(r))
        assert all(np.array_equal(a[n], b[n]) for n in a), f"round {r}"
    got = runfolder.read_rounds(job)
    want = runfolder.read_rounds(reference)
    assert [r["val_accuracy"] for r in got] == [r["val_accuracy"] for r in want]


def test_cancel_queued_at_once_and_running_at_a_batch_boundary(tmp_path):
    running = queue.submit(tiny_yaml("long", rounds=20, epochs=4, limit=400), tmp_path)
    waiting = queue.submit(tiny_yaml("waiting"), tmp_path)
    assert queue.cancel(waiting, tmp_path) == "cancelled"
    assert queue.get(waiting, tmp_path)["state"] == "cancelled"
    worker = start_worker(tmp_path)
    try:
        wait_for(lambda: queue.get(running, tmp_path).get("rounds_done", 0) >= 1)
        assert queue.cancel(running, tmp_path) == "running"
        status = wait_state(tmp_path, running, timeout=60)
    finally:
        stop(worker)
    assert status["state"] == "cancelled"
    kept = runfolder.read_rounds(tmp_path / running)
    assert 1 <= len(kept) < 21 and not runfolder.is_complete(tmp_path / running)
    assert not (tmp_path / waiting / runfolder.ROUNDS).exists()
    with pytest.raises(queue.JobError, match="already cancelled"):
        queue.cancel(running, tmp_path)
    queue.delete(running, tmp_path)
    assert not (tmp_path / running).exists()


def test_runtime_failure_is_recorded_and_the_next_job_still_runs(tmp_path):
    missing = tmp_path / "gone-after-submit"
    for label in ("a", "b"):  # valid at submit (listed, not decoded), removed before the run
        (missing / label).mkdir(parents=True)
        for i in range(12):
            (missing / label / f"{i}.png").write_bytes(b"png")
    bad = queue.submit(tiny_yaml("bad").replace(
        "source: bundled, name: digits", f"source: folder, data_dir: '{missing}'"), tmp_path)
    shutil.rmtree(missing)
    good = queue.submit(tiny_yaml("good", rounds=1), tmp_path)
    worker = start_worker(tmp_path)
    try:
        bad_status = wait_state(tmp_path, bad)
        good_status = wait_state(tmp_path, good)
    finally:
        stop(worker)
    assert bad_status["state"] == "failed"
    assert bad_status["error"].startswith(f"data.data_dir: folder {missing} not found")
    assert "Traceback" in (tmp_path / bad / runfolder.LOG).read_text()
    assert good_status["state"] == "done"


INVALID = [
    ("run: {name: [", "malformed YAML"),
    ("- just\n- a list", "config: expected a mapping"),
    ("train: {arch: resnet50}", "train.arch: unknown value 'resnet50'"),
    ("train: {arch: LeNet}", "Did you mean 'lenet'?"),
    ("imp: {prune_rate: 1.0}", "imp.prune_rate: invalid value 1.0"),
    ("imp: {prune_rate: -0.2}", "imp.prune_rate: invalid value -0.2"),
    ("imp: {prune_rate: lots}", "imp.prune_rate: invalid value 'lots'"),
    ("imp: {num_rounds: -1}", "imp.num_rounds: invalid value -1"),
    ("imp: {num_rouds: 3}", "imp.num_rouds: unknown key. Did you mean 'num_rounds'?"),
    ("imp: {scope: per_layer}", "imp.scope: unknown value 'per_layer'"),
    ("imp: {rewind: 'epoch:x'}", "imp.rewind: invalid value 'epoch:x'"),
    ("imp: {controls: random_reinit}", "imp.controls: invalid value 'random_reinit'"),
    ("imp: {select_metric: test_accuracy}", "imp.select_metric: unknown value 'test_accuracy'"),
    ("train: {epochs: 0}", "train.epochs: invalid value 0"),
    ("train: {batch_size: 2.5}", "train.batch_size: invalid value 2.5"),
    ("train: {learning_rate: 0}", "train.learning_rate: invalid value 0"),
    ("data: {source: url}", "data.source: unknown value 'url'"),
    ("data: {source: keras, name: imagenet}", "data.name: unknown value 'imagenet'"),
    ("data: {image_size: 28}", "data.image_size: invalid value 28"),
    ("data: {val_split: 1.2}", "data.val_split: invalid value 1.2"),
    ("run: {device: gpu:x}", "run.device: invalid value 'gpu:x'"),
    ("report: {html: maybe}", "report.html: invalid value 'maybe'"),
    ("model: {arch: lenet}", "model: unknown key"),
]


@pytest.mark.parametrize("text,message", INVALID, ids=[m for _, m in INVALID])
def test_invalid_config_is_refused_at_submit_and_creates_nothing(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        queue.submit(text, tmp_path)
    assert message in str(info.value)
    assert queue.list_jobs(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == []


def test_job_ids_are_generated_and_never_user_paths(tmp_path):
    job_id = queue.submit(tiny_yaml("../../etc/evil"), tmp_path)
    assert (tmp_path / job_id).is_dir() and "/" not in job_id
    for bad in ("../x", "20261125-120000-zzzzzz", ""):
        with pytest.raises(queue.JobError):
            queue.get(bad, tmp_path)


def test_progress_of_a_stacked_round_counts_its_batches_for_every_series(tmp_path):
    """A round whose ticket and two controls train as one stack is three series' worth of work:
    halfway through it, the job is halfway through those three (no jump at the round's end)."""
    progress = worker.ProgressWriter(tmp_path, num_rounds=2, epochs=2, controls=2)
    progress.round_finished(round_record(0, val_accuracy=0.5))  # 1 unit of 7

    def fraction() -> float:
        return runfolder.read_json(tmp_path / worker.PROGRESS)["fraction_done"]

    progress.round_started(1, STACK, 0.2)
    progress.epoch_finished(1, 0, {"loss": 1.0})  # half of round 1's 3 units
    assert fraction() == pytest.approx((1 + 1.5) / 7)
    progress.round_started(2, STACK, 0.36)
    assert fraction() == pytest.approx(4 / 7)
    progress.round_started(2, "imp", 0.36)  # one after another (train.stack: false)
    progress.round_started(2, "random_reinit", 0.36)  # the second of round 2's 3 units
    assert fraction() == pytest.approx(5 / 7)


def test_an_arms_analysis_after_its_run_fills_the_rest_of_the_jobs_progress(tmp_path):
    """An experiment arm with `instability:` analyses its run in the same job: the run is only
    its share of the job (in trainings of a round) and the analysis fills the rest line by line;
    the status keeps the last fraction written, so the job read 100% all through its analysis."""
    cfg = config_lib.from_dict({"imp": {"num_rounds": 2, "controls": []}})
    request = instability_arm.parse({"rounds": [0, 2], "rewind": [0, 100], "copies": 2}, "arm")
    share = instability_arm.run_share(cfg, request)
    assert share == pytest.approx(3 / (3 + 8))
    run = worker.ProgressWriter(tmp_path, num_rounds=2, epochs=1, controls=0, share=share)
    run.round_finished(round_record(2, val_accuracy=0.5))
    run.round_started(2, "imp", 0.36)
    run.epoch_finished(2, 0, {"loss": 1.0})  # the run's last epoch: all of the run's share

    def progress() -> dict:
        return runfolder.read_json(tmp_path / worker.PROGRESS)

    assert progress()["fraction_done"] == pytest.approx(share)
    analysis = instability_jobs.Progress(tmp_path, tmp_path / worker.PROGRESS, (share, 1.0))
    analysis.phase_started("loading data")
    assert progress()["fraction_done"] == pytest.approx(share) and progress()["eta"] is None
    analysis.work_progress("instability", 1, 4)
    assert progress()["fraction_done"] == pytest.approx(share + (1 - share) / 4)
    assert progress()["eta"] >= 0 and "1 of 4 (round, k) done" in progress()["phase"]
    analysis.work_progress("instability", 4, 4)
    assert progress()["fraction_done"] == pytest.approx(1.0)
