"""A run folder copied across a network, one change at a time (the Ray backend's wire format).

The side that runs a job scans its folder at moments when the engine is not writing (the listener
callbacks) and sends what changed; the side that holds the queue applies the changes to the real
run folder. Files that only grew (the round records, the log) travel as their new tail, when the
bytes before it are still those sent; else whole. Within a batch the round records come last, so a
reader that sees a round also finds its masks and weights. Only regular files travel.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lottery_engine.foundations import runfolder

from . import queue
from .worker import PROGRESS

# what the queue owns in a job folder: never streamed back; the progress is not shipped out either
QUEUE_FILES = frozenset({queue.STATUS, queue.CANCEL_FLAG})
NOT_SHIPPED = QUEUE_FILES | {PROGRESS}
APPENDED = frozenset({runfolder.ROUNDS, runfolder.LOG})  # written by appending only

log = logging.getLogger("lottery.streaming")


@dataclass(frozen=True)
class Change:
    """File `path` (relative, '/'-separated) gets `data` at `offset` (0: the whole file)."""

    path: str
    offset: int
    data: bytes


@dataclass(frozen=True)
class _Sent:
    """What the other side holds of one file: the stat it was read at and, for an appended file,
    the digest of its bytes, so that a tail goes out only onto the very bytes it continues."""

    mtime_ns: int
    size: int
    digest: bytes | None


def _entries(folder: Path, under: str = "") -> Iterator[tuple[str, os.DirEntry]]:
    """Every entry below `folder` but its folders, with its '/'-separated relative path, in path
    order. A linked folder is an entry, not entered: what it holds lies outside `folder`."""
    with os.scandir(folder / under) as found:
        entries = sorted(found, key=lambda entry: entry.name)
    for entry in entries:
        rel = f"{under}/{entry.name}" if under else entry.name
        if entry.is_dir(follow_symlinks=False):
            yield from _entries(folder, rel)
        else:
            yield rel, entry


def _read(path: Path) -> bytes:
    """A file's bytes, refusing (OSError) to read through a link put in its place since it was
    listed as a regular file."""
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
        return f.read()


def _appended(data: bytes, before: _Sent | None) -> tuple[int, bytes]:
    """Where an appended file's new bytes start (0: it goes whole), and the digest of `data`.
    A file that grew may still have changed its old bytes: `append_round` drops a torn last line
    and appends in one go, and that tail alone would weld onto the torn line on the other side."""
    if before is None or len(data) <= before.size:
        return 0, hashlib.sha256(data).digest()
    digest = hashlib.sha256(memoryview(data)[:before.size])
    unchanged = digest.digest() == before.digest
    digest.update(memoryview(data)[before.size:])
    return (before.size if unchanged else 0), digest.digest()


class Scanner:
    """Remembers what was sent; `changes()` returns what changed in `folder` since. Only regular
    files travel: a link would carry what it points at, maybe from outside the run, to another
    machine, and a fifo or device would block or never end; each is logged once and skipped."""

    def __init__(self, folder: Path, skip: frozenset[str] = QUEUE_FILES):
        self.folder, self.skip = folder, skip
        self.sent: dict[str, _Sent] = {}
        self.refused: set[str] = set()  # not regular files, already logged

    def changes(self) -> list[Change]:
        found = [change for rel, entry in self._files()
                 if (change := self._change(rel, entry)) is not None]
        return sorted(found, key=lambda c: c.path == runfolder.ROUNDS)

    def _files(self) -> Iterator[tuple[str, os.DirEntry]]:
        for rel, entry in _entries(self.folder):
            if rel in self.skip or entry.name.startswith(".") or entry.name.endswith(".tmp"):
                continue
            if entry.is_file(follow_symlinks=False):
                yield rel, entry
            elif rel not in self.refused:
                self.refused.add(rel)
                log.warning("%s in %s: not sent, as it is not a regular file (links are not "
                            "followed)", rel, self.folder)

    def _change(self, rel: str, entry: os.DirEntry) -> Change | None:
        stat = entry.stat(follow_symlinks=False)
        before = self.sent.get(rel)
        if before is not None and (before.mtime_ns, before.size) == (stat.st_mtime_ns,
                                                                     stat.st_size):
            return None
        data = _read(self.folder / rel)
        offset, digest = _appended(data, before) if rel in APPENDED else (0, None)
        self.sent[rel] = _Sent(stat.st_mtime_ns, len(data), digest)
        return Change(rel, offset, data[offset:])


def snapshot(folder: Path, skip: frozenset[str] = NOT_SHIPPED) -> list[Change]:
    """Every regular file of `folder` as whole-file changes: what a node needs to resume a job."""
    return Scanner(folder, skip).changes()


def apply(folder: Path, change: Change) -> None:
    """Write one change into `folder`: a whole file atomically, a tail at its offset."""
    target = (folder / change.path).resolve()
    if folder.resolve() not in target.parents:
        raise ValueError(f"refusing a path outside the run folder: {change.path!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if change.offset == 0:
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(change.data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        return
    with open(target, "r+b") as f:
        f.seek(change.offset)
        f.write(change.data)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())
