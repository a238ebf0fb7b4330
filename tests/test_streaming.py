"""The run folder's wire format (jobs/streaming.py), which the Ray backend relies on: changes since
the last scan only, appended files as tails, round records after the files they refer to."""

from __future__ import annotations

import pytest

from jobs import streaming
from lottery_engine import runfolder


def _copy(changes: list[streaming.Change], folder) -> None:
    for change in changes:
        streaming.apply(folder, change)


def test_a_folder_rebuilt_from_its_changes_equals_the_original(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    scanner = streaming.Scanner(src)
    (src / "mask_round_0.npz").write_bytes(b"mask 0")
    runfolder.append_round(src, {"round": 0})
    first = scanner.changes()
    assert [c.path for c in first][-1] == runfolder.ROUNDS  # records come last
    _copy(first, dst)
    assert scanner.changes() == []  # nothing new since

    (src / "controls" / "random_reinit").mkdir(parents=True)
    (src / "controls" / "random_reinit" / "mask_round_1.npz").write_bytes(b"control")
    (src / "mask_round_0.npz").write_bytes(b"mask 0, rewritten")
    runfolder.append_round(src, {"round": 1})
    second = scanner.changes()
    tail = next(c for c in second if c.path == runfolder.ROUNDS)
    assert tail.offset > 0 and tail.data == b'{"round": 1}\n'  # only the new line travels
    _copy(second, dst)
    for path in ("mask_round_0.npz", "controls/random_reinit/mask_round_1.npz",
                 runfolder.ROUNDS):
        assert (dst / path).read_bytes() == (src / path).read_bytes()
    assert [r["round"] for r in runfolder.read_rounds(dst)] == [0, 1]


def test_queue_files_are_not_streamed_and_progress_is_not_shipped(tmp_path):
    (tmp_path / "status.json").write_text("{}")
    (tmp_path / "cancel.request").write_text("")
    (tmp_path / "progress.json").write_text("{}")
    (tmp_path / runfolder.CONFIG).write_text("run: {}")
    assert [c.path for c in streaming.Scanner(tmp_path).changes()] == [
        runfolder.CONFIG, "progress.json"]
    assert [c.path for c in streaming.snapshot(tmp_path)] == [runfolder.CONFIG]


def test_a_change_cannot_escape_the_run_folder(tmp_path):
    with pytest.raises(ValueError, match="outside the run folder"):
        streaming.apply(tmp_path / "run", streaming.Change("../evil", 0, b"x"))
