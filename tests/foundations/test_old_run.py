"""A run folder written before the round record became a declared type (tests/fixtures/old_run, see
tests/fixtures/README.md) still reads, resumes, reports and exports; and every format of rounds.jsonl
the engine has written loads, today's back to the same bytes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import pytest

from lottery_engine import pipeline, preflight
from lottery_engine.export import export_records, exporter
from lottery_engine.foundations import runfolder
from lottery_engine.foundations.events import IMP
from lottery_engine.foundations.round_record import STACKED, RoundRecord

OLD_RUN = Path(__file__).parents[1] / "fixtures" / "old_run"
SERIES = (IMP, "random_reinit", "random_prune")


@pytest.fixture
def old_run(tmp_path) -> Path:
    """A copy to work in: the checked-in folder stays as it was written."""
    return Path(shutil.copytree(OLD_RUN, tmp_path / "old_run"))


def _lines(folder: Path) -> list[str]:
    return [line for path in sorted(folder.rglob(runfolder.ROUNDS))
            for line in path.read_text().splitlines()]


def test_every_line_of_the_old_run_reads_and_writes_back_byte_for_byte():
    lines = _lines(OLD_RUN)
    assert len(lines) == 6  # two rounds of three series
    for line in lines:
        record = RoundRecord.from_json(json.loads(line))
        assert json.dumps(record.to_json()) == line
        assert record.extra == {}  # every key is a declared field
    stacked = runfolder.read_rounds(OLD_RUN)[1]
    assert (stacked.train_step, stacked.stack_refused, stacked.stacked_series) == (STACKED, None, 3)
    assert '"stack_refused": null' in _lines(OLD_RUN)[1]


def test_the_first_format_reads_with_the_meaning_its_readers_gave_it():
    """The first rounds.jsonl (2026-11-25) had no early-stop point, steps, training path or
    kept_weights: its numbers were the round's end, trained by Keras' fit."""
    today = json.loads(_lines(OLD_RUN)[0])
    later = {"start_step", "steps", "stopped_early", "kept_weights", "train_step", "jit_compile",
             "early_stop_step", "early_stop_val_loss", "early_stop_val_accuracy",
             "early_stop_test_accuracy", "val_curve"}
    first = RoundRecord.from_json({k: v for k, v in today.items() if k not in later})
    assert (first.early_stop_test_accuracy, first.early_stop_val_accuracy) == (
        today["test_accuracy"], today["val_accuracy"])
    assert (first.early_stop_step, first.steps, first.start_step, first.val_curve) == (0, 0, 0, [])
    assert (first.train_step, first.kept_weights, first.jit_compile) == ("keras", "final", None)
    assert "jit_compile" not in first.to_json()


def test_a_key_of_a_newer_writer_is_kept_and_written_back_last():
    raw = json.loads(_lines(OLD_RUN)[0]) | {"layer_channels": {"conv_1": 6}}
    record = RoundRecord.from_json(raw)
    assert record.extra == {"layer_channels": {"conv_1": 6}}
    assert list(record.to_json())[-1] == "layer_channels" and record.to_json() == raw


def test_the_old_run_resumes_reports_and_exports(old_run):
    before = runfolder.series(old_run)
    cfg = preflight.load_run(old_run, ["imp.num_rounds=2"])
    summary = pipeline.execute(cfg, old_run)

    after = runfolder.series(old_run)
    assert [[r.round for r in after[name]] for name in SERIES] == [[0, 1, 2]] * 3
    for name in SERIES:  # the old rounds are kept as they were, one more is appended
        assert after[name][:2] == before[name]
    assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]
    assert (old_run / runfolder.REPORT_HTML).is_file() and (old_run / runfolder.REPORT_MD).is_file()
    assert "id='ticket'" in (old_run / runfolder.REPORT_HTML).read_text()
    assert runfolder.is_complete(old_run)

    [record] = exporter.export(old_run, ["compact"], round_index=1, repeats=1)
    assert record["status"] == "ok", record
    compact = keras.saving.load_model(export_records.default_path(old_run, "compact"),
                                      safe_mode=True)
    assert compact.count_params() <= after[IMP][1].total_params  # no unit dies at 20%
