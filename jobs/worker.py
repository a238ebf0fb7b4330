"""A worker: claims jobs from the queue and runs each in a child process it supervises.

The child (a fresh interpreter) imports TensorFlow and runs the engine, writing rounds into the job
folder and its in-round progress into `progress.json`. The parent never imports TensorFlow: it
heartbeats the job's status with that progress, watches for cancellation, and records how the child
ended. A crash, a leak or TensorFlow state in one job therefore never reaches the next one, and a
worker killed outright leaves a job whose stale heartbeat lets any worker resume it.

The child runs what the job's kind asks for: IMP (`run_job`), the export of a finished run's
ticket (`run_export`) or a run's instability analysis (instability_jobs.run); everything else, the
parent's part included, is the same for all.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from multiprocessing.connection import Connection

from lottery_engine.foundations import runfolder
from lottery_engine.foundations.events import IMP, STACK, Listener, RunCancelled
from lottery_engine.foundations.faults import describe

from . import instability_jobs, queue

PROGRESS = "progress.json"
WORKERS = ".workers"
EXIT_CANCELLED = 3
log = logging.getLogger("lottery.worker")


# --- in the child ------------------------------------------------------------------------------

class ProgressWriter(Listener):
    """Writes in-round progress for the parent to relay; stops the run when cancel is requested."""

    def __init__(self, path: Path, num_rounds: int, epochs: int, controls: int,
                 share: float = 1.0):
        self.path, self.num_rounds, self.epochs, self.controls = path, num_rounds, epochs, controls
        self.share = share  # the run's share of the job: an arm's analysis after it has the rest
        self.state = {"round": 0, "series": IMP, "epoch": 0, "batch": 0, "batches": 0,
                      "sparsity": 0.0, "best_val_accuracy": None, "rounds_done": 0,
                      "history": {}}
        self.started, self.last_write, self.series_index = time.time(), 0.0, 0

    def _units(self, round_index: int) -> int:
        return 1 if round_index == 0 else 1 + self.controls

    def _fraction_done(self) -> float:
        s = self.state
        total = sum(self._units(r) for r in range(self.num_rounds + 1))
        in_series = (s["epoch"] + (s["batch"] / s["batches"] if s["batches"] else 0)) / self.epochs
        if s["series"] == STACK:  # the round's series train together: its batches count for all
            in_series *= self._units(s["round"])
        done = sum(self._units(r) for r in range(s["round"])) + self.series_index + in_series
        return min(done / total, 1.0) * self.share

    def _write(self, force: bool = False) -> bool:
        """Write progress.json unless it was written under half a second ago; True if written."""
        now = time.time()
        if not force and now - self.last_write < 0.5:
            return False
        self.last_write = now
        elapsed = now - self.started
        fraction = self._fraction_done()
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.01 else None
        runfolder.write_json(self.path / PROGRESS, self.state | {
            "fraction_done": fraction, "elapsed": elapsed, "eta": eta})
        return True

    def phase_started(self, phase):
        self.state["phase"] = phase
        self._write(force=True)

    def work_progress(self, task, done, total):
        self.state |= {"task": task if done < total else None, "task_done": done,
                       "task_total": total}
        self._write(force=done == total)

    def round_started(self, round_index, series, sparsity):
        self.series_index = 0 if series in (IMP, STACK) else self.series_index + 1
        self.state |= {"round": round_index, "series": series, "sparsity": sparsity,
                       "epoch": 0, "batch": 0, "history": {}}
        self._write(force=True)

    def batch_finished(self, round_index, epoch, batch, batches):
        if queue.cancel_requested(self.path):
            raise RunCancelled("cancelled by the user")
        self.state |= {"epoch": epoch, "batch": batch, "batches": batches, "phase": None}
        self._write()

    def epoch_finished(self, round_index, epoch, logs):
        history = self.state["history"]
        for key, value in logs.items():
            history.setdefault(key, []).append(value)
        self.state |= {"epoch": epoch + 1, "batch": 0}
        self._write(force=True)

    def round_finished(self, record):
        if record.series == IMP:
            best = self.state["best_val_accuracy"]
            self.state |= {"rounds_done": record.round + 1,
                           "best_val_accuracy": max(best or 0.0, record.val_accuracy)}
        self._write(force=True)


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the worker that started it dies (even by SIGKILL)."""
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def device_env(device: str) -> None:
    """Hide the GPUs from a CPU job, or show it only its own; before TensorFlow is imported."""
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif device.startswith("gpu:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = device[4:]


def _limit_threads(threads: int | None) -> None:
    """One worker per core at one thread each beats one worker at all cores for small models."""
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def run_job(job: Path, device: str, threads: int | None,
            writer: Callable[..., ProgressWriter] = ProgressWriter) -> None:
    """Run or resume the job in folder `job` in this process (a worker's child, a Ray task)."""
    from lottery_engine import preflight
    from lottery_engine.foundations import quiet_import

    quiet_import.tensorflow()
    _limit_threads(threads)
    from lottery_engine import pipeline

    from lottery_engine.science import instability_arm

    cfg = preflight.load_run(job)  # the data and model file, checked on this machine
    if device != "auto":
        cfg.run.device = "cpu" if device == "cpu" else "gpu:0"
    arm = queue.read_status(job).get("experiment") or {}
    analysis = (instability_arm.parse(arm["instability"], "instability")
                if arm.get("instability") else None)
    share = instability_arm.run_share(cfg, analysis) if analysis else 1.0
    pipeline.execute(cfg, job, writer(job, cfg.imp.num_rounds, cfg.train.epochs,
                                      len(cfg.imp.controls), share=share))
    if arm.get("export"):  # an experiment arm that times every round (experiment.py's `export`)
        from lottery_engine.export.every_round import export_rounds

        runfolder.write_json(job / PROGRESS, {"phase": f"exporting every round: "
                                                       f"{', '.join(arm['export'])}"})
        export_rounds(job, arm["export"])
    if analysis:  # an arm whose runs are analysed after them (instability_arm.py)
        instability_arm.after_run(job, analysis,
                                  instability_jobs.Progress(job, job / PROGRESS, (share, 1.0)))


def run_export(job: Path) -> None:
    """Export the ticket of the run the job names in every format, as `lottery export RUN_DIR
    --format all` does (TensorFlow on one thread, so the Keras latencies compare with LiteRT's),
    into the run's folder. Progress names the format under way; a cancel stops the export
    before the next format. Formats that fail fail the job with their reasons, and what the
    others wrote is kept."""
    from lottery_engine.foundations import quiet_import

    quiet_import.tensorflow()
    from lottery_engine.export import export_records
    from lottery_engine.export import exporter as export
    from lottery_engine.export import measure
    from lottery_engine.report import page as report

    measure.limit_threads(1)
    run_dir = queue.job_dir(job.parent, queue.read_status(job)["run"])
    runfolder.write_json(job / PROGRESS, {"phase": "loading the ticket and timing it dense"})
    exporter = export.Exporter(run_dir)
    records = []
    for number, fmt in enumerate(export.FORMATS, 1):
        if queue.cancel_requested(job):
            raise RunCancelled("cancelled by the user")
        runfolder.write_json(job / PROGRESS, {"phase": f"exporting {fmt} "
                                                       f"({number} of {len(export.FORMATS)})"})
        records.append(exporter.run(fmt, export_records.default_path(run_dir, fmt)))
        with open(job / runfolder.LOG, "a") as f:
            f.write(records[-1]["summary"] + "\n")
    report.write(run_dir)  # its "Deploying the ticket" section
    failed = [r["summary"] for r in records if r["status"] != "ok"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(records)} formats failed (the others are "
                           f"kept): {'; '.join(failed)}")


def run_instability(job: Path, device: str, threads: int | None) -> None:
    """The run's instability analysis the job asks for, as `lottery instability` does, into
    the run's folder; a cancel stops it at the next batch, the lines written so far kept."""
    from lottery_engine.foundations import quiet_import

    quiet_import.tensorflow()
    _limit_threads(threads)
    from lottery_engine.lottery import instability
    from lottery_engine.report import page as report

    status = queue.read_status(job)
    run_dir = queue.job_dir(job.parent, status["run"])
    pinned = None if device == "auto" else "cpu" if device == "cpu" else "gpu:0"
    written = instability.analyse(run_dir, instability_jobs.request_of(status),
                                  instability_jobs.Progress(job, job / PROGRESS), pinned)
    with open(job / runfolder.LOG, "a") as f:
        f.write(f"{len(written)} new lines in {run_dir / runfolder.INSTABILITY}\n")
    report.write(run_dir)  # its instability figures


def log_failure(job: Path) -> None:
    """The traceback of the exception being handled, into the run's log when the disk allows."""
    try:
        with open(job / runfolder.LOG, "a") as f:
            f.write(traceback.format_exc())
    except OSError:
        traceback.print_exc()


def run_child(path: str, device: str, errors: Connection, threads: int | None = None) -> None:
    """The child's whole life: run or resume the job in `path`, exit 0, 1 (failed) or 3.

    A failure's one-line reason goes to the parent through `errors`, a pipe, because the disk
    may be the very thing that failed; the traceback goes to the run's log when it can."""
    _die_with_parent()
    device_env(device)
    job = Path(path)
    try:
        status = queue.read_status(job)
        if queue.is_export(status):
            run_export(job)
        elif instability_jobs.is_instability(status):
            run_instability(job, device, threads)
        else:
            run_job(job, device, threads)
    except RunCancelled:
        sys.exit(EXIT_CANCELLED)
    except BaseException as exc:  # noqa: BLE001 - everything a job does wrong is reported
        errors.send(describe(exc, job))
        log_failure(job)
        sys.exit(1)


# --- in the parent -----------------------------------------------------------------------------

def _outcome(exitcode: int | None, error: str | None) -> tuple[str, str | None]:
    if exitcode == 0:
        return queue.DONE, None
    if exitcode == EXIT_CANCELLED:
        return queue.CANCELLED, None
    if not error and exitcode is not None and exitcode < 0:
        error = (f"the job's process was killed by signal {-exitcode}"
                 + (" (out of memory?)" if -exitcode == signal.SIGKILL else ""))
    return queue.FAILED, error or f"the job's process ended with exit code {exitcode}"


def _received(errors: Connection) -> str | None:
    """The child's one-line error, if it sent one before it ended."""
    try:
        return errors.recv() if errors.poll() else None
    except EOFError:
        return None


class Worker:
    """Serves one queue home; `--device` pins every job it runs to the CPU or one GPU.

    File-system trouble (a full disk, a home gone read-only) never kills it with a traceback: a
    heartbeat that cannot be written is retried at the next beat, an idle worker keeps polling
    and says why once, and a worker that cannot even record a job's end stops with that reason
    (the job's stale heartbeat then lets another worker take it after the lease)."""

    def __init__(self, root: Path, device: str = "auto", lease: float = queue.DEFAULT_LEASE,
                 poll: float = 0.2, beat: float = 1.0, threads: int | None = None):
        self.root, self.device, self.lease, self.poll, self.beat = root, device, lease, poll, beat
        self.threads = threads
        self.write_ups: list[subprocess.Popen] = []  # experiment write-ups under way
        self.id = f"{socket.gethostname()}-{os.getpid()}"
        self.child: multiprocessing.Process | None = None
        self.trouble: str | None = None  # the file-system error last logged, said once
        try:
            (root / WORKERS).mkdir(exist_ok=True)
            self._announce(None)
        except OSError as exc:
            raise queue.JobError(f"queue home {root}: a worker cannot write there "
                                 f"({describe(exc, root)}).") from None

    def _announce(self, job_id: str | None) -> None:
        """The worker's own heartbeat, so a dashboard can tell whether anyone serves the queue."""
        runfolder.write_json(self.root / WORKERS / f"{self.id}.json",
                             {"id": self.id, "pid": os.getpid(), "device": self.device,
                              "job": job_id, "heartbeat": time.time()})

    def _io_trouble(self, what: str, exc: OSError) -> None:
        message = f"{what}: {describe(exc, self.root)}"
        if message != self.trouble:
            log.warning("%s (retrying)", message)
        self.trouble = message

    def serve(self, once: bool = False) -> None:
        log.info("worker %s serving %s on %s", self.id, self.root, self.device)
        try:
            while True:
                try:
                    self._announce(None)
                    job_id = queue.claim(self.id, os.getpid(), self.root, self.lease)
                except OSError as exc:
                    self._io_trouble("cannot claim jobs", exc)
                    job_id = None
                    time.sleep(max(self.poll, 1.0))
                if job_id:
                    self.run(job_id)
                self.write_ups = [p for p in self.write_ups if p.poll() is None]
                if once:
                    return
                if not job_id:
                    time.sleep(self.poll)
        finally:
            (self.root / WORKERS / f"{self.id}.json").unlink(missing_ok=True)

    def _beat(self, job_id: str, job: Path) -> bool:
        """Relay the child's progress; False when the job is no longer this worker's (taken
        over, or cancelled and perhaps deleted, while this worker was stopped past its lease)."""
        try:
            self._announce(job_id)
            progress = runfolder.read_json(job / PROGRESS, {})
            return queue.heartbeat(job_id, self.root, self.id,
                                   progress | {"child_pid": self.child.pid}) is not None
        except queue.JobError:  # its folder is gone
            return False
        except OSError as exc:
            self._io_trouble(f"job {job_id}: heartbeat not written", exc)
            return True

    def _let_go(self, job_id: str) -> str | None:
        """Stop the child of a job that is no longer this worker's, recording nothing: what
        the job is now was decided without this worker. Returns its state (None: deleted)."""
        log.warning("job %s: no longer ours; stopping its process", job_id)
        self.child.kill()
        self.child.join()
        try:
            return queue.get(job_id, self.root)["state"]
        except queue.JobError:
            return None

    def _experiment_write_up(self, status: dict) -> None:
        """The worker that ends an experiment's last job starts its write-up, in a process of
        its own (the figure's renderer starts threads and signal handlers that must not live in a
        worker) that the worker does not wait for: it goes on serving and heartbeating. A
        write-up that cannot start is logged; the worker serves on."""
        from . import experiments

        group = experiments.last_of(self.root, status)
        if group is None:
            return
        try:
            log_path = experiments.folder(self.root, group) / "write-up.log"
            with open(log_path, "ab") as out:
                self.write_ups.append(subprocess.Popen(
                    [sys.executable, "-m", "jobs.cli", "experiment", "--report", group,
                     "--home", str(self.root)], stdout=out, stderr=subprocess.STDOUT))
        except (OSError, queue.JobError) as exc:
            log.warning("experiment %s: write-up not started: %s", group, describe(exc))
            return
        log.info("experiment %s: its last job ended; writing its write-up (log: %s)", group,
                 log_path)

    def record_end(self, job_id: str, state: str, error: str | None) -> str:
        """Write how a job ended (with its last progress) and start an experiment's write-up
        when it was the experiment's last job; returns `state`."""
        job = self.root / job_id
        progress = runfolder.read_json(job / PROGRESS, {})
        ticket = runfolder.read_json(job / runfolder.TICKET_JSON, {})
        if state == queue.DONE and "round" in ticket:  # the Runs table's ticket columns
            progress |= {"ticket_round": ticket["round"],
                         "ticket_sparsity": ticket["global_sparsity"],
                         "ticket_val_accuracy": ticket["logged_val_accuracy"],
                         "ticket_test_accuracy": ticket["test_accuracy"]}
        try:
            queue.update(job_id, self.root, **progress)
            final = queue.finish(job_id, self.root, state, error)
        except OSError as exc:
            raise queue.JobError(f"job {job_id} ended {state}"
                                 + (f" ({error})" if error else "")
                                 + f", but that cannot be recorded: {describe(exc, job)}. "
                                 f"This worker stops.") from None
        log.info("job %s: %s%s", job_id, state, f" ({error})" if error else "")
        self._experiment_write_up(final)
        return state

    def run(self, job_id: str) -> str | None:
        """Run one claimed job in a child process; returns the state it ended in (None: it was
        deleted meanwhile). How it ended is recorded only while the job is still this worker's,
        checked by a last heartbeat after the child has ended."""
        job = self.root / job_id
        (job / PROGRESS).unlink(missing_ok=True)
        context = multiprocessing.get_context("spawn")
        errors, child_errors = context.Pipe(duplex=False)
        self.child = context.Process(target=run_child, args=(str(job), self.device, child_errors,
                                                                 self.threads),
                                     name=f"lottery-job-{job_id}")
        self.child.start()
        child_errors.close()
        log.info("job %s: running in process %d", job_id, self.child.pid)
        try:
            while True:
                self.child.join(self.beat)
                if not self._beat(job_id, job):
                    return self._let_go(job_id)
                if not self.child.is_alive():
                    break
            state, error = _outcome(self.child.exitcode, _received(errors))
            return self.record_end(job_id, state, error)
        finally:
            errors.close()
            if self.child.is_alive():  # the worker itself is being stopped: hand the job back
                self.child.kill()
                self.child.join()
                queue.update(job_id, self.root, state=queue.QUEUED, worker=None)
            self.child = None


def main(root: str | None, device: str, once: bool, lease: float,
         threads: int | None = None) -> int:
    """`lottery worker`; a fault it cannot serve past propagates as one line through the CLI."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        Worker(queue.home(root), device, lease, threads=threads).serve(once)
    except KeyboardInterrupt:  # Ctrl-C on `make run`: a running job was handed back above
        log.info("worker stopped")
    return 0


def job_line(status: dict) -> str:
    """One line per job for `lottery jobs`; a stalled job says so, as the dashboard does."""
    state = queue.stalled_text(status) if queue.stalled(status) else status["state"]
    progress = ""
    if status["state"] == queue.RUNNING and not queue.is_run(status):
        progress = f" {status.get('phase') or 'starting'}"
    elif status["state"] == queue.RUNNING:
        progress = (f" round {status.get('round', 0)}/{status.get('num_rounds')}"
                    f" epoch {status.get('epoch', 0)}/{status.get('epochs')}")
    best = status.get("best_val_accuracy")
    return (f"{status['id']}  {state:<9} {status.get('name', '')}{progress}"
            + (f"  best val acc {best:.4f}" if best is not None else "")
            + (f"  error: {status['error']}" if status.get("error") else ""))
