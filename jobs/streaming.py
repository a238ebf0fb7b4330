"""A run folder copied across a network, one change at a time (the Ray backend's wire format).

The side that runs a job scans its folder at moments when the engine is not writing (the listener
callbacks) and sends what changed; the side that holds the queue applies the changes to the real
run folder. Files that only grew (the round records, the log) travel as their new tail. Within a
batch the round records come last, so a reader that sees a round also finds its masks and weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lottery_engine import runfolder

from . import queue
from .worker import PROGRESS

# what the queue owns in a job folder: never streamed back; the progress is not shipped out either
QUEUE_FILES = frozenset({queue.STATUS, queue.CANCEL_FLAG})
NOT_SHIPPED = QUEUE_FILES | {PROGRESS}
APPENDED = frozenset({runfolder.ROUNDS, runfolder.LOG})  # written by appending only


@dataclass(frozen=True)
class Change:
    """File `path` (relative, '/'-separated) gets `data` at `offset` (0: the whole file)."""

    path: str
    offset: int
    data: bytes


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and not p.name.endswith(".tmp"))


class Scanner:
    """Remembers what was sent; `changes()` returns what changed in `folder` since."""

    def __init__(self, folder: Path, skip: frozenset[str] = QUEUE_FILES):
        self.folder, self.skip = folder, skip
        self.sent: dict[str, tuple[int, int]] = {}  # path -> (mtime_ns, size)

    def changes(self) -> list[Change]:
        found: list[Change] = []
        for path in _files(self.folder):
            rel = path.relative_to(self.folder).as_posix()
            if rel in self.skip:
                continue
            stat = path.stat()
            before = self.sent.get(rel)
            if before == (stat.st_mtime_ns, stat.st_size):
                continue
            grew = rel in APPENDED and before is not None and stat.st_size > before[1]
            offset = before[1] if grew else 0
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
            self.sent[rel] = (stat.st_mtime_ns, offset + len(data))
            found.append(Change(rel, offset, data))
        return sorted(found, key=lambda c: c.path == runfolder.ROUNDS)

def snapshot(folder: Path, skip: frozenset[str] = NOT_SHIPPED) -> list[Change]:
    """Every file of `folder` as whole-file changes: what a node needs to resume a job."""
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
