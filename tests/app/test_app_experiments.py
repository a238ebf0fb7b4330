"""The Experiments page and experiment arms on Compare, through AppTest, over jobs a real worker ran."""

from __future__ import annotations

import pytest

from app.lab import plain
from jobs import experiments, queue
from lottery_engine.config import load as config_lib
from lottery_engine.science import experiment as experiment_lib

from tests.jobs_helpers import start_worker, stop, tiny_yaml, wait_for
from tests.app.test_app import app, figures


@pytest.fixture(scope="module")
def finished_experiment(tmp_path_factory):
    """Two seeds of a tiny config with a control, run by one real worker; the worker that ends
    the last job writes the write-up."""
    home = tmp_path_factory.mktemp("experiments-home")
    cfg = config_lib.loads(tiny_yaml("tiny", rounds=1, extra="imp: {num_rounds: 1, controls: "
                                     "[random_reinit]}").replace(
        "imp: {prune_rate: 0.2, num_rounds: 1, target_sparsity: 0.99}\n", ""))
    exp, members = experiment_lib.one_arm("Tiny arm", cfg, [0, 1])
    experiment_id = experiments.submit(exp, members, home)
    worker = start_worker(home)
    try:
        results = experiments.folder(home, experiment_id) / experiments.RESULTS
        wait_for(results.is_file, timeout=300)
    finally:
        stop(worker)
    return home, experiment_id


def test_launching_an_experiment_queues_one_job_per_seed(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch, "views/experiments.py")
    assert not at.exception
    seeds = next(n for n in at.number_input if n.label == "Seeds")
    seeds.set_value(2)
    next(m for m in at.multiselect if m.label == "Controls").set_value(["random_prune"])
    next(t for t in at.text_input if t.label == "Experiment name").set_value("Two seeds")
    next(b for b in at.button if b.label == "Queue experiment").click().run()
    assert not at.exception and "Queued experiment" in at.success[0].value
    [meta] = experiments.list_experiments(tmp_path)
    jobs = experiments.statuses(tmp_path, meta["id"])
    assert [(j["label"], j["seed"], j["state"]) for j in jobs] == [
        ("Two seeds", 0, "queued"), ("Two seeds", 1, "queued")]
    cfg = config_lib.load(tmp_path / jobs[1]["id"] / "config.yaml")
    assert (cfg.run.seed, cfg.imp.controls, cfg.imp.target_sparsity) == (1, ["random_prune"], 0.9)


def test_a_refused_experiment_config_names_the_key(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch, "views/experiments.py")
    next(t for t in at.text_area if t.label.startswith("…or paste")).set_value(
        "train: {epochs: 0}")
    next(b for b in at.button if b.label == "Queue experiment").click().run()
    assert "train.epochs" in at.error[0].value
    assert queue.list_jobs(tmp_path) == []


def test_experiment_page_shows_jobs_figures_verdicts_and_the_write_up(finished_experiment,
                                                                      monkeypatch):
    home, experiment_id = finished_experiment
    at = app(home, monkeypatch, "views/experiments.py")
    assert not at.exception
    assert "2 of 2 jobs finished" in at.get("progress")[0].proto.text
    table = at.dataframe[0].value
    assert list(table["seed"]) == [0, 1] and set(table["state"]) == {"done"}
    [figure] = figures(at)
    names = {t.get("name") for t in figure["data"]}
    assert {"winning ticket", "random reinit"} <= names
    # two rows: accuracy at early stop and the early-stop iteration, over two rounds
    assert figure["layout"]["yaxis"]["title"]["text"].startswith("test accuracy at early stop")
    assert figure["layout"]["yaxis2"]["title"]["text"] == "early-stop iteration"
    assert any("Dense network: test accuracy at early stop" in m.value for m in at.markdown)
    download = next(b for b in at.get("download_button") if "RESULTS.md" in b.proto.label)
    written = (experiments.folder(home, experiment_id) / experiments.RESULTS).read_text()
    assert "## Tiny arm" in written and "Ticket minus control" in written
    assert download.proto.label == "Download RESULTS.md"


def test_compare_page_draws_an_experiment_arm_as_means_over_seeds(finished_experiment,
                                                                  monkeypatch):
    home, experiment_id = finished_experiment
    at = app(home, monkeypatch, "views/compare.py")
    arm = next(o for o in at.multiselect[0].options if o.startswith("experiment Tiny arm"))
    at.multiselect[0].set_value([arm]).run()
    assert not at.exception
    rows = at.dataframe[0].value
    assert len(rows) == 4  # 2 rounds x (ticket, random reinit)
    jobs = experiments.statuses(home, experiment_id)
    from lottery_engine.foundations import runfolder

    dense = [runfolder.read_rounds(home / j["id"])[0]["val_accuracy"] for j in jobs]
    trace = next(t for t in figures(at)[0]["data"] if t.get("name", "").endswith("ticket"))
    assert trace["y"][0] == pytest.approx(sum(dense) / 2)


def test_a_refused_experiment_field_is_worded_for_a_person(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch, "views/experiments.py")
    next(n for n in at.number_input if n.label == "Target sparsity").set_value(1.5)
    next(b for b in at.button if b.label == "Queue experiment").click().run()
    assert [e.value for e in at.error] == [
        plain("Not queued: Target sparsity: 1.5 does not work here; give a number in (0, 1].")]
    assert "config key `imp.target_sparsity`" in [c.value for c in at.caption]
    assert queue.list_jobs(tmp_path) == []
