"""The files of a run (SPEC §4): the contract between engine, worker, reports and dashboard.

Importable without TensorFlow, so the dashboard can read runs. Whole files are written to a temporary
name and renamed into place, so a reader never sees half a file; `rounds.jsonl` is appended one
flushed line at a time and read incrementally from a byte offset.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .events import IMP
from .round_record import RoundRecord

log = logging.getLogger("lottery")

CONFIG = "config.yaml"
ROUNDS = "rounds.jsonl"
# the run's summary (its series' records and the ticket), written last: a run is finished when it
# exists. The name is historical and stays, so folders written before still read as finished.
FINISHED = "sparsity_vs_accuracy.json"
SPLIT = "split.npz"
REWIND = "rewind.weights.h5"
LOG = "log.txt"
CLASSES = "classes.json"  # class index -> name (a csv's string labels in sorted order)
TICKET_MODEL = "winning_ticket_model.keras"
TICKET_MASK = "winning_ticket_mask.npz"
TICKET_JSON = "winning_ticket.json"
REPORT_HTML = "report.html"
REPORT_MD = "rounds.md"
CONTROLS = "controls"
HYBRID = "hybrid"
HYBRID_METRICS = "test_metrics.json"  # what `lottery hybrid` writes (in RUN_DIR/hybrid/)
INSTABILITY = "instability.jsonl"  # what `lottery instability` writes, one line per (r, k, pair)


def slug(name: str, length: int = 40) -> str:
    """A run name as a safe folder-name part: letters, digits, '.', '_' and '-' only."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:length].strip("-.")
    return text or "run"


def new_run_dir(parent: Path, name: str) -> Path:
    """A fresh folder path under `parent` for a run named `name`: the name is a label, and the
    folder's name is made here (slug, time, random suffix), so no name can point elsewhere."""
    return Path(parent) / f"{slug(name)}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def mask_file(round_index: int) -> str:
    return f"mask_round_{round_index}.npz"


def weights_file(round_index: int) -> str:
    return f"model_round_{round_index}.weights.h5"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write to a temporary file in the same folder and rename it over `path`."""
    path = Path(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2))


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def drop_torn_tail(path: Path) -> None:
    """Truncate an append-only file to its last complete line: a writer killed mid-line (or a
    full disk) leaves a torn tail that the next append would otherwise weld onto a new line."""
    try:
        with open(path, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            if size == 0:
                return
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return
            f.seek(0)
            keep = f.read().rfind(b"\n") + 1
            log.warning("%s: dropped an incomplete last line (%d bytes) before appending",
                        path, size - keep)
            f.truncate(keep)
    except FileNotFoundError:
        pass


def append_round(run_dir: Path, record: RoundRecord) -> None:
    """Append one round as a JSON line and make it durable before returning."""
    append_line(Path(run_dir) / ROUNDS, record.to_json())


def append_line(path: Path, line: dict) -> None:
    """Append `line` to an append-only JSON-lines file (a torn tail dropped first) and make it
    durable before returning."""
    drop_torn_tail(path)
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_lines_from(path: Path, offset: int = 0) -> tuple[list[dict], int]:
    """The complete JSON lines of an append-only file after byte `offset`, and the offset to
    continue from next time. An incomplete last line (still being written, or torn) is left for
    later and logged; a line that is not JSON is skipped with a warning."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n") + 1
    if chunk[end:].strip():
        log.info("%s: an incomplete last line (%d bytes) is not read", path, len(chunk) - end)
    lines = []
    for line in chunk[:end].splitlines():
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError:
            log.warning("%s: skipped a line that is not JSON: %.60r", path, line)
    return lines, offset + end


def read_rounds_from(path: Path, offset: int = 0) -> tuple[list[RoundRecord], int]:
    """The round records after byte `offset` (read_lines_from), and the offset to continue from;
    a line that is not a round's record is skipped with a warning."""
    lines, offset = read_lines_from(path, offset)
    records = []
    for line in lines:
        try:
            records.append(RoundRecord.from_json(line))
        except (KeyError, TypeError, AttributeError):
            log.warning("%s: skipped a line that is not a round's record: %.60r", path, line)
    return records, offset


def read_rounds(run_dir: Path) -> list[RoundRecord]:
    return read_rounds_from(Path(run_dir) / ROUNDS)[0]


def keep_rounds_below(path: Path, first_dropped: int) -> None:
    """Drop records of rounds >= `first_dropped` (a resumed run redoes them)."""
    records = read_rounds_from(path)[0]
    kept = [r for r in records if r.round < first_dropped]
    if len(kept) != len(records):
        atomic_write(path, "".join(json.dumps(r.to_json()) + "\n" for r in kept))


def read_frozen_config(run_dir: Path) -> dict:
    """The run's frozen config as plain data ({} when absent or unreadable), without validation:
    for readers that only need a field or two (name, report settings)."""
    from .yaml_text import YamlError, parse

    try:
        raw = parse((Path(run_dir) / CONFIG).read_bytes(), str(Path(run_dir) / CONFIG))
    except (OSError, YamlError):
        return {}
    return raw if isinstance(raw, dict) else {}


def run_name(run_dir: Path) -> str:
    """The run's name (a label, to be shown as plain text), else its folder's name."""
    name = (read_frozen_config(run_dir).get("run") or {}).get("name")
    return name if isinstance(name, str) and name else Path(run_dir).name


def hybrid_metrics(run_dir: Path) -> dict | None:
    """The hybrid baseline to compare with: the file the config names when
    report.compare_with_hybrid_pipeline is on, else RUN_DIR/hybrid/test_metrics.json."""
    report = read_frozen_config(run_dir).get("report") or {}
    path = report.get("hybrid_pipeline_metrics_path")
    if not (report.get("compare_with_hybrid_pipeline") and isinstance(path, str)):
        path = Path(run_dir) / HYBRID / HYBRID_METRICS
    return read_json(Path(path))


def control_dir(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / CONTROLS / name


def series(run_dir: Path, read: Callable[[Path], list[RoundRecord]] = read_rounds
           ) -> dict[str, list[RoundRecord]]:
    """The run's IMP series and each control series, by name; `read` reads one series' folder
    (the dashboard's reads only what was appended since its last call)."""
    run_dir = Path(run_dir)
    out = {IMP: read(run_dir)}
    controls = run_dir / CONTROLS
    if controls.is_dir():
        for sub in sorted(controls.iterdir()):
            out[sub.name] = read(sub)
    return out


def is_complete(run_dir: Path) -> bool:
    """A run is finished when its summary exists; it is written last."""
    return (Path(run_dir) / FINISHED).is_file()


def log_tail(run_dir: Path, lines: int = 40, max_bytes: int = 16384) -> str:
    """The last lines of the run's log, reading at most `max_bytes` from its end."""
    try:
        with open(Path(run_dir) / LOG, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            tail = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(tail.splitlines()[-lines:])


def runs_home(cfg: Any) -> Path:
    """Where a run without --out goes: imp.results_dir, else run.artifacts_dir (the plan's keys),
    else $LOTTERY_HOME, else ./runs. `cfg` is a Config (config/schema.py, a wing above: it is
    read here, never imported)."""
    return Path(cfg.imp.results_dir or cfg.run.artifacts_dir
                or os.environ.get("LOTTERY_HOME") or "runs")
