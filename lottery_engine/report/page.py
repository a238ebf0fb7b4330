"""A run's report file (report.html) and its Markdown table of rounds (rounds.md).

The report file carries the run's figures (figures.py; its series on one figure when it has
controls, compare.py) and also the winning ticket, every round, its exports and the frozen config,
so it stands alone when mailed.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go

from ..config.architectures import ARCHITECTURES
from ..export import downloads, export_records
from ..foundations import runfolder
from ..foundations.round_record import RoundRecord
from .compare import compare
from . import instability_figures
from .figures import (TABLE_COLUMNS, accuracy_vs_flops, deployment_figure, flops_per_round,
                      formatted, layer_heatmap, markdown_table, remaining_weights,
                      sparsity_accuracy, table_rows)

# the winning ticket as the report states it: its winning_ticket.json and its round's record
TICKET_FIELDS = [("round", "round", "{}"), ("select_metric", "chosen by", "{}"),
                 ("global_sparsity", "sparsity", "{:.1%}"),
                 ("remaining_prunable", "remaining prunable weights", "{:,}"),
                 ("reloaded_val_accuracy", "val accuracy (re-evaluated from the saved file)",
                  "{:.4f}"),
                 ("test_accuracy", "test accuracy", "{:.4f}"),
                 ("early_stop_step", "early-stop iteration", "{:,.0f}"),
                 ("dense_bytes", "size, dense", "{:,} bytes"),
                 ("compressed_bytes", "size, compressed", "{:,} bytes")]
STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
         "th,td{border:1px solid #ccc;padding:2px 8px;text-align:right}"
         "th{background:#f3f3f3}#ticket th{text-align:left}"
         "pre{background:#f6f6f6;padding:1em;overflow:auto}")


def figures(run_dir: Path) -> list[go.Figure]:
    run_dir = Path(run_dir)
    records = runfolder.read_rounds(run_dir)
    ticket = runfolder.read_json(run_dir / runfolder.TICKET_JSON, {})
    figs = [sparsity_accuracy(records), remaining_weights(records, ticket.get("round")),
            layer_heatmap(records), flops_per_round(records)]
    all_series = runfolder.series(run_dir)
    if len(all_series) > 1:
        name = runfolder.run_name(run_dir)
        figs.append(compare({name: {name: all_series}}))
    hybrid = runfolder.hybrid_metrics(run_dir)
    if hybrid:
        figs.append(accuracy_vs_flops(records, hybrid))
    return figs + instability_figures.figures(run_dir)


def _cells(tag: str, values: list[str]) -> str:
    return "".join(f"<{tag}>{html_lib.escape(v)}</{tag}>" for v in values)


def html_table(records: list[RoundRecord]) -> str:
    """The rounds table of the Markdown file, as HTML: the same rows and columns."""
    head = _cells("th", [title for _, title, _ in TABLE_COLUMNS])
    body = "".join(f"<tr>{_cells('td', list(row.values()))}</tr>" for row in table_rows(records))
    return f"<table id='rounds'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def ticket_html(ticket: dict | None, records: list[RoundRecord]) -> str:
    """The winning ticket's facts (winning_ticket.json, and its round's early-stop iteration),
    or why there is none: a reader of the mailed file has no folder to look in."""
    if not ticket:
        return ("<p id='ticket'>No winning ticket in this run folder: it is made after the last "
                "round from the best pruned round (<code>lottery ticket RUN_DIR</code>).</p>")
    record = next((r.to_json() for r in records if r.round == ticket.get("round")), {})
    rows = "".join(f"<tr><th>{html_lib.escape(title)}</th><td>{html_lib.escape(value)}</td></tr>"
                   for title, value in formatted(record | ticket, TICKET_FIELDS).items())
    return f"<table id='ticket'>{rows}</table>"


def network_text(train: Mapping) -> str:
    """The network a run trained, from its frozen config's train section: the architecture and,
    for vgg16, whether its conv base was a fixed feature extractor or trained and pruned with the
    head (two different experiments under one arch name)."""
    arch = str(train.get("arch", "?"))
    if arch not in ARCHITECTURES or not ARCHITECTURES[arch].base:
        return arch
    if train.get("freeze_base", True) is False:
        return (f"{arch} with its conv base trained and pruned with the dense head "
                f"(train.freeze_base: false, no feature cache)")
    return f"{arch} with its conv base frozen (never trained or pruned) under the pruned dense head"


def sources_text(run_dir: Path) -> str:
    """The network and, for the user's own, the files the run read, by the user's own names:
    "fmnist_convnet.keras (your model) on fmnist.npz", never "file" or a hashed name."""
    names = downloads.source_files(run_dir)
    model = names.get("train.model_file")
    text = f"{model} (your model)" if model else \
        network_text(runfolder.read_frozen_config(run_dir).get("train") or {})
    return f"{text} on {names['data.path']}" if "data.path" in names else text


def config_html(run_dir: Path) -> str:
    """The frozen config as escaped YAML text: what made these numbers (names and paths in it
    are the user's, so plain text, never markup)."""
    try:
        text = (Path(run_dir) / runfolder.CONFIG).read_bytes().decode("utf-8", "replace")
    except OSError:
        text = f"(no {runfolder.CONFIG} in the run folder)"
    return f"<pre id='config'>{html_lib.escape(text)}</pre>"


def _export_cell(value: object) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def deployment_html(run_dir: Path) -> str:
    """The exports (lottery export) as a table and a chart; empty before the first export."""
    records = export_records.read(run_dir)
    if not records:
        return ""
    head = _cells("th", export_records.COLUMNS)
    body = "".join(f"<tr>{_cells('td', [_export_cell(v) for v in row.values()])}</tr>"
                   for row in export_records.table_rows(records))
    chart = deployment_figure(records).to_html(full_html=False, include_plotlyjs=False)
    return (f"<h2>Deploying the ticket</h2><table id='exports'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{chart}")


def html_page(run_dir: Path) -> str:
    """The report as one self-contained page that stands alone when mailed: the ticket, the
    charts (plotly.js inlined once, with the first), every round and the config that made it."""
    run_dir = Path(run_dir)
    records = runfolder.read_rounds(run_dir)
    ticket = runfolder.read_json(run_dir / runfolder.TICKET_JSON, None)
    charts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0))
              for i, fig in enumerate(figures(run_dir))]
    name = html_lib.escape(runfolder.run_name(run_dir))
    network = html_lib.escape(sources_text(run_dir))
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Lottery Lab report: "
            f"{name}</title><style>{STYLE}</style></head><body><h1>{name}</h1>"
            f"<p id='network'>Network: {network}.</p>"
            f"<h2>Winning ticket</h2>{ticket_html(ticket, records)}<h2>Charts</h2>"
            + "".join(charts) + deployment_html(run_dir) + f"<h2>Rounds</h2>{html_table(records)}"
            f"<h2>Config</h2>{config_html(run_dir)}</body></html>")


def write(run_dir: Path, html: bool = True, markdown: bool = True) -> None:
    """Write the self-contained HTML report and/or the Markdown table of rounds."""
    run_dir = Path(run_dir)
    if markdown:
        runfolder.atomic_write(run_dir / runfolder.REPORT_MD,
                               markdown_table(runfolder.read_rounds(run_dir)))
    if html:
        runfolder.atomic_write(run_dir / runfolder.REPORT_HTML, html_page(run_dir))
