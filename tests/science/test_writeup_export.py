"""A write-up names each arm's ticket to ship (the sparsest round within 1 point of dense in
validation accuracy; its test accuracy only reported) and what its compact export buys, reusing the run's export of that round or making it, on real tiny runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lottery_engine import pipeline
from lottery_engine.export import export_records
from lottery_engine.foundations import runfolder
from lottery_engine.science import writeup

from tests.conftest import ROOT, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[int, Path]:
    """Two seeds of the tiny LeNet pruned to 4% of its weights in two rounds, no controls."""
    base = tmp_path_factory.mktemp("ship")
    folders = {seed: base / f"seed{seed}" for seed in (0, 1)}
    for seed, folder in folders.items():
        pipeline.execute(tiny_config(run__seed=seed, imp__prune_rate=0.8, report__html=False,
                                     report__markdown=False), folder)
    return folders


def _with_accuracies(trained: dict[int, Path], tmp_path: Path, accuracies: list[float],
                     test: list[float] | None = None) -> dict[int, Path]:
    """Copies of the runs whose rounds report these validation accuracies at early stop (and
    these test accuracies, by default the same), so which round is within 1 point of dense is
    fixed, not left to a tiny run's noise. The weights, masks and split stay the runs' own: that
    is what is exported."""
    folders = {}
    for seed, folder in trained.items():
        copy = folders[seed] = tmp_path / folder.name
        shutil.copytree(folder, copy)
        records = runfolder.read_rounds(copy)
        for record, val, accuracy in zip(records, accuracies, test or accuracies, strict=True):
            record.early_stop_val_accuracy, record.early_stop_test_accuracy = val, accuracy
        (copy / runfolder.ROUNDS).write_text("".join(json.dumps(r.to_json()) + "\n"
                                                     for r in records))
    return folders


def _ship_line(path: Path) -> str:
    [line] = [line for line in path.read_text().splitlines() if "Ticket to ship" in line]
    return line


def test_the_sparsest_round_within_a_point_is_exported_and_its_gains_quoted(trained, tmp_path):
    # round 1 falls 5 points below dense, round 2 is back within 1 point: the sparsest is 2
    folders = _with_accuracies(trained, tmp_path, [0.80, 0.75, 0.795])
    target = tmp_path / "RESULTS.md"
    said = writeup.write("Ship", {"Tiny": folders}, target)
    line = _ship_line(target)
    assert line == f"- {said['Tiny'][-1]}"
    remaining = runfolder.read_rounds(folders[0])[2]["remaining_prunable"] / \
        runfolder.read_rounds(folders[0])[2]["total_prunable"]
    assert line.startswith(f"- Ticket to ship: round 2 ({100 * remaining:.2f}% of the weights "
                           f"left), the sparsest within 1 point of dense in validation accuracy "
                           f"at early stop, mean over seeds (79.50% against 80.00%); its test "
                           f"accuracy, reported and not chosen on, 79.50% against dense's "
                           f"80.00%.")
    record = export_records.read(folders[0])["compact"]  # the first seed's run, that round
    assert (record["status"], record["round"]) == ("ok", 2)
    assert export_records.read(folders[1]) == {}
    dense = record["reference"]
    ms, dense_ms = (r["latency_ms_per_sample"]["batch_1"] for r in (record, dense))
    assert line.endswith(
        f"Its compact export (seed 0): {export_records.human_bytes(record['bytes'])}, "
        f"{export_records.ratio(record['bytes'] / dense['bytes'])} the dense ticket's "
        f"{export_records.human_bytes(dense['bytes'])}; {ms:.3g} ms per sample at batch 1, "
        f"{export_records.ratio(ms / dense_ms)} the dense ticket's {dense_ms:.3g} ms timed in "
        f"the same export (about ±10% is noise).")
    assert record["bytes"] < dense["bytes"]  # at 4% of the weights, units go
    assert "id='exports'" in (folders[0] / runfolder.REPORT_HTML).read_text()  # as after export

    writeup.write("Ship", {"Tiny": folders}, target)  # remade: the recorded export is reused
    assert export_records.read(folders[0])["compact"] == record
    assert _ship_line(target) == line


def test_an_export_of_another_round_is_not_taken_for_this_one(trained, tmp_path):
    folders = _with_accuracies(trained, tmp_path, [0.80, 0.80, 0.60])
    from lottery_engine.export import exporter as export

    export.export(folders[0], ["compact"], round_index=2, repeats=1)
    writeup.write("Ship", {"Tiny": folders}, tmp_path / "RESULTS.md")
    assert "Ticket to ship: round 1 (" in _ship_line(tmp_path / "RESULTS.md")
    assert export_records.read(folders[0])["compact"]["round"] == 1


def test_no_round_within_a_point_is_said_and_nothing_is_exported(trained, tmp_path):
    folders = _with_accuracies(trained, tmp_path, [0.80, 0.785, 0.70])
    writeup.write("Ship", {"Tiny": folders}, tmp_path / "RESULTS.md")
    assert _ship_line(tmp_path / "RESULTS.md") == (
        "- Ticket to ship: none; no pruning round is within 1 point of dense (80.00%) in "
        "validation accuracy at early stop, mean over seeds.")
    assert not (folders[0] / export_records.EXPORTS_JSON).exists()


def test_the_ticket_to_ship_is_chosen_on_validation_never_on_test(trained, tmp_path):
    # validation keeps round 2 within a point of dense; test would have chosen round 1
    folders = _with_accuracies(trained, tmp_path, [0.80, 0.80, 0.795], test=[0.80, 0.80, 0.70])
    writeup.write("Ship", {"Tiny": folders}, tmp_path / "RESULTS.md")
    line = _ship_line(tmp_path / "RESULTS.md")
    assert "round 2 (" in line and "reported and not chosen on, 70.00% against dense's 80.00%" \
        in line


def test_an_export_that_cannot_be_made_says_why_and_the_write_up_stands(trained, tmp_path):
    folders = _with_accuracies(trained, tmp_path, [0.80, 0.80, 0.80])
    (folders[0] / runfolder.weights_file(2)).unlink()
    writeup.write("Ship", {"Tiny": folders}, tmp_path / "RESULTS.md")
    line = _ship_line(tmp_path / "RESULTS.md")
    assert "round 2 (" in line and "Its compact export (seed 0): not made: " in line
    assert "no weights for that round" in line


def test_the_write_up_module_still_imports_without_tensorflow():
    """The dashboard draws experiments with writeup.py: its export is imported only when used."""
    code = ("import sys, lottery_engine.science.writeup; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
