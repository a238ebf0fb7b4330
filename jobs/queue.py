"""A file-based job queue: one folder per job under a home folder, states guarded by a filelock.

A job folder is also the job's run folder (the engine writes rounds, masks and the ticket there).
`status.json` holds the state and the live progress. Every change is a read-modify-write under the
home's lock, written by rename, so a dashboard can read it at any time without taking the lock.
Job ids are generated here (time + random suffix); user text never becomes a path.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from lottery_engine import config as config_lib
from lottery_engine import runfolder

STATUS = "status.json"
CANCEL_FLAG = "cancel.request"
LOCK = ".queue.lock"
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
DEFAULT_LEASE = 30.0
_ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")


class JobError(ValueError):
    """A queue operation that cannot be done (unknown job, wrong state)."""


def home(path: str | Path | None = None) -> Path:
    """The queue's home: the argument, else $LOTTERY_HOME, else ./runs."""
    root = Path(path or os.environ.get("LOTTERY_HOME", "runs"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _lock(root: Path) -> FileLock:
    return FileLock(str(root / LOCK), timeout=60)


def job_dir(root: Path, job_id: str) -> Path:
    if not _ID_RE.match(job_id or ""):
        raise JobError(f"job id {job_id!r}: not a job id (they look like 20261125-120000-a1b2c3).")
    path = Path(root) / job_id
    if not (path / STATUS).is_file():
        raise JobError(f"job {job_id}: no such job in {root}.")
    return path


def read_status(path: Path) -> dict[str, Any]:
    return runfolder.read_json(Path(path) / STATUS, {})


def _write_status(path: Path, status: dict) -> None:
    runfolder.write_json(Path(path) / STATUS, status)


def submit(cfg: config_lib.Config | str, root: str | Path | None = None) -> str:
    """Validate and enqueue a config (a Config or YAML text); returns the new job id.

    An invalid config raises ConfigError with the engine's message and creates nothing.
    """
    cfg = config_lib.loads(cfg) if isinstance(cfg, str) else cfg
    config_lib.validate(cfg)
    root = home(root)
    job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    staging = root / f".staging-{job_id}"
    staging.mkdir()
    runfolder.atomic_write(staging / runfolder.CONFIG, config_lib.to_yaml(cfg))
    _write_status(staging, {"id": job_id, "name": cfg.run.name, "state": QUEUED,
                            "submitted": time.time(), "num_rounds": cfg.imp.num_rounds,
                            "epochs": cfg.train.epochs})
    os.replace(staging, root / job_id)
    return job_id


def list_jobs(root: str | Path | None = None) -> list[dict]:
    """Every job's status, oldest first; read without the lock."""
    root = home(root)
    jobs = [read_status(p) for p in root.iterdir()
            if p.is_dir() and _ID_RE.match(p.name) and (p / STATUS).is_file()]
    return sorted((j for j in jobs if j), key=lambda j: j["submitted"])


def get(job_id: str, root: str | Path | None = None) -> dict:
    return read_status(job_dir(home(root), job_id))


def update(job_id: str, root: Path, **fields: Any) -> dict:
    """Merge fields into a job's status under the lock; returns the new status."""
    with _lock(root):
        path = job_dir(root, job_id)
        status = read_status(path) | fields
        _write_status(path, status)
        return status


def claim(worker_id: str, pid: int, root: Path, lease: float = DEFAULT_LEASE) -> str | None:
    """Take the oldest queued job, or a running one whose heartbeat is older than `lease`."""
    with _lock(root):
        now = time.time()
        for status in list_jobs(root):
            stale = (status["state"] == RUNNING
                     and now - status.get("heartbeat", 0) > lease)
            if status["state"] == QUEUED or stale:
                path = root / status["id"]
                status |= {"state": RUNNING, "worker": worker_id, "pid": pid,
                           "heartbeat": now, "claimed": now,
                           "started": status.get("started", now),
                           "resumed": status.get("resumed", 0) + (1 if stale else 0)}
                _write_status(path, status)
                return status["id"]
    return None


def finish(job_id: str, root: Path, state: str, error: str | None = None) -> dict:
    fields: dict[str, Any] = {"state": state, "finished": time.time()}
    if error:
        fields["error"] = error
    return update(job_id, root, **fields)


def heartbeat(job_id: str, root: Path, worker_id: str, progress: dict) -> dict | None:
    """Record progress if this worker still owns the job; None when it no longer does."""
    with _lock(root):
        path = job_dir(root, job_id)
        status = read_status(path)
        if status.get("worker") != worker_id or status["state"] != RUNNING:
            return None
        status |= progress | {"heartbeat": time.time()}
        _write_status(path, status)
        return status


def cancel(job_id: str, root: str | Path | None = None) -> str:
    """Cancel a queued job at once; ask a running one to stop at its next batch boundary."""
    root = home(root)
    with _lock(root):
        path = job_dir(root, job_id)
        status = read_status(path)
        if status["state"] == QUEUED:
            status |= {"state": CANCELLED, "finished": time.time()}
        elif status["state"] == RUNNING:
            (path / CANCEL_FLAG).touch()
            status["cancel_requested"] = True
        else:
            raise JobError(f"job {job_id}: already {status['state']}; nothing to cancel.")
        _write_status(path, status)
        return status["state"]


def cancel_requested(path: Path) -> bool:
    return (Path(path) / CANCEL_FLAG).exists()


def delete(job_id: str, root: str | Path | None = None) -> None:
    """Remove a finished job's folder (a queued or running job must be cancelled first)."""
    root = home(root)
    with _lock(root):
        path = job_dir(root, job_id)
        state = read_status(path)["state"]
        if state not in FINISHED:
            raise JobError(f"job {job_id}: is {state}; cancel it before deleting.")
        shutil.rmtree(path)
