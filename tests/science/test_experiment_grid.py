"""Experiment grids: a run entry's `grid` expands into labelled arms, one per combination, each a
`set` on top of the entry's own; refused in one line naming `runs[i].grid.<key>` and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs import experiments, queue
from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError
from lottery_engine.report import compare as report
from lottery_engine.science import experiment, over_seeds, writeup

from tests.conftest import tiny_config
from tests.science.test_experiment_hardening import _record, _run_folder

SWEEP = "{imp.prune_rate: [0.2, 0.4], imp.rewind: [init, 'step:500']}"


def _experiment_file(tmp_path: Path, grid: str, extra: str = "") -> Path:
    """An experiment whose first entry is `grid` over the tiny config (with its own `set`)."""
    (tmp_path / "tiny.yaml").write_text(config_lib.to_yaml(tiny_config()))
    path = tmp_path / "experiment.yaml"
    path.write_text(f"name: Sweep\nout: {tmp_path / 'out'}\nruns:\n"
                    f"  - {{label: LeNet, config: tiny.yaml, seeds: [0, 1], "
                    f"set: ['train.epochs=2', 'imp.prune_rate=0.9'], grid: {grid}}}\n{extra}")
    return path


def _one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_grid_expands_into_one_labelled_arm_per_combination_in_order(tmp_path):
    exp = experiment.load(_experiment_file(
        tmp_path, SWEEP, "  - {label: Plain, config: tiny.yaml, seeds: [3]}\n"))
    assert [spec.label for spec in exp.runs] == [
        "LeNet · prune_rate=0.2 · rewind=init", "LeNet · prune_rate=0.2 · rewind=step:500",
        "LeNet · prune_rate=0.4 · rewind=init", "LeNet · prune_rate=0.4 · rewind=step:500",
        "Plain"]
    assert exp.runs[1].overrides == ["train.epochs=2", "imp.prune_rate=0.9",
                                     "imp.prune_rate=0.2", "imp.rewind=step:500"]
    assert [spec.seeds for spec in exp.runs] == [[0, 1]] * 4 + [[3]]
    assert {spec.config for spec in exp.runs} == {str(tmp_path / "tiny.yaml")}


def test_every_member_gets_its_arms_values_and_its_own_folder(tmp_path):
    exp = experiment.load(_experiment_file(tmp_path, SWEEP))
    members = experiment.plan(exp, ["train.batch_size=16"])
    assert len(members) == 8
    for spec, seed, cfg in members:
        rate, rewind = (part.split("=")[1] for part in spec.label.split(" · ")[1:])
        assert (cfg.imp.prune_rate, cfg.imp.rewind) == (float(rate), rewind)  # beats `set`
        assert (cfg.train.epochs, cfg.train.batch_size, cfg.run.seed) == (2, 16, seed)
        assert cfg.run.name == f"{spec.label} seed {seed}"
    folders = {experiment.run_dir(Path(exp.out), spec, seed) for spec, seed, _ in members}
    assert len(folders) == 8


def test_grid_values_reach_the_config_as_written(tmp_path):
    """YAML that str() would misread: 1.0e-05 (a string as '1e-05'), booleans, null."""
    grid = ("{train.learning_rate: [1.0e-05, 0.001], train.early_stopping: [true, false], "
            "train.eval_every: [null, 3]}")
    members = experiment.plan(experiment.load(_experiment_file(tmp_path, grid)), [])
    seen = {(cfg.train.learning_rate, cfg.train.early_stopping, cfg.train.eval_every)
            for _, _, cfg in members}
    assert seen == {(lr, stop, every) for lr in (1e-05, 0.001) for stop in (True, False)
                    for every in (None, 3)}
    assert members[0][0].label == ("LeNet · learning_rate=1.0e-05 · early_stopping=true · "
                                   "eval_every=null")


@pytest.mark.parametrize("grid, expected", [
    ("{imp.prune_rat: [0.2]}", ["runs[0].grid.imp.prune_rat: not a config key",
                                "Did you mean 'imp.prune_rate'?"]),
    ("{prune_rate: [0.2]}", ["runs[0].grid.prune_rate:", "section.key"]),
    ("{run.seed: [0, 1]}", ["runs[0].grid.run.seed:", "`seeds`", "remove it"]),
    ("{run.name: [a, b]}", ["runs[0].grid.run.name:", "label"]),
    ("{imp.prune_rate: []}", ["runs[0].grid.imp.prune_rate:", "non-empty list"]),
    ("{imp.prune_rate: 0.2}", ["runs[0].grid.imp.prune_rate:", "non-empty list"]),
    ("{imp.controls: [[random_reinit], []]}", ["runs[0].grid.imp.controls:",
                                              "not a single value", "`set`"]),
    ('{run.device: ["a\\nb"]}', ["runs[0].grid.run.device:", "one line"]),
    ("{imp.prune_rate: [0.2, 0.2]}", ["runs[0].grid.imp.prune_rate: 0.2 is listed twice"]),
    ("[imp.prune_rate]", ["runs[0].grid: expected a mapping", "{imp.prune_rate: [0.2, 0.4]}"]),
    ("{}", ["runs[0].grid: expected a mapping"]),
    ("{imp.prune_rate: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], "
     "train.epochs: [1, 2, 3, 4, 5, 6, 7, 8, 9]}",
     ["runs[0].grid: 8 × 9 = 72 combinations, more than 64", "split it"]),
])
def test_a_bad_grid_is_refused_in_one_line_naming_its_key(tmp_path, grid, expected):
    path = _experiment_file(tmp_path, grid)
    with pytest.raises(ConfigError) as info:
        experiment.load(path)
    message = _one_line(info)
    assert message.startswith(f"experiment file {path}: ")
    for part in expected:
        assert part in message


def test_a_misspelt_grid_is_refused_not_ignored(tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_text("runs:\n  - {label: A, config: c.yaml, grdi: {imp.prune_rate: [0.2]}}\n")
    with pytest.raises(ConfigError) as info:
        experiment.load(path)
    assert "runs[0].grdi: unknown key. Did you mean 'grid'?" in _one_line(info)


def test_grid_arms_that_would_share_folders_or_labels_are_refused_as_arms_are(tmp_path):
    alike = experiment.load(_experiment_file(tmp_path, "{imp.rewind: ['step:5', 'step 5']}"))
    with pytest.raises(ConfigError) as info:
        experiment.plan(alike, [])
    assert "would share the run folders" in _one_line(info)
    taken = experiment.load(_experiment_file(
        tmp_path, "{imp.prune_rate: [0.2]}",
        "  - {label: LeNet · prune_rate=0.2, config: tiny.yaml, seeds: [0]}\n"))
    with pytest.raises(ConfigError) as info:
        experiment.plan(taken, [])
    assert "two arms are labelled 'LeNet · prune_rate=0.2'" in _one_line(info)


def test_grid_arms_sweeps_one_config_like_an_experiment_file():
    exp, members = experiment.grid_arms("Sweep", tiny_config(), {"imp.prune_rate": [0.2, 0.4]},
                                        [0, 1])
    assert [spec.label for spec in exp.runs] == ["Sweep · prune_rate=0.2",
                                                 "Sweep · prune_rate=0.4"]
    assert [(spec.label, seed, cfg.imp.prune_rate, cfg.run.seed) for spec, seed, cfg in members] \
        == [("Sweep · prune_rate=0.2", 0, 0.2, 0), ("Sweep · prune_rate=0.2", 1, 0.2, 1),
            ("Sweep · prune_rate=0.4", 0, 0.4, 0), ("Sweep · prune_rate=0.4", 1, 0.4, 1)]
    with pytest.raises(ConfigError) as info:
        experiment.grid_arms("Sweep", tiny_config(), {"imp.prune_rate": [1.5]}, [0])
    assert "imp.prune_rate" in _one_line(info)  # the validator's own refusal of the value
    with pytest.raises(ConfigError) as info:
        experiment.grid_arms("Sweep", tiny_config(), {"imp.rate": [0.2]}, [0])
    assert _one_line(info).startswith("experiment 'Sweep': grid.imp.rate: not a config key")


def test_a_grid_is_queued_as_one_job_per_arm_and_seed_with_its_values(tmp_path):
    exp = experiment.load(_experiment_file(tmp_path, "{imp.rewind: [init, 'step:2']}"))
    home = tmp_path / "home"
    experiment_id = experiments.submit(exp, experiment.plan(exp, []), home)
    jobs = experiments.statuses(home, experiment_id)
    assert sorted((job["label"], job["seed"]) for job in jobs) == [
        ("LeNet · rewind=init", 0), ("LeNet · rewind=init", 1),
        ("LeNet · rewind=step:2", 0), ("LeNet · rewind=step:2", 1)]
    for job in jobs:
        assert job["state"] == queue.QUEUED
        cfg = config_lib.load_run(home / job["id"])
        assert cfg.imp.rewind == job["label"].split("rewind=")[1]
        assert (cfg.run.seed, cfg.run.name) == (job["seed"], f"{job['label']} seed {job['seed']}")
        assert (cfg.train.epochs, cfg.imp.prune_rate) == (2, 0.9)  # the entry's own `set`


def test_the_write_up_shows_a_grids_arms_side_by_side(tmp_path):
    exp = experiment.load(_experiment_file(tmp_path, "{imp.rewind: [init, 'step:2']}"))
    folders = {}
    for i, spec in enumerate(exp.runs):  # finished runs of seed 0, without training
        rounds = [_record(0, 0, 4, 0.9, True), _record(1, 2 * i, 3, 0.91, True)]
        rewind = spec.overrides[-1].removeprefix("imp.rewind=")
        folders[spec.label] = {0: _run_folder(tmp_path / f"arm{i}", {"imp": rounds},
                                              imp__rewind=rewind)}
    writeup.write(exp.name, folders, tmp_path / "RESULTS.md")
    text = (tmp_path / "RESULTS.md").read_text()
    assert text.index("## LeNet · rewind=init\n") < text.index("## LeNet · rewind=step:2\n")
    assert "rewind to step:2: every round after the first" in text  # each arm's own protocol
    titles = [a.text for a in report.experiment_figure(
        {label: over_seeds.aggregate(by_seed) for label, by_seed in folders.items()},
        writeup.SERIES_NAMES).layout.annotations]
    assert titles == list(folders)  # one column per arm
