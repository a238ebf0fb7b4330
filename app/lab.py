"""The dashboard's small API over the queue home and the run folders. Never imports TensorFlow.

Pages read job folders; they never train. Round records are read incrementally: each job's byte
offset into rounds.jsonl is kept in the session, so a live refresh reads only what was appended.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import re
import time
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from app import charts
from jobs import queue, worker
from lottery_engine.foundations import runfolder, yaml_text
from lottery_engine.foundations.events import IMP
from lottery_engine.foundations.round_record import RoundRecord

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUICKSTART = CONFIGS / "quickstart.yaml"
WORKER_SILENCE = 10.0
LINKED_RUNS = 10  # the newest runs a link to a run that is gone offers instead
# the Runs table's columns, in the order people scan them (the run id is kept, not shown)
TABLE_COLUMNS = ["name", "state", "progress", "sparsity reached %", "ticket round",
                 "ticket sparsity %", "ticket val acc", "ticket test acc", "tags", "notes", "created", "elapsed", "arch", "data", "worker", "node",
                 "error"]
# the Run page's export table: each format beside the dense ticket timed in the same export
# the most x ticks Plotly may place (nticks): few enough that no labels collide in a phone's
# 360 px; a log axis gets fewer, as Plotly labels it about 1.5 times as densely
X_TICKS, LOG_X_TICKS = 6, 3
_MARKDOWN = re.compile(r"([\\`*\[\]<>$~|#]|(?<!\w)_|_(?!\w)|:(?=\S))")  # markup, links, HTML, $, :codes:


def plain(text: object) -> str:
    """Text that Streamlit's Markdown shows as itself: run names and error messages are labels,
    never links, images, emphasis, emoji codes or colour directives."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def home() -> Path:
    return queue.home()


def quickstart_raw() -> dict:
    return config_raw(QUICKSTART)


def config_raw(path: Path) -> dict:
    """A shipped config as plain data, read by the one size-limited YAML reader."""
    return yaml_text.parse(Path(path).read_bytes(), f"config file {path}")


def config_files() -> dict[str, Path]:
    """The run configs that ship in configs/ (experiment files are not run configs)."""
    return {p.name: p for p in sorted(CONFIGS.glob("*.yaml"))
            if not p.name.startswith("experiment")}


def experiment_folders(root: Path, jobs: list[dict]) -> dict[str, dict[int, Path]]:
    """An experiment's run folders by arm and seed, for the seeds with a finished round."""
    out: dict[str, dict[int, Path]] = {}
    for job in jobs:
        folder = root / job["id"]
        if job["state"] != queue.BROKEN and runfolder.read_rounds(folder):
            out.setdefault(job["label"], {})[job["seed"]] = folder
    return out


def live_workers(root: Path) -> list[dict]:
    """Workers whose own heartbeat is recent."""
    folder = root / worker.WORKERS
    now = time.time()
    beats = [runfolder.read_json(p, {}) for p in folder.glob("*.json")] if folder.is_dir() else []
    return [b for b in beats if now - b.get("heartbeat", 0) < WORKER_SILENCE]


def no_worker_banner(root: Path) -> None:
    if not live_workers(root):
        st.warning(f"No worker has sent a heartbeat in the last {WORKER_SILENCE:.0f} s, so queued "
                   f"jobs will wait. Start one in a terminal: `lottery worker --home {root}` "
                   f"(`make run` starts one with the dashboard).", icon=":material/warning:")


def rounds(run_dir: Path) -> list[RoundRecord]:
    """All round records of one series' folder so far, reading only the bytes appended since
    the last call."""
    cache = st.session_state.setdefault("_rounds", {})
    path = run_dir / runfolder.ROUNDS
    offset, records = cache.get(str(path), (0, []))
    if offset and (not path.is_file() or path.stat().st_size < offset):
        offset, records = 0, []  # rewritten shorter (a resumed run dropped an unfinished round)
    new, offset = runfolder.read_rounds_from(path, offset)
    records = records + new
    cache[str(path)] = (offset, records)
    return records


def all_series(run_dir: Path) -> dict[str, list[RoundRecord]]:
    """The run's IMP series and each control's, by name, each read incrementally."""
    return runfolder.series(run_dir, rounds)


def run_folders(root: Path) -> dict[str, Path]:
    """Every run with finished rounds, newest first: queue jobs, and run folders one level down
    (such as an experiment's `runs/experiment-fashion/lenet-300-100-seed0`), by label."""
    out = {lab_label(status): root / status["id"] for status in reversed(queue.list_jobs(root))
           if (root / status["id"] / runfolder.ROUNDS).is_file()}
    for rounds_file in sorted(root.glob(f"*/*/{runfolder.ROUNDS}")):
        folder = rounds_file.parent
        if not (folder / queue.STATUS).is_file() and folder.parent.name != runfolder.CONTROLS:
            out[str(folder.relative_to(root))] = folder
    return out


def lab_label(status: dict) -> str:
    """A short plain-text label: the name and the id's random part (select boxes and tables do
    not render Markdown)."""
    return f"{status.get('name', '?')} · {status['id'][-6:]}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def progress_fraction(status: dict) -> float:
    if status.get("state") == queue.DONE:
        return 1.0
    return float(status.get("fraction_done", 0.0))


def state_text(status: dict) -> str:
    """The state as a user reads it: a running job whose worker is gone is 'stalled (worker gone
    since HH:MM:SS)', one asked to stop is 'cancelling…'."""
    if queue.stalled(status):
        return queue.stalled_text(status)
    if status.get("state") == queue.RUNNING and status.get("cancel_requested"):
        return "cancelling…"
    if status.get("state") == queue.QUEUED and status.get("waiting"):
        return f"queued: {status['waiting']}"
    return status.get("state", "")


def can_cancel(status: dict) -> bool:
    """Queued, running and not yet asked to stop, or stalled: a stalled job's earlier request
    to stop reaches nothing, so cancelling it again is what ends it."""
    return status.get("state") == queue.QUEUED or queue.stalled(status) or (
        status.get("state") == queue.RUNNING and not status.get("cancel_requested"))


def stalled_warning(root: Path) -> None:
    """What a stalled job waits for, and the two ways on."""
    st.warning(f"Nothing runs this job: its worker stopped sending heartbeats. To resume it "
               f"from its last finished round, start a worker (`lottery worker --home {root}`); "
               f"or cancel it.", icon=":material/warning:")


def node_text(status: dict) -> str:
    """Where a job runs or ran: its Ray node (short id and address), or '' for a local job."""
    node = status.get("node")
    return f"{node['id'][:8]} ({node['ip']})" if node else ""


def round_text(status: dict) -> str:
    """Round 0 is the dense network; then come the N pruning rounds."""
    r, n = status.get("round", 0), status.get("num_rounds")
    return "dense round 0" if r == 0 else f"pruning round {r} of {n}"


def phase_text(status: dict) -> str | None:
    """What a running job does before its first batch (None once batches flow)."""
    if status.get("state") != queue.RUNNING or status.get("batches"):
        return None
    if status.get("task"):
        return f"{status['task']}: {status.get('task_done', 0):,} of {status['task_total']:,}"
    if status.get("phase"):
        return f"{status['phase']}…"
    return "starting the job's process (importing TensorFlow)…"


def progress_text(status: dict) -> str:
    if status.get("state") != queue.RUNNING:
        return state_text(status)
    series = status.get("series", IMP)
    return (f"{round_text(status)}{'' if series == IMP else f' ({series})'}, epoch "
            f"{status.get('epoch', 0)}/{status.get('epochs')}, batch {status.get('batch', 0)}/"
            f"{status.get('batches', 0)}")


def elapsed(status: dict) -> float | None:
    """Seconds since the job started (until it finished)."""
    if "started" not in status:
        return None
    return status.get("finished", time.time()) - status["started"]


def job_label(status: dict) -> str:
    return f"{lab_label(status)} · {state_text(status)}"


def percent(fraction: float | None) -> float | None:
    """A fraction as a percentage to one decimal (None stays None: not known yet)."""
    return None if fraction is None else round(100 * fraction, 1)


def job_rows(jobs: list[dict], search: str = "", states: list[str] | None = None) -> list[dict]:
    """The run table: one row per run, newest first, filtered by name/tag text and state; the
    run id, then TABLE_COLUMNS. A value a run does not have yet (a queued run's accuracy) is
    None, which the table shows as "–" and a CSV file as an empty cell. Jobs on a run (exports,
    instability analyses) are not runs: each shows on the page of its run."""
    needle = search.strip().lower()
    rows = []
    for status in reversed(jobs):
        if not queue.is_run(status):
            continue
        tags = status.get("tags") or []
        if needle and needle not in status.get("name", "").lower() \
                and not any(needle in t.lower() for t in tags):
            continue
        if states and status["state"] not in states:
            continue
        rows.append({
            "id": status["id"], "name": status.get("name", ""), "state": state_text(status),
            "progress": progress_fraction(status), "tags": ", ".join(tags),
            "sparsity reached %": round(100 * status.get("sparsity", 0.0), 1),
            "ticket round": status.get("ticket_round"),
            "ticket sparsity %": percent(status.get("ticket_sparsity")),
            "ticket val acc": status.get("ticket_val_accuracy"),
            "ticket test acc": status.get("ticket_test_accuracy"),
            "notes": status.get("notes", ""),
            "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(status["submitted"])),
            "elapsed": duration(elapsed(status)), "arch": status.get("arch", ""),
            "data": status.get("data", ""), "worker": status.get("worker") or "",
            "node": node_text(status), "error": status.get("error", ""),
        })
    return rows


def table_key(ids: list[str]) -> str:
    """The Runs table's widget key for the runs it shows, in their order. Streamlit reports a
    selection as row positions; a key per sequence of runs makes a table whose rows changed (a
    new job, a filter) a new widget, so a position is only ever read against the rows it was
    made on, and never lands on whichever run moved into that row."""
    return "run_table-" + hashlib.sha1("\n".join(ids).encode()).hexdigest()[:16]


def table_csv(rows: list[dict]) -> bytes:
    """The Runs table as it is shown (its columns, its filter) as a CSV file; a missing value is
    an empty cell."""
    text = io.StringIO()
    writer = csv.DictWriter(text, TABLE_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode()


def chart(figure: go.Figure, key: str) -> None:
    """Draw a figure with room for its tick labels at any width: the report's figures keep
    Plotly's wide default margins and its tick density, whose x labels run into each other in
    a phone's 360 px ("60k50k"). Here the axes grow the margins they need (automargin) and
    Plotly places at most a few x ticks (nticks; a fixed step such as one per round stays)."""
    figure.update_layout(margin={"l": 10, "r": 10})
    figure.update_yaxes(automargin=True)
    figure.for_each_xaxis(lambda axis: axis.update(
        automargin=True, nticks=LOG_X_TICKS if axis.type == "log" else X_TICKS))
    charts.chart(figure, key)


def no_such_run(job_id: str, jobs: list[dict]) -> None:
    """A link to a run that is not here (deleted, mistyped) says so and offers the runs there
    are, instead of showing another run under that link."""
    st.title("Run")
    st.error(f"No run {plain(job_id)} in this home ({plain(home())}).", icon=":material/error:")
    st.page_link("views/runs.py", label="All runs", icon=":material/list:")
    for status in jobs[:LINKED_RUNS]:
        st.page_link("views/run.py", label=plain(job_label(status)),
                     query_params={"job": status["id"]}, icon=":material/monitoring:")


def config_text(run_dir: Path) -> str:
    try:
        return (run_dir / runfolder.CONFIG).read_text()
    except OSError:
        return ""


def config_diff(left: str, right: str, left_label: str, right_label: str) -> str:
    """A unified diff of two frozen configs ('' when they are the same)."""
    return "\n".join(difflib.unified_diff(left.splitlines(), right.splitlines(), left_label,
                                           right_label, lineterm=""))


