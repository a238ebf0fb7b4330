"""A file-based job queue: one folder per job under a home folder, states guarded by a filelock.

A job folder is also the job's run folder (the engine writes rounds, masks and the ticket there).
`status.json` holds the state and the live progress. Every change is a read-modify-write under the
home's lock, written by rename, so a dashboard can read it at any time without taking the lock.
Job ids are generated here (time + random suffix); user text never becomes a path.

A status.json that cannot be read or lacks fields never stops a worker or the CLI: the job reads as
`broken` with the reason, no worker claims it, and it can be deleted. On a full disk, where a
rename needs space it has not got, a status is rewritten in place instead, so a job's end is still
recorded. Text in a status is read as it can be shown (labels.shown), so a label written by
hand or before today's rule never breaks a page or a terminal.

A running job whose heartbeat is older than its lease is `stalled`: no worker runs it (a live one
beats every second or so). Any worker may resume it, and until one does it can be cancelled at
once and then deleted, because nothing would ever see a request to stop at the next batch.

A job is an IMP run unless its status has a `kind`: `export` exports the winning ticket of
the finished run its status names (`run`), into that run's folder, as `lottery export RUN_DIR
--format all` does; `instability` analyses that run as `lottery instability` does
(instability_jobs.py). Their own folders hold only their status and log. The dashboard queues them
because it never runs TensorFlow. A run has one export job at a time, and the jobs on a run go
with it when it is deleted.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import secrets
import shlex
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from lottery_engine import preflight
from lottery_engine.config import load as config_lib
from lottery_engine.config import labels
from lottery_engine.config.data_sources import DATA_SOURCES
from lottery_engine.export import downloads
from lottery_engine.foundations import runfolder
from lottery_engine.foundations.faults import UserError, describe
from lottery_engine.models import keras_file

STATUS = "status.json"
CANCEL_FLAG = "cancel.request"
LOCK = ".queue.lock"
QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
BROKEN = "broken"  # status.json unreadable or incomplete; shown, never claimed, deletable
EXPORT = "export"  # the kind of a job that exports a finished run's ticket
INSTABILITY = "instability"  # the kind of a job that analyses a run's instability (issue 31)
STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED)
FINISHED = (DONE, FAILED, CANCELLED)
DEFAULT_LEASE = 30.0
_ID_RE = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
# a run folder made outside the queue (lottery run, find_ticket) by runfolder.new_run_dir
_RUN_RE = re.compile(r"[A-Za-z0-9._-]{1,40}-\d{8}-\d{6}-[0-9a-f]{6}")


class JobError(UserError, ValueError):
    """A queue operation that cannot be done (unknown job, wrong state)."""


def home(path: str | Path | None = None) -> Path:
    """The queue's home: the argument, else $LOTTERY_HOME, else ./runs."""
    root = Path(path or os.environ.get("LOTTERY_HOME", "runs"))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobError(f"queue home {root}: cannot be used ({describe(exc)}). Pass --home or set "
                       f"LOTTERY_HOME to a writable folder.") from None
    return root


def _lock(root: Path) -> FileLock:
    return FileLock(str(root / LOCK), timeout=60)


def job_dir(root: Path, job_id: str) -> Path:
    if not isinstance(job_id, str) or not (_ID_RE.fullmatch(job_id) or _RUN_RE.fullmatch(job_id)):
        raise JobError(f"job id {job_id!r}: not a job id (they look like 20261125-120000-a1b2c3).")
    path = Path(root) / job_id
    if not path.is_dir():
        raise JobError(f"job {job_id}: no such job in {root}.")
    return path


def _broken_reason(status: Any, path: Path) -> str | None:
    if not isinstance(status, dict):
        return "status.json holds no JSON object"
    missing = [key for key in ("id", "state", "submitted") if key not in status]
    if missing:
        return f"status.json lacks {', '.join(missing)}"
    if status["state"] not in STATES:
        return f"status.json has an unknown state {str(status['state'])[:40]!r}"
    if status["id"] != path.name:
        return f"status.json names another job ({str(status['id'])[:40]!r})"
    if not isinstance(status["submitted"], (int, float)) or isinstance(status["submitted"], bool):
        return "status.json has no submission time"
    return None


def _shown(value: Any) -> Any:
    """A status's text, in its lists and mappings too, as a page or a terminal can show it."""
    if isinstance(value, str):
        return labels.shown(value)
    if isinstance(value, list):
        return [_shown(item) for item in value]
    if isinstance(value, dict):
        return {_shown(key): _shown(item) for key, item in value.items()}
    return value


def read_status(path: Path) -> dict[str, Any]:
    """A job's status, its text as it can be shown; one that cannot be read or lacks fields
    reads as BROKEN with the reason."""
    return _shown(_read_status(Path(path)))


def _read_status(path: Path) -> dict[str, Any]:
    try:
        status = json.loads((path / STATUS).read_bytes())
        reason = _broken_reason(status, path)
    except FileNotFoundError:
        if runfolder.is_complete(path):
            return _outside_run(path)
        status, reason = {}, "status.json is missing"
    except (OSError, ValueError) as exc:
        status, reason = {}, f"status.json cannot be read ({describe(exc)})"
    if reason is None:
        return status
    try:
        submitted = path.stat().st_mtime
    except OSError:
        submitted = 0.0
    name = status.get("name") if isinstance(status, dict) else None
    return {"id": path.name, "name": name if isinstance(name, str) else path.name,
            "state": BROKEN, "error": reason, "submitted": submitted}


def _write_status(path: Path, status: dict) -> None:
    """Write by rename; on a full disk, overwrite the file in place in compact form (it fits in
    the blocks the old one holds), because a job's end must be recorded even then."""
    try:
        runfolder.write_json(Path(path) / STATUS, status)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        compact = json.dumps({k: v for k, v in status.items() if k != "history"},
                             separators=(",", ":")).encode()
        with open(Path(path) / STATUS, "r+b") as f:
            f.write(compact)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())


def submit(cfg: config_lib.Config | str, root: str | Path | None = None,
           experiment: dict | None = None) -> str:
    """Validate and enqueue a config (a Config or YAML text); returns the new job id.
    `experiment` ({id, label, seed}) groups the job under an experiment (jobs/experiments.py).

    An invalid config raises ConfigError with the engine's message and creates nothing.
    """
    if isinstance(cfg, str):
        cfg = preflight.loads(cfg)
    else:
        preflight.validate(cfg)
    root = home(root)
    cfg = copy.deepcopy(cfg)
    config_lib.absolute_paths(cfg)

    def fill(staging: Path, job_id: str) -> None:
        downloads.keep_model_name(staging, cfg.train.model_file)  # the user's name for it
        pinned = keras_file.pin(cfg, staging)  # a user's model travels in the job folder
        runfolder.atomic_write(staging / runfolder.CONFIG, config_lib.to_yaml(pinned))
        runfolder.write_json(staging / STATUS, {
            "id": job_id, "name": cfg.run.name, "state": QUEUED, "submitted": time.time(),
            "num_rounds": cfg.imp.num_rounds, "epochs": cfg.train.epochs,
            "arch": cfg.train.arch, "data": _data_label(cfg.data), "notes": "", "tags": []}
            | ({"experiment": experiment} if experiment else {}))

    return _create_job(root, "job", fill)


def _create_job(root: Path, what: str, fill: Callable[[Path, str], None]) -> str:
    """A new job folder, written whole in a staging folder by `fill(staging, job_id)` and
    renamed into place, so no reader ever sees half a job; returns its id."""
    job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    staging = root / f".staging-{job_id}"
    try:
        staging.mkdir()
        fill(staging, job_id)
        os.replace(staging, root / job_id)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise JobError(f"queue home {root}: the {what} could not be written "
                       f"({describe(exc, root)}).") from None
    return job_id


def is_export(status: dict) -> bool:
    return status.get("kind") == EXPORT


def is_run(status: dict) -> bool:
    """Whether the job is an IMP run, not a job on one (an export, an instability analysis)."""
    return "kind" not in status


def export_jobs(jobs: list[dict], run_id: str) -> list[dict]:
    """The export jobs of run `run_id` among `jobs` (list_jobs' answer, oldest first)."""
    return [job for job in jobs if is_export(job) and job.get("run") == run_id]


def submit_export(run_id: str, root: str | Path | None = None) -> str:
    """Queue the export of a finished run's winning ticket in every format; returns the job id.

    One export job per run: while one is queued or running another is refused (it would only
    measure the same ticket twice), and a finished one is replaced; what it exported stays in
    the run's exports.json."""
    root = home(root)
    with _lock(root):
        run = job_dir(root, run_id)
        status = read_status(run)
        if is_export(status):
            raise JobError(f"job {run_id}: an export job, not a run; export the run it names.")
        if not (runfolder.is_complete(run) and (run / runfolder.TICKET_MODEL).is_file()):
            raise JobError(f"run {run_id}: has no winning ticket yet; export it once it is done.")
        earlier = export_jobs(list_jobs(root), run_id)
        if live := [job for job in earlier if job["state"] not in FINISHED]:
            raise JobError(f"run {run_id}: its export {live[-1]['id']} is already "
                           f"{live[-1]['state']}.")

        def fill(staging: Path, job_id: str) -> None:
            for job in earlier:  # the finished export this one replaces
                shutil.rmtree(root / job["id"])
            runfolder.write_json(staging / STATUS, {
                "id": job_id, "kind": EXPORT, "run": run_id, "state": QUEUED,
                "name": f"export of {status.get('name', run_id)}", "submitted": time.time()})

        return _create_job(root, "export job", fill)


def _data_label(data: config_lib.DataConfig) -> str:
    """What the runs table shows: the dataset's name, or the source and its folder or file."""
    source = DATA_SOURCES.get(str(data.source))  # a folder's frozen config may name any
    where = {"data.data_dir": data.data_dir, "data.path": data.path}.get(
        source.needs if source else "")
    return data.name if where is None else f"{data.source} {Path(where).name}"


MAX_TAGS, MAX_TAG, MAX_NOTES = 20, 40, 10_000


def annotate(job_id: str, root: str | Path | None = None, *, name: str | None = None,
             notes: str | None = None, tags: list[str] | None = None) -> dict:
    """Rename a job, or set its notes and tags (labels a user edits after launch; kept in the
    job's status.json, so every reader of the run folder sees them). Each is checked by the one
    rule for labels, labels.check_text."""
    fields: dict[str, Any] = {}
    if name is not None:
        labels.check_run_name(name)
        fields["name"] = name.strip()
    if notes is not None:
        labels.check_text("notes", notes, MAX_NOTES, lines=True, required=False)
        fields["notes"] = notes
    if tags is not None:
        tags = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
        if len(tags) > MAX_TAGS:
            raise JobError(f"tags: at most {MAX_TAGS} tags (got {len(tags)}); drop some.")
        for tag in tags:
            labels.check_text("tags", tag, MAX_TAG)
        fields["tags"] = tags
    root = home(root)
    if read_status(job_dir(root, job_id))["state"] == BROKEN:
        raise JobError(f"job {job_id}: broken; delete it instead.")
    return update(job_id, root, **fields)


def _outside_run(path: Path) -> dict[str, Any]:
    """The status of a finished run folder that no worker ran (`lottery run`, a notebook's
    find_ticket): listed like a finished job, so its pages, compare and download work."""
    frozen = runfolder.read_frozen_config(path)
    train, imp = frozen.get("train") or {}, frozen.get("imp") or {}
    data = config_lib.DataConfig(**{k: v for k, v in (frozen.get("data") or {}).items()
                                    if k in ("source", "name", "data_dir", "path")})
    finished = (path / runfolder.FINISHED).stat().st_mtime
    return {"id": path.name, "name": runfolder.run_name(path), "state": DONE,
            "submitted": (path / runfolder.CONFIG).stat().st_mtime, "finished": finished,
            "num_rounds": imp.get("num_rounds"), "epochs": train.get("epochs"),
            "arch": train.get("arch"), "data": _data_label(data), "notes": "", "tags": [],
            "outside_queue": True}


def _listed(path: Path) -> bool:
    """A job folder, or a finished run folder made outside the queue in the home."""
    return path.is_dir() and bool(_ID_RE.fullmatch(path.name) or (
        _RUN_RE.fullmatch(path.name) and runfolder.is_complete(path)))


def list_jobs(root: str | Path | None = None) -> list[dict]:
    """Every job's status, oldest first; read without the lock."""
    root = home(root)
    jobs = [read_status(p) for p in root.iterdir() if _listed(p)]
    return sorted(jobs, key=lambda j: j["submitted"])


def get(job_id: str, root: str | Path | None = None) -> dict:
    return read_status(job_dir(home(root), job_id))


def update(job_id: str, root: Path, **fields: Any) -> dict:
    """Merge fields into a job's status under the lock; returns the new status."""
    with _lock(root):
        path = job_dir(root, job_id)
        status = read_status(path) | fields
        _write_status(path, status)
        return status


def _seconds(value: Any, default: float) -> float:
    """A time or a duration from a status, which a hand edit may have made anything."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else default


def stalled(status: dict, lease: float | None = None, now: float | None = None) -> bool:
    """A running job whose heartbeat is older than `lease` (by default the lease it was claimed
    under): no worker runs it."""
    if status.get("state") != RUNNING:
        return False
    lease = _seconds(status.get("lease"), DEFAULT_LEASE) if lease is None else lease
    return (now or time.time()) - _seconds(status.get("heartbeat"), 0.0) > lease


def clock(moment: float) -> str:
    """A time as people read it: HH:MM:SS today, with the date before today."""
    local = time.localtime(moment)
    today = time.localtime()[:3] == local[:3]
    return time.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M:%S", local)


def stalled_text(status: dict) -> str:
    """How the CLI and the dashboard name a stalled job's state."""
    return f"stalled (worker gone since {clock(_seconds(status.get('heartbeat'), 0.0))})"


def claim(worker_id: str, pid: int, root: Path, lease: float = DEFAULT_LEASE,
          unable: Callable[[Path], str | None] | None = None) -> str | None:
    """Take the oldest queued job, or a running one whose heartbeat is older than `lease`; the
    lease goes into the job's status, so every reader can tell when the job is stalled.

    `unable(job folder)` says why this worker cannot run a job (None: it can); such a job stays
    as it is, with the reason in its status as `waiting` for the dashboard to show."""
    with _lock(root):
        now = time.time()
        for status in list_jobs(root):
            stale = stalled(status, lease, now)
            if status["state"] == QUEUED or stale:
                path = root / status["id"]
                reason = unable(path) if unable else None
                if reason:
                    if status.get("waiting") != reason:
                        _write_status(path, status | {"waiting": reason})
                    continue
                status.pop("waiting", None)
                status |= {"state": RUNNING, "worker": worker_id, "pid": pid, "lease": lease,
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
    """Cancel a queued or stalled job at once (a stalled one keeps when its worker was last
    heard of as `stalled_since`); ask a running one to stop at its next batch boundary."""
    root = home(root)
    with _lock(root):
        path = job_dir(root, job_id)
        status = read_status(path)
        if status["state"] == QUEUED:
            status |= {"state": CANCELLED, "finished": time.time()}
        elif stalled(status):
            status |= {"state": CANCELLED, "finished": time.time(),
                       "stalled_since": _seconds(status.get("heartbeat"), 0.0)}
        elif status["state"] == RUNNING:
            (path / CANCEL_FLAG).touch()
            status["cancel_requested"] = True
        elif status["state"] == BROKEN:
            raise JobError(f"job {job_id}: broken ({status['error']}); nothing runs it, delete "
                           f"it instead.")
        else:
            raise JobError(f"job {job_id}: already {status['state']}; nothing to cancel.")
        _write_status(path, status)
        return status["state"]


def cancel_requested(path: Path) -> bool:
    return (Path(path) / CANCEL_FLAG).exists()


def delete(job_id: str, root: str | Path | None = None) -> None:
    """Remove a finished or broken job's folder (a queued, running or stalled one is cancelled
    first). A job folder that is a symbolic link is refused: the queue never made it, and what it
    points to is not the queue's to delete."""
    root = home(root)
    with _lock(root):
        path = job_dir(root, job_id)
        if path.is_symlink():
            raise JobError(f"job {job_id}: {path} is a symbolic link to {path.resolve()}, not a "
                           f"folder the queue made; nothing was deleted. Remove the link with "
                           f"rm {shlex.quote(str(path))} (what it points to stays).")
        status = read_status(path)
        if stalled(status):
            raise JobError(f"job {job_id}: {stalled_text(status)}; nothing runs it, so cancel "
                           f"it first (lottery cancel {job_id}), then delete it.")
        if status["state"] not in FINISHED + (BROKEN,):
            raise JobError(f"job {job_id}: is {status['state']}; cancel it before deleting.")
        # the jobs on a run that no worker holds go with it; a running one fails on its own
        exports = [job["id"] for job in list_jobs(root) if not is_run(job)
                   and job.get("run") == job_id and job["state"] != RUNNING]
        for folder in (*(root / export for export in exports), path):
            try:
                shutil.rmtree(folder)
            except OSError as exc:
                raise JobError(f"job {folder.name}: its folder could not be deleted completely "
                               f"({describe(exc, folder)}); fix that, then delete "
                               f"{job_id} again.") from None
