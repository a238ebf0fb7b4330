"""An experiment arm's `instability:` (issue 31): refused in one line naming the key when it is
wrong; when right, each of the arm's queued runs is analysed by the worker that trained it and the
write-up's "Instability" says what instability.jsonl holds. On tiny digit runs (one epoch of 7
steps, two rounds, two seeds)."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

import pytest

from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError
from lottery_engine.evaluation.significance import half_width
from lottery_engine.foundations import runfolder
from lottery_engine.science import experiment

from tests.conftest import ROOT, tiny_config

SETTING = "{rounds: [0, 2], rewind: [0, 3], copies: 2, points: 5}"


def _experiment(tmp_path, setting: str) -> str:
    config = tmp_path / "tiny.yaml"
    config.write_text(config_lib.to_yaml(tiny_config(imp__controls=[])))
    path = tmp_path / "experiment.yaml"
    path.write_text(f"name: Stability\nruns:\n  - {{label: Tiny, config: {config}, "
                    f"seeds: [0, 1], instability: {setting}}}\n")
    return str(path)


@pytest.mark.parametrize("setting, says", [
    ("[0, 2]", "runs[0].instability: expected a mapping"),
    ("{rounds: [0, 2], rewinds: [0, 3]}", "runs[0].instability.rewinds: unknown key. Did you "
                                          "mean 'rewind'?"),
    ("{rewind: [0, 3]}", "runs[0].instability.rounds: None is not a non-empty list"),
    ("{rounds: [0, 2], rewind: [0, '3']}", "runs[0].instability.rewind: [0, '3'] is not"),
    ("{rounds: [0, 0], rewind: [3]}", "runs[0].instability.rounds: [0, 0] lists a value twice"),
    ("{rounds: [0], rewind: [-1]}", "runs[0].instability.rewind: [-1] is not"),
    ("{rounds: [0], rewind: [0], copies: 1}", "runs[0].instability.copies: 1 is not a whole "
                                              "number >= 2"),
    ("{rounds: [0], rewind: [0], points: true}", "runs[0].instability.points: True is not"),
])
def test_a_bad_setting_is_refused_in_one_line_naming_its_key(tmp_path, setting, says):
    with pytest.raises(ConfigError) as info:
        experiment.load(_experiment(tmp_path, setting))
    assert says in str(info.value) and "\n" not in str(info.value)


def test_a_round_the_arm_never_trains_is_refused_before_training(tmp_path):
    exp = experiment.load(_experiment(tmp_path, "{rounds: [0, 3], rewind: [0]}"))
    with pytest.raises(ConfigError, match=r"arm 'Tiny': instability\.rounds: round 3 is past the "
                                          r"arm's imp\.num_rounds = 2; choose rounds from 0 to 2"):
        experiment.plan(exp, [])


def test_queued_arm_is_analysed_and_its_section_recomputes_from_the_lines(tmp_path,
                                                                          monkeypatch):
    home, results = tmp_path / "home", tmp_path / "docs" / "RESULTS-instability.md"
    cmd = [sys.executable, "-m", "jobs.cli", "experiment", "--config",
           _experiment(tmp_path, SETTING), "--home", str(home), "--workers", "1",
           "--results", str(results)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    from jobs import experiments

    [meta] = experiments.list_experiments(home)
    jobs = sorted(experiments.statuses(home, meta["id"]), key=lambda job: job["seed"])
    assert [job["state"] for job in jobs] == ["done", "done"]
    runs = [runfolder.read_lines_from(home / job["id"] / runfolder.INSTABILITY)[0]
            for job in jobs]
    for lines in runs:  # every (r, k) analysed once, by the job that trained the run
        assert [(x["round"], x["rewind_step"], x["pair"]) for x in lines] == [
            (0, 0, [0, 1]), (0, 3, [0, 1]), (2, 0, [0, 1]), (2, 3, [0, 1])]
    text = results.read_text()
    section = text.split("## Instability\n")[1]
    assert "stable at k when that mean is below 2 points" in section
    assert results.with_name("RESULTS-instability.instability.png").read_bytes()[:4] == \
        b"\x89PNG"
    for k in (0, 3):  # the table's row: each round's mean ± half the 95% interval over seeds
        cells = []
        for r in (0, 2):
            barriers = [next(x["test_instability"] for x in lines
                             if (x["round"], x["rewind_step"]) == (r, k)) for lines in runs]
            cells.append(f"{100 * statistics.fmean(barriers):.2f} ± "
                         f"{100 * half_width(barriers):.2f}")
        assert f"| {k} | {' | '.join(cells)} |" in section
    weights = 100 * (1 - runs[0][2]["sparsity"])
    assert f"- round 2 ({weights:.2f}% of the weights left): " in section
    assert section.count("- round ") == 2  # a sentence per analysed round

    # the Experiments page says the same sentences and draws the same figure, and offers it
    from app import lab
    from tests.app.test_app import app, figures

    page = app(home, monkeypatch, "views/experiments.py", experiment=meta["id"])
    assert not page.exception
    said = "\n".join(m.value for m in page.markdown)
    for sentence in [line[2:] for line in section.splitlines() if line.startswith("- round ")]:
        assert lab.plain(sentence) in said
    drawn = figures(page)[-1]
    assert drawn["key"] == "experiment-instability"
    assert [t["name"] for t in drawn["data"] if t.get("showlegend", True)][:2] == [
        f"round 0 ({100 * (1 - runs[0][0]['sparsity']):.2f}% of the weights left)",
        f"round 2 ({weights:.2f}% of the weights left)"]
    assert [b.label for b in page.get("download_button")][-1] == \
        "Download the instability figure (PNG)"


def test_make_instability_plans_issue_31s_experiment():
    """LeNet-300-100 on Fashion-MNIST over seeds 0-2 and a conv LeNet on seed 0, rounds 0, 7, 14
    and 18 at k = 0, 100, 300, 900 and 2,700, two copies, 31 points, into its own write-up;
    `make instability` runs it with `make experiment`'s workers."""
    from lottery_engine.data import dataset as data_lib

    if not data_lib.DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    exp = experiment.load(ROOT / "configs" / "experiment_instability.yaml")
    assert exp.results == "docs/RESULTS-instability.md"
    members = experiment.plan(exp, [])
    assert sorted((cfg.train.arch, seed) for _, seed, cfg in members) == [
        ("lenet", 0), ("lenet_300_100", 0), ("lenet_300_100", 1), ("lenet_300_100", 2)]
    for spec, _, cfg in members:
        assert spec.instability.rounds == (0, 7, 14, 18)
        assert spec.instability.rewinds == (0, 100, 300, 900, 2700)
        assert (spec.instability.copies, spec.instability.points) == (2, 31)
        assert (cfg.data.name, cfg.imp.controls, cfg.imp.num_rounds) == ("fashion_mnist", [], 18)
    make = (ROOT / "Makefile").read_text()
    recipe = make.split("\ninstability:")[1].split("\n\n")[0]
    assert "configs/experiment_instability.yaml" in recipe
    assert recipe.split("experiment_instability.yaml")[1].split()[-4:] == \
        make.split("\nexperiment:")[1].split("\n\n")[0].split()[-4:]  # the same worker settings
