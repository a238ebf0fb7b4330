"""The Ray backend against a real Ray cluster on this machine: a head that only coordinates and
two one-CPU worker nodes, each a raylet of its own. Jobs go through the real queue, a real
`lottery worker --ray` process and real Ray tasks; the run folders are compared with `lottery run`
on the same config. The node-loss test kills a node's raylet, so it runs last.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from app import lab
from jobs import queue, ray_local
from lottery_engine.foundations import runfolder

from tests.conftest import ROOT
from tests.jobs_helpers import stop, tiny_yaml, wait_for, wait_state


@pytest.fixture(scope="module")
def cluster():
    try:
        import ray  # noqa: F401

        started = ray_local.start(nodes=2, cpus=1, head_cpus=0)
    except (ImportError, RuntimeError, FileNotFoundError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"a local Ray cluster cannot start here: {exc}")
    yield started
    started.stop()


def _dispatcher(home: Path, address: str, max_jobs: int = 2, *args: str) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    log = open(home / f"ray-worker-{time.monotonic_ns()}.out", "w")
    return subprocess.Popen([sys.executable, "-m", "jobs.cli", "worker", "--home",
                             str(home), "--ray", address, "--max-jobs", str(max_jobs), *args],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _local_run(yaml_text: str, out: Path) -> Path:
    """`lottery run` with one TensorFlow thread, as the Ray worker gives each job by default:
    float sums, and so the numbers, depend on the thread count."""
    config = out.parent / f"{out.name}.yaml"
    config.write_text(yaml_text)
    subprocess.run([sys.executable, "-m", "jobs.cli", "run", "--config", str(config),
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1",
                        "TF_NUM_INTEROP_THREADS": "1"})
    return out


def _numbers(run_dir: Path) -> list[tuple]:
    return [(r["round"], r["series"], r["val_accuracy"], r["test_accuracy"],
             r["global_sparsity"]) for r in runfolder.read_rounds(run_dir)]


def _same_masks(left: Path, right: Path) -> None:
    names = sorted(p.name for p in left.glob("mask_round_*.npz"))
    assert names and names == sorted(p.name for p in right.glob("mask_round_*.npz"))
    for name in names:
        with np.load(left / name) as a, np.load(right / name) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])


def test_two_jobs_run_at_once_on_two_nodes_and_match_a_local_run(cluster, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    text = tiny_yaml("on-ray", rounds=2, epochs=2)
    jobs = [queue.submit(text, home) for _ in range(2)]
    gpu_job = queue.submit(text.replace("device: cpu", "device: gpu"), home)
    dispatcher = _dispatcher(home, cluster.address)
    try:
        # both running at the same time, each on a node of its own
        both = wait_for(lambda: all((s := queue.get(j, home))["state"] == queue.RUNNING
                                    and s.get("node") for j in jobs)
                        and [queue.get(j, home) for j in jobs], timeout=300)
        assert both[0]["node"]["id"] != both[1]["node"]["id"]
        finished = [wait_state(home, j, timeout=400) for j in jobs]
        assert [s["state"] for s in finished] == [queue.DONE, queue.DONE], finished
        waiting = wait_for(lambda: (s := queue.get(gpu_job, home)).get("waiting") and s, 30)
        assert waiting["state"] == queue.QUEUED
        assert "no node of the Ray cluster has a GPU" in waiting["waiting"]
        rows = {row["id"]: row for row in lab.job_rows(queue.list_jobs(home))}  # the Runs page
        assert rows[jobs[0]]["node"].startswith(finished[0]["node"]["id"][:8])
        assert rows[gpu_job]["state"].startswith("queued: no node of the Ray cluster has a GPU")
    finally:
        stop(dispatcher)
    local = _local_run(text, tmp_path / "local")
    for job_id in jobs:
        remote = home / job_id
        assert _numbers(remote) == _numbers(local)
        _same_masks(remote, local)
        assert (remote / runfolder.TICKET_MODEL).exists() and (remote / runfolder.REPORT_HTML).exists()
        assert not (remote / runfolder.LOG).read_text().count("Traceback")


def test_cancel_reaches_the_remote_job(cluster, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    job_id = queue.submit(tiny_yaml("long", rounds=8, epochs=30, limit=600), home)
    dispatcher = _dispatcher(home, cluster.address)
    try:
        wait_for(lambda: queue.get(job_id, home).get("batches"), timeout=300)
        asked = time.monotonic()
        queue.cancel(job_id, home)
        status = wait_state(home, job_id, timeout=60)
        print(f"cancelled {time.monotonic() - asked:.1f} s after the request")
        assert status["state"] == queue.CANCELLED
        assert len(runfolder.read_rounds(home / job_id)) < 9
    finally:
        stop(dispatcher)


def test_a_dead_dispatchers_job_is_taken_over_after_the_lease(cluster, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    text = tiny_yaml("orphan", rounds=2, epochs=3, limit=400)
    job_id = queue.submit(text, home)
    first = _dispatcher(home, cluster.address, 1, "--lease", "3")
    second = None
    try:
        wait_for(lambda: queue.get(job_id, home).get("rounds_done", 0) >= 1, timeout=300)
        first.kill()  # SIGKILL: no hand-back; Ray ends the tasks of a driver that is gone
        first.wait()
        second = _dispatcher(home, cluster.address, 1, "--lease", "3")
        final = wait_state(home, job_id, timeout=400)
        assert final["state"] == queue.DONE and final["resumed"] == 1, final
    finally:
        for proc in (first, second):
            if proc:
                stop(proc)
    keys = [(r["round"], r["series"]) for r in runfolder.read_rounds(home / job_id)]
    assert len(keys) == len(set(keys)) == 3
    assert _numbers(home / job_id) == _numbers(_local_run(text, tmp_path / "local"))


def test_a_user_model_job_runs_on_a_node_with_its_model_in_the_run_folder(cluster, tmp_path):
    from lottery_engine.config import load as config_lib
    from lottery_engine.pruning.masks import load_masks

    from tests import user_models

    home = tmp_path / "home"
    home.mkdir()
    user_models.functional_model().save(tmp_path / "net.keras")
    cfg = config_lib.from_dict({
        "run": {"name": "user-on-ray", "seed": 4},
        "data": {"source": "arrays",
                 "path": str(user_models.save_digits_npz(tmp_path / "digits.npz", 300))},
        "train": {"arch": "file", "model_file": str(tmp_path / "net.keras"), "epochs": 1},
        "imp": {"num_rounds": 1}})
    job_id = queue.submit(cfg, home)
    (tmp_path / "net.keras").unlink()  # the job's copy is all a node may use
    dispatcher = _dispatcher(home, cluster.address, max_jobs=1)
    try:
        final = wait_state(home, job_id, timeout=400)
    finally:
        stop(dispatcher)
    assert final["state"] == queue.DONE and final.get("node"), final
    assert list(load_masks(home / job_id / runfolder.mask_file(1))) == [
        "conv", "block/conv", "hidden", "logits"]
    assert (home / job_id / runfolder.TICKET_MODEL).is_file()


def test_a_change_that_cannot_be_applied_fails_its_job_and_the_dispatcher_goes_on(cluster,
                                                                                  tmp_path):
    """A job folder whose log.txt is a link to a file outside it: the node's log cannot be
    written there, so that job fails with the reason while the dispatcher serves on."""
    home = tmp_path / "home"
    home.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("not the run's\n")
    text = tiny_yaml("applied", rounds=1, epochs=1)
    bad, good = queue.submit(text, home), queue.submit(text, home)
    (home / bad / runfolder.LOG).symlink_to(outside)
    dispatcher = _dispatcher(home, cluster.address)
    try:
        failed = wait_for(lambda: (dispatcher.poll() is not None and {"state": "no dispatcher"})
                          or ((s := queue.get(bad, home))["state"] in queue.FINISHED and s),
                          timeout=300)
        assert failed["state"] == queue.FAILED, failed
        assert failed["error"] == ("a streamed change cannot be applied: refusing a path outside "
                                   "the run folder: 'log.txt'"), failed
        assert wait_state(home, good, timeout=300)["state"] == queue.DONE
        assert dispatcher.poll() is None
    finally:
        stop(dispatcher)
    assert outside.read_text() == "not the run's\n"


def test_a_job_whose_node_dies_resumes_on_another_with_the_same_rounds(cluster, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    text = tiny_yaml("survivor", rounds=6, epochs=3, limit=800)  # long enough to be killed mid-run
    job_id = queue.submit(text, home)
    dispatcher = _dispatcher(home, cluster.address, max_jobs=1)
    try:
        # mid-round, after at least one finished round
        status = wait_for(lambda: (s := queue.get(job_id, home)).get("rounds_done", 0) >= 1
                          and s.get("batches") and s.get("node") and s, timeout=300)
        lost = status["node"]["id"]
        rounds_before = len(runfolder.read_rounds(home / job_id))
        cluster.kill_node(lost)
        final = wait_state(home, job_id, timeout=400)
        assert final["state"] == queue.DONE, final
        assert final["node"]["id"] != lost and final["remote_attempt"] == 2
    finally:
        stop(dispatcher)
    records = runfolder.read_rounds(home / job_id)
    assert len(records) > rounds_before
    keys = [(r["round"], r["series"]) for r in records]
    assert len(keys) == len(set(keys))  # no round twice
    local = _local_run(text, tmp_path / "local")
    assert _numbers(home / job_id) == _numbers(local)
    _same_masks(home / job_id, local)


def test_an_unreachable_head_is_a_one_line_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "jobs.cli", "worker", "--home",
                           str(tmp_path), "--ray", f"127.0.0.1:{port}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: --ray 127.0.0.1:{port}: cannot join the Ray cluster ([Errno 111] Connection "
        "refused). Start one with `make ray-local` or `ray start --head`.")
