"""The run folder's wire format (jobs/streaming.py), which the Ray backend relies on: changes since
the last scan only, appended files as tails, round records after the files they refer to."""

from __future__ import annotations

import json
import logging
import os

import pytest

from jobs import streaming
from lottery_engine.foundations import runfolder

from tests.conftest import round_record


def _copy(changes: list[streaming.Change], folder) -> None:
    for change in changes:
        streaming.apply(folder, change)


def test_a_folder_rebuilt_from_its_changes_equals_the_original(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    scanner = streaming.Scanner(src)
    (src / "mask_round_0.npz").write_bytes(b"mask 0")
    runfolder.append_round(src, round_record(0))
    first = scanner.changes()
    assert [c.path for c in first][-1] == runfolder.ROUNDS  # records come last
    _copy(first, dst)
    assert scanner.changes() == []  # nothing new since

    (src / "controls" / "random_reinit").mkdir(parents=True)
    (src / "controls" / "random_reinit" / "mask_round_1.npz").write_bytes(b"control")
    (src / "mask_round_0.npz").write_bytes(b"mask 0, rewritten")
    runfolder.append_round(src, round_record(1))
    second = scanner.changes()
    tail = next(c for c in second if c.path == runfolder.ROUNDS)
    line = (json.dumps(round_record(1).to_json()) + "\n").encode()
    assert tail.offset > 0 and tail.data == line  # only the new line travels
    _copy(second, dst)
    for path in ("mask_round_0.npz", "controls/random_reinit/mask_round_1.npz",
                 runfolder.ROUNDS):
        assert (dst / path).read_bytes() == (src / path).read_bytes()
    assert [r.round for r in runfolder.read_rounds(dst)] == [0, 1]


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


def test_a_torn_round_record_resumed_on_a_node_arrives_whole(tmp_path):
    """append_round drops a torn last line and appends in one go: the file grew, but its old bytes
    changed, so the new tail alone would weld onto the torn prefix on the receiving side."""
    dispatcher, node = tmp_path / "dispatcher", tmp_path / "node"
    dispatcher.mkdir()
    zero, one = (json.dumps(round_record(r, train_seconds=12.5).to_json()) for r in (0, 1))
    (dispatcher / runfolder.ROUNDS).write_text(f"{zero}\n{one[:-30]}")
    _copy(streaming.snapshot(dispatcher), node)
    scanner = streaming.Scanner(node)
    scanner.changes()  # what the node starts from: the dispatcher has it already
    runfolder.append_round(node, round_record(1, train_seconds=9.25,
                                              early_stop_val_loss=1.6294778791544188))
    _copy(scanner.changes(), dispatcher)
    assert (dispatcher / runfolder.ROUNDS).read_bytes() == (node / runfolder.ROUNDS).read_bytes()
    assert runfolder.read_rounds(dispatcher)[1].early_stop_val_loss == 1.6294778791544188

    runfolder.append_round(node, round_record(2))  # a plain append: a tail again
    [tail] = scanner.changes()
    assert tail.offset > 0 and tail.data == (json.dumps(round_record(2).to_json()) + "\n").encode()
    _copy([tail], dispatcher)
    assert (dispatcher / runfolder.ROUNDS).read_bytes() == (node / runfolder.ROUNDS).read_bytes()


def test_a_snapshot_takes_regular_files_only_and_names_what_it_skips(tmp_path, caplog):
    """A job folder is shipped to another machine: a link in it must not carry the file it
    points at (or a linked folder's files) along, and a fifo must not block the dispatcher."""
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(b"secret")
    (outside / "folder" / "data.npz").write_bytes(b"secret data")
    job = tmp_path / "job"
    (job / "controls").mkdir(parents=True)
    (job / runfolder.CONFIG).write_text("run: {}")
    (job / "controls" / "mask_round_0.npz").write_bytes(b"mask")
    (job / runfolder.LOG).symlink_to(outside / "secret.txt")
    (job / "controls" / "linked").symlink_to(outside / "folder")
    (job / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(job / "pipe")
    with caplog.at_level(logging.WARNING, logger="lottery.streaming"):
        changes = streaming.snapshot(job)
    assert [c.path for c in changes] == [runfolder.CONFIG, "controls/mask_round_0.npz"]
    skipped = sorted(r.args[0] for r in caplog.records)
    assert skipped == ["controls/linked", "dangling", runfolder.LOG, "pipe"]
