"""A worker that serves the same queue home but runs its jobs on a Ray cluster (SPEC §7).

One dispatcher process claims jobs (up to `--max-jobs` at once) and runs each as a Ray task on
whichever node has the CPUs or the GPU the job's `run.device` asks for. The nodes need not see the
queue home: the dispatcher ships the job folder's files with the task; the task runs the engine in
a temporary folder on its node and yields the folder's changes as they happen (a Ray streaming
generator); the dispatcher writes them into the run folder. Readers of run folders (the dashboard,
reports) therefore see a Ray job exactly as they see a local one.

Faults: a job whose node dies (its task or raylet killed, the machine gone) is started again from
what its run folder holds, i.e. after its last finished round, on a node that is alive; the rounds
it then produces equal an uninterrupted run's because the engine is deterministic per seed.
Cancel reaches the task through `ray.cancel`; the engine stops at its next batch boundary. A job
that needs a GPU the cluster has not got stays queued with the reason. A streamed change that
cannot be applied (the run folder not writable, a path that leads out of it) fails its job alone,
with the reason. Only a job folder's regular files are shipped: never what a link points at. A
dispatcher that dies stops heartbeating; Ray ends its tasks (they belong to it) and any worker
takes the jobs over after the lease, as with a local worker. Export jobs stay queued for a local
worker, their status saying so.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Callable

from lottery_engine.config import load as config_lib
from lottery_engine.foundations import runfolder
from lottery_engine.foundations.events import RunCancelled
from lottery_engine.foundations.faults import describe

from . import queue, streaming
from .worker import (PROGRESS, WORKERS, ProgressWriter, Worker, device_env, log_failure,
                     run_job)

log = logging.getLogger("lottery.ray")
ATTEMPTS = 5  # node losses a job survives before it is marked failed
CANCEL_GRACE = 30.0  # seconds a cancelled task gets to reach a batch boundary before it is killed
INSTALL_HINT = "Ray is an optional extra: pip install -e '.[ray]'"


# --- on a node -----------------------------------------------------------------------------------

class _StreamedProgress(ProgressWriter):
    """Progress on a node: every time progress is written, the folder's changes go out too; the
    dispatcher's cancel (set through `stop`) ends the run at the next batch boundary."""

    def __init__(self, path: Path, num_rounds: int, epochs: int, controls: int, *,
                 stop: threading.Event, send: Callable[[], None], share: float = 1.0):
        super().__init__(path, num_rounds, epochs, controls, share)
        self.stop, self.send = stop, send

    def batch_finished(self, round_index, epoch, batch, batches):
        if self.stop.is_set():
            raise RunCancelled("cancelled by the user")
        super().batch_finished(round_index, epoch, batch, batches)

    def _write(self, force: bool = False) -> bool:
        written = super()._write(force)
        if written:
            self.send()
        return written


def _engine(folder: Path, device: str, threads: int, stop: threading.Event,
            out: SimpleQueue) -> None:
    """Run the job in `folder` and put its changes, then how it ended, on `out`. All writes to
    the folder happen in this thread, so a scan between them never reads a half-written file."""
    scanner = streaming.Scanner(folder)
    scanner.changes()  # the dispatcher has these already

    def send() -> None:
        changes = scanner.changes()
        if changes:
            out.put({"files": changes})

    state, error = queue.DONE, None
    try:
        run_job(folder, device, threads, functools.partial(_StreamedProgress, stop=stop,
                                                           send=send))
    except RunCancelled:
        state = queue.CANCELLED
    except BaseException as exc:  # noqa: BLE001 - reported to the dispatcher, like a child's
        state, error = queue.FAILED, describe(exc, folder)
        log_failure(folder)
    send()
    out.put({"end": [state, error]})


def _node() -> dict[str, str]:
    import ray

    return {"id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
            "host": socket.gethostname()}


def run_remote(changes: list[streaming.Change], device: str, threads: int):
    """The Ray task (a generator): says which node it is on, rebuilds the job folder from
    `changes`, runs the engine and yields {"files": [...]} as the folder changes, then
    {"end": [state, error]}. Ends (cancelled, or its dispatcher gone) stop the engine first."""
    yield {"node": _node()}
    device_env(device)
    folder = Path(tempfile.mkdtemp(prefix="lottery-job-"))
    stop, out = threading.Event(), SimpleQueue()
    engine = threading.Thread(target=_engine, args=(folder, device, threads, stop, out),
                              name="lottery-engine", daemon=True)
    try:
        for change in changes:
            streaming.apply(folder, change)
        engine.start()
        while True:
            message = out.get()
            yield message
            if "end" in message:
                return
    finally:  # also on ray.cancel (KeyboardInterrupt) and when the caller goes away
        stop.set()
        if engine.is_alive():
            engine.join(CANCEL_GRACE)
        shutil.rmtree(folder, ignore_errors=True)


# --- the dispatcher ------------------------------------------------------------------------------

def _ray():
    try:
        import ray
    except ImportError:
        raise queue.JobError(INSTALL_HINT) from None
    return ray


def task_options(device: str, threads: int) -> dict[str, Any]:
    """What a job asks Ray for: a GPU (and a CPU to feed it) for gpu devices, else CPUs.
    `auto` runs on CPUs on a cluster: Ray gives GPUs only to tasks that ask for them."""
    if device.startswith("gpu"):
        return {"num_cpus": 1, "num_gpus": 1}
    return {"num_cpus": threads, "num_gpus": 0}


def _device(job: Path) -> str:
    return config_lib.load_run(job).run.device


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once on a head that does not answer (ray.init would retry for minutes)."""
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("expected HOST:PORT or auto")
    socket.create_connection((host, int(port)), timeout).close()


def _not_applied(exc: OSError | ValueError, job: Path) -> str:
    """Why a streamed change fails its job (one line): the run folder cannot be written (OSError),
    or `streaming.apply` refuses the change (ValueError: a path that leads out of the run folder,
    through a link or '..', or one with a NUL in it). Either is that job's, not the dispatcher's."""
    if isinstance(exc, OSError):
        return "its run folder cannot be written: " + describe(exc, job)
    return "a streamed change cannot be applied: " + describe(exc)


@dataclass
class _Remote:
    """A job running on the cluster, as the dispatcher tracks it."""

    stream: Any  # ray.ObjectRefGenerator
    attempt: int
    node: dict | None = None
    cancelled_at: float | None = None


class RayWorker(Worker):
    """Serves a queue home by running its jobs on the Ray cluster at `address`."""

    def __init__(self, root: Path, address: str, max_jobs: int, threads: int = 1,
                 lease: float = queue.DEFAULT_LEASE, poll: float = 0.2, beat: float = 1.0):
        self.ray = ray = _ray()
        try:
            _check_reachable(address)
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (OSError, RuntimeError, ValueError) as exc:
            raise queue.JobError(f"--ray {address}: cannot join the Ray cluster ({exc}). Start "
                                 "one with `make ray-local` or `ray start --head`.") from None
        super().__init__(root, "ray", lease, poll, beat, threads or 1)
        self.address, self.max_jobs = address, max_jobs
        self.task = ray.remote(max_retries=0, max_calls=1)(run_remote)
        self.running: dict[str, _Remote] = {}
        self.last_beat = 0.0

    def _unable(self, job: Path) -> str | None:
        """Why no node of the cluster can run this job (None: one can, now or once free). A
        job on a run (an export, an instability analysis) is left to local workers: it writes
        into the run folder it names, which a task does not get (only its own job folder is
        shipped)."""
        status = queue.read_status(job)
        if not queue.is_run(status):
            return (f"{status['kind']} jobs run on a local worker (lottery worker), not on the "
                    f"Ray cluster")
        try:
            asks = task_options(_device(job), self.threads)
        except (OSError, config_lib.ConfigError):
            return None  # claimed, it fails with the config's own message
        nodes = [n["Resources"] for n in self.ray.nodes() if n["Alive"]]
        if any(n.get("CPU", 0) >= asks["num_cpus"] and n.get("GPU", 0) >= asks["num_gpus"]
               for n in nodes):
            return None
        if asks["num_gpus"]:
            return "no node of the Ray cluster has a GPU; add a GPU node or set run.device to cpu"
        return (f"no node of the Ray cluster has {asks['num_cpus']} CPUs (--threads); start the "
                f"worker with fewer threads or add bigger nodes")

    def serve(self, once: bool = False) -> None:
        log.info("worker %s serving %s on the Ray cluster at %s, up to %d jobs at once",
                 self.id, self.root, self.address, self.max_jobs)
        try:
            while True:
                self._fill()
                for job_id in list(self.running):
                    self._receive(job_id)
                if time.time() - self.last_beat >= self.beat:
                    self._beat_all()
                self.write_ups = [p for p in self.write_ups if p.poll() is None]
                time.sleep(self.poll)
        finally:
            self._hand_back()
            (self.root / WORKERS / f"{self.id}.json").unlink(missing_ok=True)

    def _fill(self) -> None:
        while len(self.running) < self.max_jobs:
            try:
                job_id = queue.claim(self.id, os.getpid(), self.root, self.lease, self._unable)
            except OSError as exc:
                self._io_trouble("cannot claim jobs", exc)
                return
            if not job_id:
                return
            self._start(job_id, attempt=1)

    def _start(self, job_id: str, attempt: int) -> None:
        job = self.root / job_id
        try:  # a job whose folder cannot be read fails alone; the dispatcher goes on
            device = "gpu" if _device(job).startswith("gpu") else "cpu"
            changes = streaming.snapshot(job)
        except (OSError, config_lib.ConfigError) as exc:
            self.record_end(job_id, queue.FAILED, describe(exc, job))
            return
        options = task_options(device, self.threads)
        stream = self.task.options(**options).remote(changes, device, self.threads)
        self.running[job_id] = _Remote(stream, attempt)
        log.info("job %s: sent to the Ray cluster (attempt %d, %s)", job_id, attempt, options)

    def _receive(self, job_id: str) -> None:
        """Apply what the job's task has sent; end, retry or fail the job when its task ends."""
        ray, remote, job = self.ray, self.running[job_id], self.root / job_id
        try:
            while remote.stream.next_ready():
                message = ray.get(next(remote.stream))
                if "node" in message:
                    remote.node = message["node"]
                    log.info("job %s: running on node %s (%s)", job_id, remote.node["id"][:8],
                             remote.node["ip"])
                try:
                    for change in message.get("files", ()):
                        streaming.apply(job, change)
                except (OSError, ValueError) as exc:
                    ray.cancel(remote.stream, force=True)
                    return self._end(job_id, queue.FAILED, _not_applied(exc, job))
                if "end" in message:
                    return self._end(job_id, *message["end"])
        except StopIteration:
            self._lost(job_id, "its task ended without saying how")
        except ray.exceptions.TaskCancelledError:
            self._end(job_id, queue.CANCELLED, None)
        except ray.exceptions.RayTaskError as exc:  # our task's own code raised
            self._end(job_id, queue.FAILED, f"the Ray task failed: {exc.cause!r}")
        except ray.exceptions.RayError as exc:  # the node, the worker process or an object lost
            self._lost(job_id, str(exc).splitlines()[0].split(". ")[0])

    def _end(self, job_id: str, state: str, error: str | None) -> None:
        """Record how a job ended, only while it is still this dispatcher's (as the local
        worker does): one cancelled, deleted or taken over meanwhile was decided without it."""
        self.running.pop(job_id)
        try:
            mine = queue.heartbeat(job_id, self.root, self.id, {}) is not None
        except queue.JobError:
            mine = False
        if mine:
            self.record_end(job_id, state, error)
        else:
            log.warning("job %s: no longer ours; its end (%s) is not recorded", job_id, state)

    def _lost(self, job_id: str, why: str) -> None:
        """The task died with its node or process: resume the job after its last finished round
        on a node that is alive, unless it was being cancelled or has been lost too often."""
        remote = self.running[job_id]
        if remote.cancelled_at is not None:
            return self._end(job_id, queue.CANCELLED, None)
        if remote.attempt >= ATTEMPTS:
            return self._end(job_id, queue.FAILED,
                             f"its Ray task was lost {ATTEMPTS} times (last: {why}); the "
                             "finished rounds are kept and a new submission of the job resumes "
                             "after them")
        log.warning("job %s: its Ray task was lost (%s); resuming after its last finished round "
                    "on another node", job_id, why)
        self.running.pop(job_id)
        self._start(job_id, remote.attempt + 1)

    def _beat_all(self) -> None:
        """Heartbeat every running job with its streamed progress; pass cancels on to Ray."""
        ray, now = self.ray, time.time()
        self.last_beat = now
        try:
            self._announce(", ".join(sorted(self.running)) or None)
        except OSError as exc:
            self._io_trouble("worker heartbeat not written", exc)
        for job_id, remote in list(self.running.items()):
            job = self.root / job_id
            progress = runfolder.read_json(job / PROGRESS, {}) | {"remote_attempt":
                                                                   remote.attempt}
            if remote.node:
                progress["node"] = remote.node
            else:
                progress["phase"] = "waiting for a Ray node with the resources it asks for"
            try:
                owned = queue.heartbeat(job_id, self.root, self.id, progress) is not None
            except queue.JobError:  # deleted while this dispatcher was stopped past its lease
                owned = False
            except OSError as exc:
                self._io_trouble(f"job {job_id}: heartbeat not written", exc)
                continue
            if not owned:
                log.warning("job %s: no longer ours; stopping its Ray task", job_id)
                ray.cancel(remote.stream, force=True)
                self.running.pop(job_id)
            elif remote.cancelled_at is None and queue.cancel_requested(job):
                remote.cancelled_at = now
                ray.cancel(remote.stream)
            elif remote.cancelled_at is not None and now - remote.cancelled_at > CANCEL_GRACE:
                ray.cancel(remote.stream, force=True)

    def _hand_back(self) -> None:
        """The dispatcher is stopping: stop its tasks and put their jobs back in the queue."""
        for job_id, remote in self.running.items():
            self.ray.cancel(remote.stream, force=True)
            try:
                queue.update(job_id, self.root, state=queue.QUEUED, worker=None)
            except OSError as exc:
                log.warning("job %s: not handed back (%s); it resumes after the lease",
                            job_id, describe(exc))
        self.running.clear()


def main(root: str | None, address: str, max_jobs: int, lease: float,
         threads: int | None = None) -> int:
    """`lottery worker --ray ADDRESS`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        worker = RayWorker(queue.home(root), address, max_jobs, threads or 1, lease)
        # after ray.init, whose own SIGTERM handler would print a stack dump and not hand back
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        worker.serve()
    except KeyboardInterrupt:
        log.info("worker stopped")
    return 0
