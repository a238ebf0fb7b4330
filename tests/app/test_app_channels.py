"""Channel tickets on the dashboard (issue 30): granularity and refill on both forms, the Run
page's channel heatmap and speed-ups, and Compare's accuracy-against-latency trade-off, over two
real tiny runs (single weights; whole channels refilled) whose tickets were really exported."""

from __future__ import annotations

import json
import shutil

import pytest

from app import wording
from app.lab import plain
from jobs import queue
from lottery_engine import pipeline, preflight
from lottery_engine.config import load as config_lib
from lottery_engine.export import export_records, exporter
from lottery_engine.foundations import runfolder

from tests.conftest import tiny_config
from tests.app.test_app import app, figures

REFILL = "Refill (IMP-Refill)"


@pytest.fixture(scope="module")
def exported_pair(tmp_path_factory):
    """A home with a weight run and a refilled channel run (2 rounds, 1 epoch, 16x16 digits),
    each ticket exported as compact Keras and timed (a few calls: the numbers are read, not
    judged)."""
    home = tmp_path_factory.mktemp("channels-home")
    runs = {}
    for name, overrides in (("weights", {}), ("channels", {"imp__granularity": "channel",
                                                            "imp__refill": True})):
        runs[name] = runfolder.new_run_dir(home, name)
        pipeline.execute(tiny_config(run__name=name, report__html=False,
                                     report__markdown=False, **overrides), runs[name])
        exporter.export(runs[name], ["compact"], repeats=3)
    return home, runs


def choose(at, label: str, value):
    """Set a select box (an st.form's is sent by its submit button, not by a rerun)."""
    return next(s for s in at.selectbox if s.label == label).set_value(value)


def test_launch_sends_granularity_and_refill_which_shows_only_for_channels(tmp_path,
                                                                           monkeypatch):
    at = app(tmp_path, monkeypatch)
    assert not any(c.label == REFILL for c in at.checkbox)  # single weights: nothing to refill
    choose(at, "What to prune", "channel").run()
    next(c for c in at.checkbox if c.label == REFILL).check().run()
    next(b for b in at.button if b.label == "Queue run").click().run()
    assert not at.exception and not at.error
    [job] = queue.list_jobs(tmp_path)
    cfg = config_lib.load(tmp_path / job["id"] / "config.yaml")
    assert (cfg.imp.granularity, cfg.imp.refill) == ("channel", True)


def test_experiments_form_sends_both_and_refuses_refill_without_channels(tmp_path, monkeypatch):
    at = app(tmp_path, monkeypatch, "views/experiments.py")
    choose(at, REFILL, True)  # the quickstart config prunes single weights
    next(b for b in at.button if b.label == "Queue experiment").click().run()
    assert [e.value for e in at.error] == [plain(
        "Not queued: Refill (IMP-Refill): it keeps whole channels, so it needs them pruned: "
        "choose whole channels under What to prune, or turn refill off.")]
    assert "config key `imp.refill`" in [c.value for c in at.caption]
    assert queue.list_jobs(tmp_path) == []

    choose(at, "What to prune", "channel")
    next(b for b in at.button if b.label == "Queue experiment").click().run()
    assert not at.exception and not at.error
    cfg = config_lib.load(tmp_path / queue.list_jobs(tmp_path)[0]["id"] / "config.yaml")
    assert (cfg.imp.granularity, cfg.imp.refill) == ("channel", True)


def test_channels_where_no_pruned_layer_can_lose_units_is_refused_in_a_persons_words():
    raw = {"data": {"source": "bundled", "name": "digits"},
           "train": {"arch": "lenet"},
           "imp": {"granularity": "channel", "prunable_layers": ["output"]}}
    with pytest.raises(config_lib.ConfigError) as refused:
        preflight.from_dict(raw)
    [error] = [e for e in refused.value.errors if e.key == "imp.granularity"]
    refusal = wording.for_person(error, {"imp.granularity": "What to prune"})
    assert refusal.text.startswith("What to prune: no pruned layer of lenet can lose whole units "
                                   "(the output layer keeps its units; those that can: ")
    assert refusal.text.endswith("): choose single weights, or prune one of those layers "
                                 "(imp.prunable_layers).")


def heatmap_toggle(at):
    return [s for s in at.get("button_group") if "Heatmap counts" in s.proto.label]


def test_a_channel_run_can_show_its_channels_in_the_heatmap(exported_pair, monkeypatch):
    home, runs = exported_pair
    at = app(home, monkeypatch, "views/run.py", job=runs["weights"].name)
    assert not at.exception and not heatmap_toggle(at)
    at = app(home, monkeypatch, "views/run.py", job=runs["channels"].name)
    assert not at.exception and heatmap_toggle(at)
    assert figures(at)[1]["layout"]["title"]["text"] == "Per-layer sparsity"
    at.session_state["heatmap_of"] = "channels"
    heat = figures(at.run())[1]
    records = runfolder.read_rounds(runs["channels"])
    assert heat["layout"]["title"]["text"].startswith("Per-layer channel sparsity")
    assert heat["data"][0]["z"][-1] == pytest.approx(
        [100 * v for v in records[-1].layer_channel_sparsity.values()])


def test_the_export_table_shows_speed_up_as_the_latencies_ratio(exported_pair, monkeypatch):
    home, runs = exported_pair
    at = app(home, monkeypatch, "views/run.py", job=runs["channels"].name)
    table = at.dataframe[1].value  # after the rounds table
    record = export_records.read(runs["channels"])["compact"]
    dense, mine = record["reference"]["latency_ms_per_sample"], record["latency_ms_per_sample"]
    for batch in ("1", "256"):
        assert table[f"speed-up batch {batch}"][0] == export_records.ratio(
            dense[f"batch_{batch}"] / mine[f"batch_{batch}"])
    shown = list(at.dataframe[1].proto.column_order)
    assert set(shown) - {"note"} <= set(table.columns) and len(shown) == 8  # no sideways scroll
    assert shown.index("speed-up batch 256") + 1 == shown.index("test acc %")
    said = next(c.value for c in at.caption if "Milliseconds per sample" in c.value)
    assert f"Round {record['round']}'s ticket, run by Keras" in said
    assert f"compact {mine['batch_1']:.3g} at batch 1, {mine['batch_256']:.3g} at 256" in said


def test_compare_draws_accuracy_against_latency_one_point_per_exported_run(exported_pair,
                                                                          monkeypatch):
    home, runs = exported_pair
    at = app(home, monkeypatch, "views/compare.py")
    chosen = next(m for m in at.multiselect if m.label == "Runs and experiment arms")
    chosen.set_value(list(chosen.options)).run()
    assert not at.exception
    figure = next(f for f in figures(at) if f["layout"]["title"]["text"].startswith(
        "Accuracy against latency"))
    batch_1 = [t for t in figure["data"] if t.get("xaxis", "x") == "x"]
    assert {t["name"]: t["text"] for t in batch_1} == {
        "single weights": [t for t in chosen.options if "weights" in t],
        "whole channels, refilled": [t for t in chosen.options if "channels" in t]}
    record = export_records.read(runs["channels"])["compact"]
    refilled = next(t for t in batch_1 if t["name"] == "whole channels, refilled")
    assert (refilled["x"], refilled["y"]) == ([record["latency_ms_per_sample"]["batch_1"]],
                                              [record["test_accuracy"]])


def test_compare_reads_the_ticket_round_of_an_arm_that_exported_every_round(
        exported_pair, tmp_path, monkeypatch):
    _, runs = exported_pair
    run_dir = tmp_path / runs["channels"].name
    shutil.copytree(runs["channels"], run_dir)
    record = export_records.read(run_dir)["compact"]
    (run_dir / export_records.EXPORTS_JSON).unlink()  # as an experiment arm's `export:` leaves it
    export_records.write_by_round(run_dir, record)
    at = app(tmp_path, monkeypatch, "views/compare.py")
    [figure] = [f for f in figures(at) if f["layout"]["title"]["text"].startswith(
        "Accuracy against latency")]
    assert figure["data"][0]["x"] == [record["latency_ms_per_sample"]["batch_1"]]


def test_exports_of_another_round_than_the_winning_ticket_say_so_above_the_table(
        exported_pair, monkeypatch, tmp_path):
    """The table sits under "Deploy the ticket", below the winning ticket: files of another
    round (an experiment's ship line, `lottery export --round`) are said to be that round's."""
    home, runs = exported_pair
    assert not [i for i in app(home, monkeypatch, "views/run.py", job=runs["weights"].name).info
                if "not of this run's winning ticket" in i.value]
    run = tmp_path / runs["weights"].name
    shutil.copytree(runs["weights"], run)
    ticket = json.loads((run / runfolder.TICKET_JSON).read_text())["round"]
    other = 3 - ticket  # the run has rounds 1 and 2
    exporter.export(run, ["compact"], round_index=other, repeats=1)
    at = app(tmp_path, monkeypatch, "views/run.py", job=run.name)
    assert not at.exception
    assert [i.value for i in at.info if "winning ticket" in i.value] == [
        f"These files are of round {other}, not of this run's winning ticket (round {ticket}): "
        f"an experiment's write-up or `lottery export --round` exported them. Export makes the "
        f"winning ticket's."]
