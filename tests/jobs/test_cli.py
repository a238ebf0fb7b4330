"""The `lottery` command as a user runs it: a real subprocess."""

import json
import os
import subprocess
import sys

import pytest

from lottery_engine.foundations import runfolder

from tests.conftest import ROOT

TINY = ["--set", "data.image_size=[16, 16]", "--set", "data.limit_total=200",
        "--set", "train.epochs=1", "--set", "imp.num_rounds=2"]


def lottery(*args, cwd=ROOT):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("command", ["run", "ticket", "report"])
def test_help(command):
    result = lottery(command, "--help")
    assert result.returncode == 0 and "usage: lottery" in result.stdout


def test_export_help_says_where_out_may_write_and_offers_force():
    result = lottery("export", "--help")
    text = " ".join(result.stdout.split())
    assert result.returncode == 0 and "--force replace an existing --out file" in text
    assert "outside the run folder or in its export/ subfolder" in text


def test_run_quickstart_at_tiny_size_then_ticket_and_report(tmp_path):
    out = tmp_path / "qs"
    result = lottery("run", "--config", "configs/quickstart.yaml", "--out", str(out), *TINY)
    assert result.returncode == 0, result.stderr
    assert "winning ticket: round" in result.stdout
    records = runfolder.read_rounds(out)
    assert [r["round"] for r in records] == [0, 1, 2]
    assert runfolder.is_complete(out)

    (out / runfolder.REPORT_HTML).unlink()
    result = lottery("report", str(out))
    assert result.returncode == 0 and (out / runfolder.REPORT_HTML).is_file()
    result = lottery("ticket", str(out))
    assert result.returncode == 0, result.stderr
    ticket = json.loads((out / runfolder.TICKET_JSON).read_text())
    assert f"val accuracy {ticket['reloaded_val_accuracy']:.6f}" in result.stdout

    result = lottery("run", "--config", "configs/quickstart.yaml", "--out", str(out), *TINY)
    assert result.returncode == 2 and "holds a finished run" in result.stderr


@pytest.mark.parametrize("override,message", [
    ("imp.prune_rate=1.5", "imp.prune_rate: invalid value 1.5"),
    ("train.arch=resnet", "train.arch: unknown value 'resnet'"),
    ("imp.bogus=1", "imp.bogus: unknown key"),
])
def test_invalid_config_leaves_no_run_folder(tmp_path, override, message):
    out = tmp_path / "never"
    result = lottery("run", "--config", "configs/quickstart.yaml", "--out", str(out),
                     "--set", override)
    assert result.returncode == 2
    assert message in result.stderr
    assert not out.exists()


def test_malformed_yaml_is_reported_by_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: {name: [\n")
    result = lottery("run", "--config", str(bad), "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "bad.yaml: malformed YAML" in result.stderr
    assert not (tmp_path / "x").exists()


def test_submit_jobs_cancel_delete_from_the_command_line(tmp_path):
    home = str(tmp_path / "home")
    result = lottery("submit", "--config", "configs/quickstart.yaml", "--home", home, *TINY)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    listing = lottery("jobs", "--home", home).stdout
    assert job_id in listing and "queued" in listing and "quickstart" in listing
    assert lottery("delete", job_id, "--home", home).returncode == 2  # not finished yet
    assert "cancelled" in lottery("cancel", job_id, "--home", home).stdout
    assert "cancelled" in lottery("jobs", "--home", home).stdout
    assert lottery("delete", job_id, "--home", home).returncode == 0
    assert lottery("jobs", "--home", home).stdout.strip() == ""
    bad = lottery("submit", "--config", "configs/quickstart.yaml", "--home", home,
                  "--set", "imp.scope=local")
    assert bad.returncode == 2 and "imp.scope: unknown value 'local'" in bad.stderr
    assert lottery("cancel", "nope", "--home", home).returncode == 2
