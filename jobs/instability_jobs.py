"""Instability analyses as jobs of their own kind in the queue (issue 31).

A job of kind `instability` names a run of the same home (`run`) and what to analyse (rounds,
rewind steps, copies, points); any local worker runs it in its child process
(worker.run_instability) as `lottery instability` does, into the run's folder: the lines into its instability.jsonl, the
figures into its report. The job's own folder holds only its status and log. Each line is durable
as it finishes, so a job that is cancelled, killed or resumed by another worker goes on where the
file ends. A run has one live analysis at a time: two would train the same copies twice.
The Ray worker leaves these jobs to local workers, as it does exports: a task gets only its own
job folder, not the run folder the analysis writes into.
"""

from __future__ import annotations

import time
from pathlib import Path

from lottery_engine.foundations import runfolder
from lottery_engine.foundations.events import Listener, RunCancelled
from lottery_engine.lottery.instability_plan import Request, check

from . import queue

def is_instability(status: dict) -> bool:
    return status.get("kind") == queue.INSTABILITY


def jobs_of(jobs: list[dict], run_id: str) -> list[dict]:
    """The instability jobs of run `run_id` among `jobs` (list_jobs' answer, oldest first)."""
    return [job for job in jobs if is_instability(job) and job.get("run") == run_id]


def request_of(status: dict) -> Request:
    return Request(tuple(status["rounds"]), tuple(status["rewinds"]), status["copies"],
                   status["points"])


def submit(run_id: str, request: Request, root: str | Path | None = None) -> str:
    """Queue the analysis of run `run_id`; returns the job id. The request is checked against
    the run folder first (finished rounds, k inside round 0), each refusal in one line."""
    root = queue.home(root)
    with queue._lock(root):
        run = queue.job_dir(root, run_id)
        status = queue.read_status(run)
        if not queue.is_run(status):
            raise queue.JobError(f"job {run_id}: a job on a run, not a run; analyse the run "
                                 f"it names.")
        check(run, request)
        live = [job for job in jobs_of(queue.list_jobs(root), run_id)
                if job["state"] not in queue.FINISHED]
        if live:
            raise queue.JobError(f"run {run_id}: its instability analysis {live[-1]['id']} is "
                                 f"already {live[-1]['state']}; wait for it or cancel it.")

        def fill(staging: Path, job_id: str) -> None:
            runfolder.write_json(staging / queue.STATUS, {
                "id": job_id, "kind": queue.INSTABILITY, "run": run_id, "state": queue.QUEUED,
                "name": f"instability of {status.get('name', run_id)}",
                "submitted": time.time(), "rounds": list(request.rounds),
                "rewinds": list(request.rewinds), "copies": request.copies,
                "points": request.points})

        return queue._create_job(root, "instability job", fill)


class Progress(Listener):
    """The analysis' phase and its share of the job done for the parent to relay (a line a
    second at most), and a cancel request honoured at the next batch: the lines written so far
    stay. `span` is the part of the job's progress the analysis fills: all of an instability
    job's; after an experiment arm's run, what the run left (the status keeps the run's last
    fraction, so without this an arm's job read 100% through its whole analysis)."""

    def __init__(self, job: Path, progress: Path, span: tuple[float, float] = (0.0, 1.0)):
        self.job, self.progress = job, progress  # the job's folder, the file the parent relays
        self.doing, self.lines, self.last = "", "", 0.0
        self.span, self.fraction, self.started = span, span[0], time.monotonic()

    def _write(self, phase: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= 1.0:
            self.last = now
            done = self.fraction - self.span[0]  # of the analysis, since this process started
            eta = (now - self.started) * (self.span[1] - self.fraction) / done if done else None
            runfolder.write_json(self.progress, {"phase": phase, "fraction_done": self.fraction,
                                                 "eta": eta})

    def phase_started(self, phase: str) -> None:
        self._write(phase, force=True)

    def round_started(self, round_index: int, series: str, sparsity: float) -> None:
        self.doing = f"round {round_index}, {series}"
        self._write(self.doing + self.lines, force=True)

    def batch_finished(self, round_index: int, epoch: int, batch: int, batches: int) -> None:
        if queue.cancel_requested(self.job):
            raise RunCancelled("cancelled by the user")
        self._write(f"{self.doing}, epoch {epoch + 1} batch {batch}/{batches}{self.lines}")

    def work_progress(self, task: str, done: int, total: int) -> None:
        if task == "instability":
            self.lines = f" ({done} of {total} (round, k) done)"
            start, end = self.span
            self.fraction = start + (end - start) * done / max(total, 1)
            self._write(self.doing + self.lines, force=True)

