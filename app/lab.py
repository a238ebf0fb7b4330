"""The dashboard's small API over the queue home and the run folders. Never imports TensorFlow.

Pages read job folders; they never train. Round records are read incrementally: each job's byte
offset into rounds.jsonl is kept in the session, so a live refresh reads only what was appended.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import streamlit as st
import yaml

from jobs import queue, worker
from lottery_engine import runfolder

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "quickstart.yaml"
WORKER_SILENCE = 10.0
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$&])")


def plain(text: object) -> str:
    """Text that Streamlit's Markdown shows as itself: run names and error messages are labels,
    never links, images, emphasis, emoji codes or colour directives."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def home() -> Path:
    return queue.home()


def quickstart_raw() -> dict:
    return yaml.safe_load(QUICKSTART.read_text())


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


def rounds(run_dir: Path, key: str = "imp") -> list[dict]:
    """All round records so far, reading only the bytes appended since the last call."""
    cache = st.session_state.setdefault("_rounds", {})
    path = run_dir / runfolder.ROUNDS
    offset, records = cache.get((str(path), key), (0, []))
    if offset and (not path.is_file() or path.stat().st_size < offset):
        offset, records = 0, []  # rewritten shorter (a resumed run dropped an unfinished round)
    new, offset = runfolder.read_rounds_from(path, offset)
    records = records + new
    cache[(str(path), key)] = (offset, records)
    return records


def all_series(run_dir: Path) -> dict[str, list[dict]]:
    out = {"imp": rounds(run_dir)}
    controls = run_dir / runfolder.CONTROLS
    if controls.is_dir():
        for sub in sorted(controls.iterdir()):
            out[sub.name] = rounds(sub, sub.name)
    return out


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
    """A plain-text label (select boxes and tables do not render Markdown)."""
    return f"{status.get('name', '?')} · {status['id']}"


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


def progress_text(status: dict) -> str:
    if status.get("state") != queue.RUNNING:
        return status.get("state", "")
    return (f"round {status.get('round', 0)}/{status.get('num_rounds')} "
            f"({status.get('series', 'imp')}), epoch {status.get('epoch', 0)}/"
            f"{status.get('epochs')}, batch {status.get('batch', 0)}/{status.get('batches', 0)}")


def job_label(status: dict) -> str:
    return f"{lab_label(status)} · {status['state']}"
