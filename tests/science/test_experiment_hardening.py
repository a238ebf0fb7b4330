"""Experiment hardening: arms that cannot share folders or seeds, seeds read strictly, a write-up
that overwrites only its own earlier self, and a write-up that says what was trained (steps, the
late-rewinding cap, what random reinit starts from) and claims nothing without spread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jobs import experiments, queue
from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError
from lottery_engine.evaluation import significance
from lottery_engine.foundations import runfolder
from lottery_engine.foundations.round_record import RoundRecord
from lottery_engine.science import experiment, over_seeds, writeup

from tests.conftest import ROOT, round_record, tiny_config


def _one_line(info: pytest.ExceptionInfo) -> str:
    message = str(info.value)
    assert "\n" not in message
    return message


def _config_file(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(config_lib.to_yaml(tiny_config()))
    return str(path)


def _experiment_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(f"name: Hardening\n{body}")
    return path


# 2: arm folders are unique, in --local and in the queue


def test_local_refuses_two_labels_that_share_a_run_folder(tmp_path):
    config = _config_file(tmp_path)
    exp = experiment.Experiment("Clash", str(tmp_path / "out"), "r.md",
                                [experiment.RunSpec("A b", config, [0]),
                                 experiment.RunSpec("A-b", config, [0])])
    with pytest.raises(ConfigError) as info:
        experiment.execute(exp, [])
    message = _one_line(info)
    assert "'A b'" in message and "'A-b'" in message and "a-b-seed" in message
    assert not (tmp_path / "out").exists()  # refused before anything trained


def test_the_queue_refuses_arms_that_share_a_label_or_a_folder(tmp_path):
    home = tmp_path / "home"
    for first, second in (("A b", "A-b"), ("Same", "Same")):
        arms = [experiment.RunSpec(first, "", [0]), experiment.RunSpec(second, "", [1])]
        members = [(spec, seed, experiment.member(tiny_config(), spec.label, seed))
                   for spec, seed in ((arms[0], 0), (arms[1], 1))]
        with pytest.raises(ConfigError) as info:
            experiments.submit(experiment.Experiment("Clash", "", ""), members, home)
        assert repr(first) in _one_line(info)
    assert experiments.list_experiments(home) == [] and queue.list_jobs(home) == []


# 10: seeds are distinct non-negative integers (or {from, count}); labels are unique


@pytest.mark.parametrize("seeds", ['"12"', "[1.9, true]", "[-1]", "[]", "{from: 0}", "7"])
def test_seeds_that_are_not_a_list_of_non_negative_integers_are_refused(tmp_path, seeds):
    path = _experiment_file(tmp_path, f"runs:\n  - {{label: A, config: c.yaml, seeds: {seeds}}}\n")
    with pytest.raises(ConfigError) as info:
        experiment.load(path)
    message = _one_line(info)
    assert str(path) in message and "runs[0].seeds" in message and "{from: 0, count: 3}" in message


def test_seeds_as_a_range_and_by_default(tmp_path):
    path = _experiment_file(tmp_path, "runs:\n  - {label: A, config: c.yaml, seeds: "
                                      "{from: 3, count: 2}}\n  - {label: B, config: c.yaml}\n")
    assert [spec.seeds for spec in experiment.load(path).runs] == [[3, 4], [0]]


def test_a_seed_twice_or_a_label_twice_is_refused_before_any_job(tmp_path):
    config = _config_file(tmp_path)
    twice = _experiment_file(tmp_path, f"runs:\n  - {{label: A, config: {config}, "
                                       f"seeds: [0, 0]}}\n")
    with pytest.raises(ConfigError) as info:
        experiment.plan(experiment.load(twice), [])
    assert "'A'" in _one_line(info) and "seed 0 twice" in str(info.value)
    with pytest.raises(ConfigError) as info:  # --seeds replaces every arm's seeds
        experiment.plan(experiment.load(twice), [], seeds=[1, 1])
    assert "seed 1 twice" in _one_line(info)
    labels = _experiment_file(tmp_path, f"runs:\n  - {{label: A, config: {config}, seeds: [0]}}\n"
                                        f"  - {{label: A, config: {config}, seeds: [1], "
                                        f"set: ['train.epochs=2']}}\n")
    with pytest.raises(ConfigError) as info:
        experiment.plan(experiment.load(labels), [])
    assert "two arms are labelled 'A'" in _one_line(info)


# 9: the write-up is a .md file; it overwrites only an earlier write-up of its experiment


def _record(round_index: int, start: int, steps: int, accuracy: float,
            stopped: bool) -> RoundRecord:
    """A round record with the fields a write-up reads; the early-stop point 2 steps before the end
    (as patience 2 would leave it) and `epochs` as the engine counts them (each epoch begun)."""
    end = start + steps
    return round_record(round_index, remaining_prunable=100 * 0.8 ** round_index,
                        total_prunable=100, test_accuracy=accuracy,
                        early_stop_test_accuracy=accuracy, val_accuracy=accuracy,
                        early_stop_val_accuracy=accuracy,
                        early_stop_step=max(start + 1, end - 2), stopped_early=stopped,
                        start_step=start, steps=steps, epochs=-(-end // 3) - start // 3)


def _run_folder(folder: Path, series: dict[str, list[RoundRecord]], **config) -> Path:
    """A finished run folder without training: frozen config, a 90-image training split (3
    batches of 32 per epoch) and the round records of each series."""
    cfg = tiny_config(train__epochs=3, **config)
    folder.mkdir(parents=True)
    runfolder.atomic_write(folder / runfolder.CONFIG, config_lib.to_yaml(cfg))
    np.savez(folder / runfolder.SPLIT, train=np.arange(90), val=np.arange(5), test=np.arange(5))
    for name, records in series.items():
        target = folder if name == "imp" else runfolder.control_dir(folder, name)
        target.mkdir(parents=True, exist_ok=True)
        for record in records:
            runfolder.append_round(target, record)
    return folder


def _folders(tmp_path: Path) -> dict[str, dict[int, Path]]:
    """One seed rewound to init (T = 9): round 0 stops at step 4, mid-epoch 2; round 1 runs to 9."""
    folder = _run_folder(tmp_path / "run", {"imp": [_record(0, 0, 4, 0.9, True),
                                                    _record(1, 0, 9, 0.91, False)]})
    return {"Arm": {0: folder}}


def test_a_write_up_must_be_a_markdown_file(tmp_path):
    path = _experiment_file(tmp_path, "results: some/file.txt\n"
                                      "runs:\n  - {label: A, config: c.yaml, seeds: [0]}\n")
    with pytest.raises(ConfigError) as info:
        experiment.load(path)
    assert "results" in _one_line(info) and "some/file.md" in str(info.value)
    with pytest.raises(ConfigError):
        writeup.write("Hardening", _folders(tmp_path), tmp_path / "some" / "file.txt")
    assert not (tmp_path / "some").exists()


def test_a_write_up_overwrites_only_its_own_experiments_earlier_write_up(tmp_path):
    folders = _folders(tmp_path)
    target = tmp_path / "docs" / "RESULTS.md"
    target.parent.mkdir()
    target.write_text("# Notes of mine\n")
    with pytest.raises(ConfigError) as info:
        writeup.write("Hardening", folders, target)
    assert str(target) in _one_line(info)
    assert target.read_text() == "# Notes of mine\n"
    target.unlink()
    (tmp_path / "docs" / "RESULTS.png").write_bytes(b"someone's figure")
    with pytest.raises(ConfigError) as info:  # the figure it would write is somebody else's
        writeup.write("Hardening", folders, target)
    assert "RESULTS.png" in _one_line(info)
    (tmp_path / "docs" / "RESULTS.png").unlink()
    writeup.write("Hardening", folders, target)
    writeup.write("Hardening", folders, target)  # its own earlier write-up: remade
    text = target.read_text()
    assert "Figure: `RESULTS.png`" in text
    assert (tmp_path / "docs" / "RESULTS.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError) as info:  # another experiment's write-up is not this one's
        writeup.write("Another experiment", folders, target)
    assert "'Another experiment'" in _one_line(info)
    assert target.read_text() == text


# 12 and 15: what a late-rewound round trains, and what random reinit starts from


def test_protocol_states_the_late_rewinding_cap_and_the_reinit_start(tmp_path):
    late = _run_folder(tmp_path / "late", {}, imp__rewind="step:2",
                       imp__controls=["random_reinit", "random_prune"])
    text = writeup.protocol(late)
    assert ("every round after the first starts from the weights after step 2 of round 0 and "
            "trains at most T − k = 9 − 2 = 7 steps") in text
    assert "early-stop iterations count from step 0 of round 0 (they include the 2 rewind " \
           "steps)" in text
    assert "random reinit starts from a fresh initialisation at step 2" in text
    assert "not a like-for-like control" in text and "OpenLTH" in text
    ticket_only = writeup.protocol(_run_folder(tmp_path / "ticket", {}, imp__rewind="step:2"))
    assert "at most T − k" in ticket_only and "random reinit" not in ticket_only
    at_init = writeup.protocol(_run_folder(tmp_path / "init", {},
                                           imp__controls=["random_reinit"]))
    assert "T − k" not in at_init and "fresh initialisation" not in at_init


def test_results_md_words_late_rewinding_as_the_generator_does(tmp_path):
    """docs/RESULTS.md was edited by hand (the experiment takes two hours): each arm's protocol
    line must be what the generator writes for that arm's config on Fashion-MNIST's 54,000
    training images, and the notes must not call T − k what every late round trained."""
    exp = experiment.load(ROOT / "configs" / "experiment_fashion.yaml")
    docs = (ROOT / "docs" / "RESULTS.md").read_text()
    for i, spec in enumerate(exp.runs):
        cfg = config_lib.load(spec.config, spec.overrides)
        folder = tmp_path / str(i)
        folder.mkdir()
        runfolder.atomic_write(folder / runfolder.CONFIG, config_lib.to_yaml(cfg))
        np.savez(folder / runfolder.SPLIT, train=np.arange(54_000))
        assert f"Protocol: {writeup.protocol(folder)} Seeds:" in docs, spec.label
    for text in (docs, exp.notes):
        assert "remaining 12,600 steps" not in text
        assert "at most T − k = 12,600 steps" in text and "include the 900 rewind steps" in text
    assert docs.splitlines()[0] == writeup.marker(exp.name)
    assert "Figure: `RESULTS.png`" in docs


# 13: no spread, no claim


def test_a_difference_with_no_spread_claims_nothing():
    exact = significance.paired([0.95, 0.95], [0.94, 0.94])  # the same difference, bit for bit
    rounded = significance.paired([0.95, 0.93], [0.94, 0.92])  # the same up to float rounding
    for diff in (exact, rounded):
        assert not diff.significant and diff.mean == pytest.approx(0.01)
        assert "no spread" in diff.text() and "CI" not in diff.text()
    remaining = [1.0, 0.8]
    cells = {name: [over_seeds.Cell(r, remaining[r], accs, [100.0, 200.0], 2, accs)
                    for r, accs in enumerate(rounds)]
             for name, rounds in (("imp", [[0.9, 0.92], [0.95, 0.95]]),
                                  ("random_reinit", [[0.9, 0.92], [0.94, 0.94]]))}
    said = " ".join(writeup.verdicts(cells))
    assert "significantly (Holm-adjusted p < 0.05 over the arm's 0 tests) at no round" in said
    assert "at round 1 (80.00% left) every seed gives the same difference (no spread)" in said
    assert "(no spread)" in writeup._difference_table(cells)


# 14: training is counted in steps, against T − start_step per round


def test_the_write_up_counts_steps_trained_not_epochs_begun(tmp_path):
    late = _run_folder(tmp_path / "late", {"imp": [_record(0, 0, 4, 0.9, True),
                                                   _record(1, 2, 3, 0.91, True)]},
                       imp__rewind="step:2")
    folders = _folders(tmp_path) | {"Late": {0: late}}
    target = tmp_path / "RESULTS.md"
    writeup.write("Hardening", folders, target)
    # init: 4 + 9 of 9 + 9; late: 4 of 9 and 3 of T − k = 7  ->  20 of 34
    assert ("steps trained, over every series, round and seed: 20 of the 34 that training every "
            "round to its cap would take (59%)") in target.read_text()
