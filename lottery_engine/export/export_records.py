"""The export records of a run (`RUN_DIR/exports.json`) and their one-line summaries.

Importable without TensorFlow, like runfolder.py, so the dashboard can list a run's exports, offer
their files and show how each compares with the dense ticket without loading a model. The file maps
each format to the record of its latest export; a new export of a format replaces its record and
leaves the others, and the whole file is replaced atomically.
"""

from __future__ import annotations

from pathlib import Path

from ..foundations import runfolder

EXPORTS_JSON = "exports.json"
EXPORT_DIR = "export"
# every round's exports (every_round.py), {round: {format: record}}: kept apart from exports.json,
# whose records are the ticket's, shown on the Run page
BY_ROUND_JSON = "exports_by_round.json"
# format -> file extension, in the order records are kept and shown
FORMATS = {"keras": "keras", "compact": "keras", "tflite": "tflite", "tflite-int8": "tflite"}
# the export table's columns, as the Run page and the HTML report show them
COLUMNS = ["format", "status", "size", "size × dense", "ms batch 1", "speed-up batch 1",
                  "ms batch 256", "speed-up batch 256", "test acc %", "change (points)",
                  "runtime", "round", "error"]


def default_path(run_dir: Path, fmt: str) -> Path:
    """Where a format's file goes unless the user names one: RUN_DIR/export/<format>.<ext>."""
    return Path(run_dir) / EXPORT_DIR / f"{fmt}.{FORMATS[fmt]}"


def read(run_dir: Path) -> dict[str, dict]:
    """Every format's latest record ({} before the first export), in FORMATS order."""
    records = runfolder.read_json(Path(run_dir) / EXPORTS_JSON, {})
    if not isinstance(records, dict):
        return {}
    return {fmt: records[fmt] for fmt in FORMATS if isinstance(records.get(fmt), dict)}


def write(run_dir: Path, record: dict) -> None:
    """Add or replace the record of `record['format']`."""
    records = read(run_dir) | {record["format"]: record}
    runfolder.write_json(Path(run_dir) / EXPORTS_JSON,
                         {fmt: records[fmt] for fmt in FORMATS if fmt in records})


def read_by_round(run_dir: Path) -> dict[int, dict[str, dict]]:
    """Every round's export records ({} before the first), by round, then format."""
    records = runfolder.read_json(Path(run_dir) / BY_ROUND_JSON, {})
    if not isinstance(records, dict):
        return {}
    return {int(key): value for key, value in sorted(records.items(), key=lambda kv: int(kv[0]))
            if key.isdigit() and isinstance(value, dict)}


def write_by_round(run_dir: Path, record: dict) -> None:
    """Add or replace the record of `record['format']` at `record['round']`."""
    records = read_by_round(run_dir)
    records.setdefault(record["round"], {})[record["format"]] = record
    runfolder.write_json(Path(run_dir) / BY_ROUND_JSON,
                         {str(r): formats for r, formats in sorted(records.items())})


def human_bytes(count: int) -> str:
    """Decimal units, three significant digits: 412 KB, 1.06 MB."""
    value = float(count)
    for unit in ("B", "KB", "MB"):
        if value < 999.5:
            return f"{int(value)} B" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} GB"


def ratio(value: float) -> str:
    """0.39x, 2.6x, 12x: two decimals below 1, one below 10, none above."""
    if value < 0.995:
        return f"{value:.2f}x"
    return f"{value:.1f}x" if value < 9.95 else f"{value:.0f}x"


def _speed(ms: float, dense_ms: float) -> str:
    """Within 5% is "about the same": the dense ticket timed twice differs by that much."""
    if ms <= 0 or dense_ms <= 0:
        return "not measurable"
    if 1 / 1.05 < dense_ms / ms < 1.05:
        return "about the same"
    return (f"{ratio(dense_ms / ms)} faster" if dense_ms > ms
            else f"{ratio(ms / dense_ms)} slower")


def _accuracy_change(change: float) -> str:
    points = 100 * change
    return "=" if abs(points) < 0.005 else f"{points:+.2f} points"


def summary(record: dict) -> str:
    """One line: size, latency at batch 1 and 256 and test accuracy, each against the dense ticket
    measured in the same call; a failed export says why."""
    fmt = record["format"]
    if record.get("status") != "ok":
        return f"{fmt}: failed: {record.get('error', 'unknown reason')}"
    ref = record["reference"]
    size = (f"{human_bytes(record['bytes'])} (dense {human_bytes(ref['bytes'])}, "
            f"{ratio(record['bytes'] / ref['bytes'])})")
    latency = record["latency_ms_per_sample"]
    dense = ref["latency_ms_per_sample"]
    speed = (f"{latency['batch_1']:.3g} ms/sample at batch 1 (dense {dense['batch_1']:.3g}, "
             f"{_speed(latency['batch_1'], dense['batch_1'])}), {latency['batch_256']:.3g} at "
             f"batch 256 (dense {dense['batch_256']:.3g}, "
             f"{_speed(latency['batch_256'], dense['batch_256'])})")
    accuracy = (f"test accuracy {100 * record['test_accuracy']:.2f}% "
                f"({_accuracy_change(record['test_accuracy_change'])})")
    return f"{fmt}: {size}, {speed}, {accuracy}"


def table_rows(records: dict[str, dict]) -> list[dict]:
    """The export table: per format its size, latency per sample at batch 1 and 256 and test
    accuracy, each beside its ratio to (or change from) the dense ticket measured in the same
    export (a ratio between two exports would mostly measure the machine); a failed format shows
    its reason, a record that lacks fields says so instead of breaking the page."""
    rows = []
    for fmt, record in records.items():
        row = dict.fromkeys(COLUMNS) | {"format": fmt, "round": record.get("round"),
                                        "status": str(record.get("status", "?")),
                                        "error": record.get("error")}
        if row["status"] == "ok":
            try:
                row |= _measured(record)
            except (KeyError, TypeError, ZeroDivisionError):
                row["status"] = "record unreadable"
        rows.append(row)
    return rows


def _measured(record: dict) -> dict:
    """An ok record's numbers, as the table shows them."""
    reference = record["reference"]
    latency, dense = record["latency_ms_per_sample"], reference["latency_ms_per_sample"]
    return {"size": human_bytes(record["bytes"]),
            "size × dense": ratio(record["bytes"] / reference["bytes"]),
            "ms batch 1": latency["batch_1"],
            "speed-up batch 1": ratio(dense["batch_1"] / latency["batch_1"]),
            "ms batch 256": latency["batch_256"],
            "speed-up batch 256": ratio(dense["batch_256"] / latency["batch_256"]),
            "test acc %": 100 * record["test_accuracy"],
            "change (points)": 100 * record["test_accuracy_change"],
            "runtime": record["runtime"]}
