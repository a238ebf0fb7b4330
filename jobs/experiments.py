"""Experiments made of queue jobs: one job per (arm, seed), grouped under an experiment id.

Every free worker takes the next job, so N workers finish an experiment in about 1/N of the time.
The experiment's manifest (`<home>/experiments/<id>/experiment.json`) lists its jobs; each job's
status also names its experiment, arm label and seed. The write-up is made in the manifest's
folder by the worker that ends the last job, and can be remade at any time (`write_up`).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

from lottery_engine.config.load import Config
from lottery_engine.foundations import runfolder
from lottery_engine.science import experiment as experiment_lib
from lottery_engine.science import instability_arm
from lottery_engine.science import writeup

from . import queue

FOLDER = "experiments"
MANIFEST = "experiment.json"
RESULTS = "RESULTS.md"
_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,40}-\d{8}-\d{6}-[0-9a-f]{4}")


def folder(root: Path, experiment_id: str) -> Path:
    """The experiment's own folder (manifest and write-up); a JobError for an unknown id."""
    path = Path(root) / FOLDER / str(experiment_id)
    if not _ID_RE.fullmatch(str(experiment_id)) or not (path / MANIFEST).is_file():
        raise queue.JobError(f"experiment {experiment_id!r}: no such experiment in {root} "
                             f"(ids are listed by `lottery experiment --list`).")
    return path


def submit(exp: experiment_lib.Experiment,
           plan: list[tuple[experiment_lib.RunSpec, int, Config]],
           root: str | Path | None = None) -> str:
    """Queue every (arm, seed) of a validated plan; returns the experiment id. A plan whose arms
    share a label (or a label's folder name) or repeat a seed is refused before anything is
    queued: the write-up keys results by label and seed, so one would overwrite the other."""
    experiment_lib.check_arms(exp.name, [(spec, seed) for spec, seed, _ in plan])
    root = queue.home(root)
    experiment_id = (f"{runfolder.slug(exp.name)}-{time.strftime('%Y%m%d-%H%M%S')}-"
                     f"{secrets.token_hex(2)}")
    path = root / FOLDER / experiment_id
    path.mkdir(parents=True)
    jobs = []
    for spec, seed, cfg in plan:
        job_id = queue.submit(cfg, root, experiment={"id": experiment_id, "label": spec.label,
                                                     "seed": seed}
                              | ({"export": spec.export} if spec.export else {})
                              | ({"instability": instability_arm.as_mapping(spec.instability)}
                                 if spec.instability else {}))
        jobs.append({"label": spec.label, "seed": seed, "job": job_id})
    runfolder.write_json(path / MANIFEST, {"id": experiment_id, "name": exp.name,
                                          "notes": exp.notes, "submitted": time.time(),
                                          "jobs": jobs})
    return experiment_id


def manifest(root: Path, experiment_id: str) -> dict:
    return runfolder.read_json(folder(root, experiment_id) / MANIFEST, {})


def list_experiments(root: str | Path | None = None) -> list[dict]:
    """Every experiment's manifest, newest first."""
    base = queue.home(root) / FOLDER
    found = [runfolder.read_json(p / MANIFEST, None) for p in base.iterdir()] if base.is_dir() else []
    return sorted((m for m in found if m), key=lambda m: -m["submitted"])


def statuses(root: Path, experiment_id: str) -> list[dict]:
    """The status of each of the experiment's jobs (a deleted job reads as broken)."""
    out = []
    for entry in manifest(root, experiment_id)["jobs"]:
        try:
            status = queue.get(entry["job"], root)
        except queue.JobError as exc:
            status = {"id": entry["job"], "state": queue.BROKEN, "error": str(exc)}
        out.append(status | {"label": entry["label"], "seed": entry["seed"]})
    return out


def fraction_done(jobs: list[dict]) -> float:
    return sum(1.0 if j["state"] in queue.FINISHED else j.get("fraction_done", 0.0)
               for j in jobs) / max(1, len(jobs))


def finished(jobs: list[dict]) -> bool:
    return all(j["state"] in queue.FINISHED + (queue.BROKEN,) for j in jobs)


def write_up(root: Path, experiment_id: str, path: Path | None = None) -> Path:
    """Write RESULTS.md and its figure from the experiment's finished jobs; returns the path."""
    root = Path(root)
    meta = manifest(root, experiment_id)
    jobs = statuses(root, experiment_id)
    folders: dict[str, dict[int, Path]] = {}
    timing: dict[str, list[float]] = {}
    for job in jobs:
        if job["state"] == queue.DONE:
            folders.setdefault(job["label"], {})[job["seed"]] = root / job["id"]
            timing.setdefault(job["label"], []).append(job["finished"] - job["started"])
    if not folders:
        raise queue.JobError(f"experiment {experiment_id}: no job has finished yet.")
    done = [j for j in jobs if j["state"] == queue.DONE]
    wall = max(j["finished"] for j in done) - min(j["started"] for j in done)
    path = Path(path) if path else folder(root, experiment_id) / RESULTS
    writeup.write(meta["name"], folders, path, notes=meta.get("notes", ""), timing=timing,
                  wall=wall, source=f"lottery experiment --report {experiment_id}")
    return path


def last_of(root: Path, status: dict) -> str | None:
    """The experiment id when `status` is the job whose end finishes its experiment."""
    group = status.get("experiment")
    if not isinstance(group, dict):
        return None
    try:
        return group["id"] if finished(statuses(root, group["id"])) else None
    except (queue.JobError, KeyError):
        return None


def started_workers(count: int, root: Path, threads: int, logs: Path) -> list[subprocess.Popen]:
    """Start `count` local workers of `threads` threads each (`lottery experiment --workers`)."""
    procs = []
    for i in range(count):
        log = open(logs / f"worker-{i}.log", "ab")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "jobs.cli", "worker", "--home", str(root),
             "--threads", str(threads)], stdout=log, stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONUNBUFFERED": "1"}))
        log.close()
    return procs


def stop_workers(procs: list[subprocess.Popen], grace: float = 30.0) -> None:
    """SIGTERM (a running job is handed back), then SIGKILL whatever is still there."""
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
