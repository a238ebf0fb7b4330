"""The queue's hard cases: a job whose worker is gone (stalled), labels whose characters hide or
reorder text or cannot be encoded, YAML pasted into the dashboard that is not a config, and CLI
messages that must name the key or file and say what to do. Real worker processes, files, the
CLI and AppTest; nothing of ours is mocked."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time

import pytest
from filelock import FileLock

from app.lab import plain
from jobs import experiments, queue
from lottery_engine.config import load as config_lib

from tests.conftest import ROOT
from tests.jobs_helpers import start_worker, stop, tiny_yaml, wait_for, wait_state
from tests.app.test_app import app, button, select_rows
from tests.jobs.test_hardening_input import BOMB, QUICKSTART, assert_one_line_error, jobs_in, listing, lottery

LONG = {"rounds": 8, "epochs": 30, "limit": 400}  # a minute of work: still running when it is hit


def training(home, job_id: str) -> dict:
    """The job's status once its child process is past its first batch."""
    return wait_for(lambda: (s := queue.get(job_id, home)).get("batches") and s.get("child_pid")
                    and s)


def gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def heard_of_within(home, job_id: str, seconds: float) -> bool:
    return time.time() - queue.get(job_id, home)["heartbeat"] <= seconds


# --- 4. a job whose worker is gone ---------------------------------------------------------------

def test_a_job_whose_worker_was_killed_is_stalled_shown_so_cancelled_at_once_and_deleted(
        tmp_path, monkeypatch):
    job_id = queue.submit(tiny_yaml("orphan", **LONG), tmp_path)
    first = start_worker(tmp_path, "--lease", "5")
    try:
        child = training(tmp_path, job_id)["child_pid"]
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        wait_for(lambda: gone(child), timeout=10)
    finally:
        stop(first)
    assert queue.cancel(job_id, tmp_path) == "running"  # within the lease it may yet beat
    wait_for(lambda: not heard_of_within(tmp_path, job_id, 5.5), timeout=30)
    beat = queue.get(job_id, tmp_path)["heartbeat"]
    shown = f"stalled (worker gone since {time.strftime('%H:%M:%S', time.localtime(beat))})"

    at = app(tmp_path, monkeypatch, "views/runs.py")
    assert not at.exception
    assert at.dataframe[0].value["state"][0] == shown
    select_rows(at, [0])
    assert not button(at, "Cancel").disabled  # asked before: nothing will see that request
    assert button(at, "Delete").disabled
    at = app(tmp_path, monkeypatch, "views/run.py", job=job_id)
    assert not at.exception
    assert at.title[0].value == f"orphan · {plain(shown)}"
    assert not button(at, "Cancel this run").disabled
    assert any("start a worker" in w.value and "or cancel it" in w.value for w in at.warning)

    listed = lottery("jobs", "--home", str(tmp_path))
    assert f"{job_id}  {shown}" in listed.stdout, listed.stdout
    assert_one_line_error(lottery("delete", job_id, "--home", str(tmp_path)),
                          f"job {job_id}: {shown}; nothing runs it, so cancel it first "
                          f"(lottery cancel {job_id}), then delete it.")
    cancelled = lottery("cancel", job_id, "--home", str(tmp_path))
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"{job_id}: cancelled at once: its worker is gone"), \
        cancelled.stdout
    assert queue.get(job_id, tmp_path)["state"] == "cancelled"
    deleted = lottery("delete", job_id, "--home", str(tmp_path))
    assert deleted.returncode == 0, deleted.stderr
    assert not (tmp_path / job_id).exists()


def test_a_paused_worker_whose_job_was_cancelled_and_deleted_serves_on(tmp_path):
    job_id = queue.submit(tiny_yaml("paused", **LONG), tmp_path)
    serving = start_worker(tmp_path, "--lease", "3")
    child = None
    try:
        child = training(tmp_path, job_id)["child_pid"]
        with FileLock(str(tmp_path / queue.LOCK)):  # never stopped while holding the lock
            for pid in (serving.pid, child):  # as Ctrl-Z or a suspended machine leaves them
                os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: not heard_of_within(tmp_path, job_id, 3.5), timeout=30)
        assert queue.cancel(job_id, tmp_path) == "cancelled"
        queue.delete(job_id, tmp_path)
        os.kill(serving.pid, signal.SIGCONT)  # the worker comes back to a job that is gone
        wait_for(lambda: gone(child), timeout=20)
        after = queue.submit(tiny_yaml("after", rounds=1), tmp_path)
        assert wait_state(tmp_path, after)["state"] == "done"
        assert serving.poll() is None  # still serving
        assert not (tmp_path / job_id).exists()
    finally:
        for pid in (serving.pid, child):
            if pid and not gone(pid):
                os.kill(pid, signal.SIGCONT)
        stop(serving)


# --- 6. YAML pasted into the dashboard ------------------------------------------------------------

PASTED = [
    ("hello", "config: expected a mapping with sections run, data, ..., got str."),
    ("imp: 5", "imp: expected a mapping of keys, got int."),
    ("- 1", "config: expected a mapping with sections run, data, ..., got list."),
    ("run: {name: [unclosed", "config: malformed YAML"),
    (BOMB, "config: the YAML expands to more than 10,000 values"),
]


@pytest.mark.parametrize("text,message", PASTED, ids=["word", "imp-int", "list", "unclosed",
                                                      "bomb"])
def test_pasted_yaml_that_is_no_config_is_one_line_on_the_experiments_page(
        tmp_path, monkeypatch, text, message):
    at = app(tmp_path, monkeypatch, "views/experiments.py")
    next(t for t in at.text_area if t.label.startswith("…or paste")).set_value(text)
    next(b for b in at.button if b.label == "Queue experiment").click().run()
    assert not at.exception
    [error] = at.error
    assert message in error.value and "\n" not in error.value
    assert queue.list_jobs(tmp_path) == []


def test_a_pasted_section_left_empty_takes_its_defaults_on_the_experiments_page(tmp_path,
                                                                               monkeypatch):
    at = app(tmp_path, monkeypatch, "views/experiments.py")
    next(t for t in at.text_area if t.label.startswith("…or paste")).set_value(
        tiny_yaml("empty-imp").split("imp:")[0] + "imp: null\n")
    next(n for n in at.number_input if n.label == "Seeds").set_value(1)
    next(b for b in at.button if b.label == "Queue experiment").click().run()
    assert not at.exception and not at.error
    [meta] = experiments.list_experiments(tmp_path)
    [job] = experiments.statuses(tmp_path, meta["id"])
    cfg = config_lib.load(tmp_path / job["id"] / "config.yaml")
    assert cfg.imp.num_rounds == config_lib.ImpConfig().num_rounds
    assert cfg.imp.target_sparsity == 0.9  # the form's value


def test_the_dashboard_reads_yaml_only_through_the_one_reader():
    for path in sorted((ROOT / "app").rglob("*.py")):
        assert not re.search(r"yaml\.(safe_|full_|unsafe_)?load", path.read_text()), path


# --- 7. labels that hide or reorder text, or cannot be encoded ----------------------------------

REFUSED_LABELS = [
    ({"name": "\u200b\u200d"}, "run.name: invalid value '\\u200b\\u200d'; expected visible text"),
    ({"name": "invoice\u202efdp.exe"}, "run.name: invalid value 'invoice\\u202efdp.exe'; no "
                                       "direction override"),
    ({"name": "a\ud800b"}, "run.name: invalid value 'a\\ud800b'; U+D800 is half of a UTF-16 "
                           "pair"),
    ({"name": "a\x9bb"}, "run.name: invalid value 'a\\x9bb'; no control characters"),
    ({"notes": "a\ud800b"}, "notes: invalid value 'a\\ud800b'; U+D800 is half"),
    ({"notes": "left \u2066right\u2069"}, "notes: invalid value 'left \\u2066right\\u2069'; no "
                                         "direction override"),
    ({"notes": "\u200b"}, "notes: invalid value '\\u200b'; expected visible text"),
    ({"tags": ["ok", "\u2060"]}, "tags: invalid value '\\u2060'; expected visible text"),
    ({"tags": ["x\u202e"]}, "tags: invalid value 'x\\u202e'; no direction override"),
]


@pytest.mark.parametrize("labels,message", REFUSED_LABELS,
                         ids=[m[:28] for _, m in REFUSED_LABELS])
def test_labels_that_hide_or_reorder_text_are_refused_where_they_are_set(tmp_path, labels,
                                                                          message):
    job_id = queue.submit(tiny_yaml("plain"), tmp_path)
    before = queue.get(job_id, tmp_path)
    with pytest.raises(ValueError) as info:
        queue.annotate(job_id, tmp_path, **labels)
    assert message in str(info.value) and "\n" not in str(info.value)
    str(info.value).encode()  # the message itself can be printed
    assert queue.get(job_id, tmp_path) == before


def test_labels_in_any_script_with_line_breaks_in_notes_are_accepted(tmp_path):
    job_id = queue.submit(tiny_yaml("plain"), tmp_path)
    status = queue.annotate(job_id, tmp_path, name="שלום עולם 👩‍🔬", notes="line one\n\tline two",
                            tags=["नमस्ते", "🇩🇪"])
    assert (status["name"], status["tags"]) == ("שלום עולם 👩‍🔬", ["नमस्ते", "🇩🇪"])
    assert queue.annotate(job_id, tmp_path, notes="   ")["notes"] == "   "


def test_a_config_whose_run_name_is_invisible_is_refused_at_submit(tmp_path):
    raw = {"run": {"name": "\u200b\u200c\u2060"}}
    with pytest.raises(config_lib.ConfigError, match="run.name: invalid value .*expected visible"):
        config_lib.from_dict(raw)
    result = lottery("submit", "--config", QUICKSTART, "--home", str(tmp_path / "home"),
                     "--set", "run.name='\u202eabc'")
    assert_one_line_error(result, "run.name: invalid value '\\u202eabc'; no direction override")
    assert jobs_in(tmp_path / "home") == []


@pytest.fixture
def finished_job(tmp_path, tiny_run):
    """A job whose folder holds a finished run (the session's tiny run), to edit by hand."""
    job_id = queue.submit(tiny_yaml("finished"), tmp_path)
    shutil.copytree(tiny_run, tmp_path / job_id, dirs_exist_ok=True)
    queue.finish(job_id, tmp_path, queue.DONE)
    return tmp_path, job_id


def test_a_status_already_holding_a_lone_surrogate_breaks_no_page(finished_job, monkeypatch):
    home, job_id = finished_job
    path = home / job_id / queue.STATUS
    status = json.loads(path.read_text())
    status |= {"name": "bad\ud800name", "notes": "n\ud800\u202eotes", "tags": ["t\udfff"]}
    path.write_text(json.dumps(status))  # a hand edit: JSON keeps the surrogates as \ud800

    for page in ("views/run.py", "views/runs.py", "views/compare.py", "views/experiments.py"):
        at = app(home, monkeypatch, page, job=job_id)
        assert not at.exception, (page, at.exception)
    at = app(home, monkeypatch, "views/run.py", job=job_id)
    assert at.title[0].value == "bad\ufffdname · done"
    assert next(t for t in at.text_area if t.label == "Notes").value == "n\ufffd\ufffdotes"
    listed = lottery("jobs", "--home", str(home))
    assert listed.returncode == 0 and f"{job_id}  done      bad\ufffdname" in listed.stdout, \
        listed.stderr


# --- 11. messages that name the key or file and say what to do ---------------------------------

def test_a_control_character_in_a_set_value_names_the_key_and_what_to_do(tmp_path):
    home, out = tmp_path / "home", tmp_path / "out"
    for command in (["run", "--out", str(out)], ["submit", "--home", str(home)]):
        result = lottery(command[0], "--config", QUICKSTART, *command[1:], "--set",
                         "run.name=a\x1b[31mb", cwd=tmp_path)
        assert_one_line_error(result, "--set run.name: the control character U+001B at line 1, "
                                      "column 2 cannot appear in YAML; remove it.")
        assert "\x1b" not in result.stderr
    assert not out.exists() and jobs_in(home) == []


def test_a_config_file_that_is_not_utf8_names_the_file_and_what_to_do(tmp_path):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("run: {name: café}\n".encode("latin-1"))
    assert_one_line_error(lottery("submit", "--config", str(config), "--home",
                                  str(tmp_path / "home")),
                          f"config file {config}: not UTF-8 text (byte 0xe9 at offset 15); "
                          f"save it as UTF-8.")


def test_delete_refuses_a_job_folder_that_is_a_symlink_and_keeps_its_target(tmp_path,
                                                                             monkeypatch):
    elsewhere, home = tmp_path / "elsewhere", tmp_path / "home"
    job_id = queue.submit(tiny_yaml("linked"), elsewhere)
    queue.cancel(job_id, elsewhere)  # finished: a folder in its place could be deleted
    home.mkdir()
    (home / job_id).symlink_to(elsewhere / job_id)
    kept = listing(elsewhere)

    result = lottery("delete", job_id, "--home", str(home))
    assert_one_line_error(result, f"job {job_id}: {home / job_id} is a symbolic link to "
                                  f"{(elsewhere / job_id).resolve()}, not a folder the queue "
                                  f"made; nothing "
                                  f"was deleted. Remove the link with rm {home / job_id}")
    assert (home / job_id).is_symlink() and listing(elsewhere) == kept

    at = app(home, monkeypatch, "views/runs.py")
    select_rows(at, [0])
    button(at, "Delete").click().run()
    button(at, "Yes, delete").click().run()
    at.run()  # AppTest reruns the whole page where the browser reruns the table's fragment
    assert not at.exception
    assert "is a symbolic link" in at.error[0].value and "\n" not in at.error[0].value
    assert (home / job_id).is_symlink() and listing(elsewhere) == kept
