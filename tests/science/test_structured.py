"""Tickets that run faster, measured: an experiment arm's `export:` exports and times every round
of its runs (locally and on a queue worker), and the write-up of arms that differ in granularity
gets "Tickets that run faster", its numbers those records' own, its ticket chosen on validation.
Real tiny runs (LeNet on 16x16 digits, two rounds), real exports."""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

import pytest

from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError
from lottery_engine.evaluation.significance import half_width
from lottery_engine.export import export_records
from lottery_engine.data import dataset as data_lib
from lottery_engine.export.every_round import EXAMPLES, round_path
from lottery_engine.foundations import runfolder
from lottery_engine.science import experiment, faster, writeup

from tests.conftest import ROOT, tiny_config

FORMATS = ["compact", "tflite"]


def _experiment(tmp_path: Path, arms: str) -> Path:
    config = tmp_path / "tiny.yaml"
    config.write_text(config_lib.to_yaml(tiny_config(imp__prune_rate=0.5, report__html=False,
                                                     report__markdown=False)))
    path = tmp_path / "experiment.yaml"
    path.write_text(f"name: Faster\nout: {tmp_path / 'runs'}\nresults: {tmp_path / 'R.md'}\n"
                    f"runs:\n" + arms.replace("CONFIG", str(config)))
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, dict[int, Path]]:
    """Weights (one seed, compact only) and channels (two seeds, compact and float TFLite), every
    round exported."""
    tmp = tmp_path_factory.mktemp("faster")
    exp = experiment.load(_experiment(tmp, (
        "  - {label: Weights, config: CONFIG, seeds: [0], export: [compact]}\n"
        f"  - {{label: Channels, config: CONFIG, seeds: [0, 1], export: {FORMATS}, "
        f"set: ['imp.granularity=channel']}}\n").replace("'", "")))
    return experiment.execute(exp, [])


def test_every_round_is_exported_once_into_its_own_records(folders):
    run = folders["Channels"][0]
    by_round = export_records.read_by_round(run)
    assert sorted(by_round) == [0, 1, 2]
    for round_index, records in by_round.items():
        assert sorted(records) == sorted(FORMATS)
        for fmt, record in records.items():
            assert (record["status"], record["round"]) == ("ok", round_index), record
            assert round_path(run, round_index, fmt).stat().st_size == record["bytes"]
    assert export_records.read(run) == {}  # the ticket's exports.json is left alone
    assert by_round[0]["compact"]["test_examples"] == min(EXAMPLES, len(
        data_lib.load_split(run / runfolder.SPLIT).test))
    # channels cut out: the compact model of the last round is smaller than the dense file
    last = by_round[2]["compact"]
    assert last["bytes"] < last["reference"]["bytes"]
    assert last["flops"] < by_round[0]["compact"]["flops"]
    stamp = (run / export_records.BY_ROUND_JSON).stat().st_mtime_ns
    exp = experiment.Experiment("Faster", str(run.parent), "", [experiment.RunSpec(
        "Channels", str(run / runfolder.CONFIG), [0], ["imp.granularity=channel"], FORMATS)])
    experiment.execute(exp, [])  # resumed: nothing left to export
    assert (run / export_records.BY_ROUND_JSON).stat().st_mtime_ns == stamp


def test_the_section_quotes_the_records_and_chooses_on_validation(folders, tmp_path):
    # round 1 holds on validation but not on test, round 2 the other way round: the choice is 1
    for by_seed in folders.values():
        for folder in by_seed.values():
            records = [dataclasses.replace(r, early_stop_val_accuracy=val,
                                           early_stop_test_accuracy=test)
                       for r, val, test in zip(runfolder.read_rounds(folder), [0.9, 0.895, 0.5],
                                               [0.9, 0.5, 0.9])]
            (folder / runfolder.ROUNDS).write_text(
                "".join(json.dumps(r.to_json()) + "\n" for r in records))
    target = tmp_path / "RESULTS.md"
    writeup.write("Faster", folders, target)
    text = target.read_text()
    assert f"## {faster.TITLE}" in text and "### Weights" in text and "### Channels" in text
    assert "no arm trained a control" in text and "random reinit" not in text  # none trained
    [line] = [x for x in text.splitlines() if x.startswith("- Channels (channels): fastest")]
    assert "round 1," in line and "test accuracy 50.00 ± 0.00% against dense's 90.00" in line
    assert "(-40.00 points, reported, not chosen on: not within 1 point on test)" in line
    assert "The dense network timed against itself (round 0) reads " in line
    runs = [folders["Channels"][seed] for seed in (0, 1)]
    records = [export_records.read_by_round(f) for f in runs]
    speed = [r[1]["compact"]["reference"]["latency_ms_per_sample"]["batch_256"]
             / r[1]["compact"]["latency_ms_per_sample"]["batch_256"] for r in records]
    litert = [r[0]["tflite"]["latency_ms_per_sample"]["batch_1"]
              / r[1]["tflite"]["latency_ms_per_sample"]["batch_1"] for r in records]
    assert f"Keras {statistics.fmean(speed):.2f}× ± {half_width(speed):.2f} at batch 256" in line
    assert f"LiteRT float {statistics.fmean(litert):.2f}× ± {half_width(litert):.2f} at batch 1" \
        in line
    assert "Against the targets: file " in line and ("meets ≥ 2.0×" in line
                                                     or "misses ≥ 2.0×" in line)
    rows = [x for x in text.split("### Channels")[1].splitlines() if x.startswith("| 2 |")]
    units = runfolder.read_rounds(runs[0])[2]
    assert rows and f"| {100 * units['remaining_units'] / units['total_units']:.1f}% |" in rows[0]
    assert "| – |" in text.split("### Weights")[1].split("### Channels")[0]  # no units there


def test_arms_of_one_granularity_get_no_section(folders, tmp_path):
    assert faster.section({"Weights": folders["Weights"]}) == ""
    assert faster.applies(folders)


@pytest.mark.parametrize("value", ["[compact, zip]", "compact", "[tflite, tflite]", "[]"])
def test_a_bad_export_list_is_refused_in_one_line(tmp_path, value):
    path = _experiment(tmp_path, f"  - {{label: A, config: CONFIG, export: {value}}}\n")
    with pytest.raises(ConfigError) as caught:
        experiment.load(path)
    message = str(caught.value)
    assert "runs[0].export:" in message and "tflite-int8" in message and "\n" not in message


def test_a_queue_worker_exports_every_round_of_an_arm_that_asks(tmp_path):
    from jobs import experiments, worker

    exp = experiment.load(_experiment(tmp_path, "  - {label: A, config: CONFIG, seeds: [3], "
                                                "export: [compact]}\n"))
    home = tmp_path / "home"
    experiment_id = experiments.submit(exp, experiment.plan(exp, ["imp.num_rounds=1"]), home)
    server = worker.Worker(home, "cpu", threads=1)
    server.serve(once=True)
    for write_up in server.write_ups:  # the experiment's write-up, started by its last job
        write_up.wait(timeout=300)
    [job] = experiments.statuses(home, experiment_id)
    assert job["state"] == "done", job
    by_round = export_records.read_by_round(home / job["id"])
    assert {r: sorted(formats) for r, formats in by_round.items()} == {0: ["compact"],
                                                                        1: ["compact"]}


def test_make_structured_runs_three_granularities_per_network_alike():
    """The shipped experiment: per network, unstructured IMP, channel IMP and IMP-Refill, 3 seeds
    each, differing in granularity only, every round exported; `make structured` runs it with
    `make experiment`'s workers."""
    if not data_lib.DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    exp = experiment.load(ROOT / "configs" / "experiment_structured.yaml")
    members = experiment.plan(exp, [])
    assert len(members) == 18
    arms: dict[str, set] = {}
    for spec, _, cfg in members:
        assert spec.export == ["compact", "tflite", "tflite-int8"]
        assert cfg.data.name == "fashion_mnist" and cfg.data.image_size == [28, 28]
        protocol = (cfg.train.epochs, cfg.imp.num_rounds, cfg.imp.prune_rate, cfg.imp.rewind,
                    cfg.data.limit_total)
        arms.setdefault(cfg.train.arch, set()).add((cfg.imp.granularity, cfg.imp.refill, protocol))
    assert set(arms) == {"lenet", "conv2"}
    for found in arms.values():
        assert {(g, r) for g, r, _ in found} == {("weight", False), ("channel", False),
                                                 ("channel", True)}
        assert len({protocol for _, _, protocol in found}) == 1
    make = (ROOT / "Makefile").read_text()
    recipe = make.split("\nstructured:")[1].split("\n\n")[0]
    assert "configs/experiment_structured.yaml" in recipe
    assert recipe.split("experiment_structured.yaml")[1].split()[-4:] == \
        make.split("\nexperiment:")[1].split("\n\n")[0].split()[-4:]  # the same worker settings
