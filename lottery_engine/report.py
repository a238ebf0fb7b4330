"""Plotly figures and tables of a run (SPEC §6), shared by the HTML report and the dashboard.

Functions take round records (dicts from rounds.jsonl) and return figures; nothing here imports
TensorFlow, so the dashboard can draw the same figures the report file holds. The report file
(report.html) also carries the winning ticket, every round and the frozen config, so it stands
alone when mailed.
"""

from __future__ import annotations

import html as html_lib
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import runfolder

ACCURACY, F1, INFERENCE = "#E64B35", "#4DBBD5", "#3C5488"  # SPEC §6: one run's metrics
# series: the ticket and each control, everywhere (pages, report, experiment write-up)
SERIES_COLOURS = {"imp": "#E64B35", "random_reinit": "#00A087", "random_prune": "#7E6148"}
SERIES_DASH = {"imp": "solid", "random_reinit": "dash", "random_prune": "dot"}
SERIES_LABELS = {"imp": "ticket", "random_reinit": "random reinit",
                 "random_prune": "random prune"}
DENSE = "#7F7F7F"  # the dense baseline
TICK_CHARS = 24  # the most of a layer name an axis label keeps (after its '…')
RUN_COLOURS = ["#E64B35", "#3C5488", "#00A087", "#F39B7F", "#8491B4", "#91D1C2", "#DC0000",
               "#7E6148", "#B09C85", "#4DBBD5"]  # one per run when several are compared
# x axes a user can choose: title, value of a record, log scale
AXES = {
    "sparsity": ("global sparsity (%)", lambda r: 100.0 * r["global_sparsity"], False),
    "remaining": ("remaining prunable weights", lambda r: r["remaining_prunable"], True),
    "round": ("round (0 = dense)", lambda r: r["round"], False),
}


def _x(records: list[dict], axis: str) -> list[float]:
    return [AXES[axis][1](r) for r in records]


def _x_axis(fig: go.Figure, axis: str, **where) -> None:
    title, _, log = AXES[axis]
    fig.update_xaxes(title_text=title, type="log" if log else "linear",
                     autorange="reversed" if log else True,
                     dtick=1 if axis == "round" else None, **where)


def _keep_view(fig: go.Figure, key: str) -> go.Figure:
    """A fixed uirevision: a live redraw extends the traces and keeps the user's zoom, pan and
    hidden legend items (Plotly keeps UI state while uirevision is unchanged)."""
    fig.update_layout(uirevision=key, template="plotly_white")
    return fig


def sparsity_accuracy(records: list[dict], axis: str = "sparsity",
                      controls: dict[str, list[dict]] | None = None) -> go.Figure:
    """Val accuracy and F1 against the chosen x axis, inference time on a second axis, the
    dense baseline dashed, and each control's val accuracy overlaid."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = _x(records, axis)
    fig.add_trace(go.Scatter(x=x, y=[r["val_accuracy"] for r in records], name="val accuracy",
                             mode="lines+markers", line={"color": ACCURACY}))
    fig.add_trace(go.Scatter(x=x, y=[r["val_f1"] for r in records], name="val F1",
                             mode="lines+markers", line={"color": F1}))
    for name, control in (controls or {}).items():
        fig.add_trace(go.Scatter(x=_x(control, axis), y=[r["val_accuracy"] for r in control],
                                 name=f"val accuracy, {SERIES_LABELS.get(name, name)}",
                                 mode="lines+markers", line={"color": SERIES_COLOURS.get(name),
                                                             "dash": SERIES_DASH.get(name)}))
    fig.add_trace(go.Scatter(x=x, y=[r["inference_ms"] for r in records], name="inference ms/sample",
                             mode="lines+markers", line={"color": INFERENCE, "dash": "dot"}),
                  secondary_y=True)
    if records and records[0]["round"] == 0:
        fig.add_hline(y=records[0]["val_accuracy"], line={"dash": "dash", "color": DENSE},
                      annotation_text="dense baseline")
    fig.update_layout(title=f"{AXES[axis][0].split(' (')[0].capitalize()} vs accuracy",
                      legend={"orientation": "h", "y": -0.3})
    _x_axis(fig, axis)
    fig.update_yaxes(title_text="accuracy / F1", secondary_y=False)
    fig.update_yaxes(title_text="ms / sample", secondary_y=True)
    return _keep_view(fig, f"sparsity-{axis}")


def remaining_weights(records: list[dict], ticket_round: int | None = None) -> go.Figure:
    """Remaining prunable weights (log x) vs val and test accuracy, the ticket annotated."""
    fig = go.Figure()
    x = [r["remaining_prunable"] for r in records]
    fig.add_trace(go.Scatter(x=x, y=[r["val_accuracy"] for r in records], name="val accuracy",
                             mode="lines+markers", line={"color": ACCURACY}))
    fig.add_trace(go.Scatter(x=x, y=[r["test_accuracy"] for r in records], name="test accuracy",
                             mode="lines+markers", line={"color": INFERENCE}))
    for r in records:
        if r["round"] == ticket_round:
            fig.add_annotation(x=r["remaining_prunable"], y=r["val_accuracy"], showarrow=True,
                               text=f"winning ticket (round {r['round']})")
    fig.update_xaxes(type="log", autorange="reversed", title_text="remaining prunable weights")
    fig.update_layout(title="Remaining weights vs accuracy", yaxis_title="accuracy")
    return _keep_view(fig, "remaining")


def _tail(name: str, width: int) -> str:
    """`name`, or at most its last `width` characters, starting after a '/' where that costs
    less than half of them (a whole path segment reads better than a cut one)."""
    if len(name) <= width + 1:
        return name
    tail = name[-width:]
    cut = tail.find("/")
    if name[-width - 1] != "/" and 0 <= cut < width // 2:
        tail = tail[cut + 1:]
    return tail


def _label(name: str, names: list[str], width: int) -> str:
    """The shortest tail of `name`, from `width` characters on, that no other name ends with."""
    while True:
        tail = _tail(name, width)
        if tail == name:
            return name
        if sum(other.endswith(tail) for other in names) == 1:
            return f"…{tail}"
        width += 1


def tick_labels(names: list[str], width: int = TICK_CHARS) -> list[str]:
    """Short axis labels for layer names, which can be long qualified paths such as
    `encoder/block_3/conv_2:depthwise`: the tail tells layers apart (their shared prefix does
    not), made as long as it takes to name one layer only, so labels never clash."""
    return [_label(name, names, width) for name in names]


def layer_heatmap(records: list[dict]) -> go.Figure:
    """Per-layer sparsity, rounds × layers, under the model's own layer names: short tails on
    the axis, the full name in the hover."""
    layers = list(records[0]["layer_sparsity"]) if records else []
    z = [[100.0 * r["layer_sparsity"][name] for name in layers] for r in records]
    full = [html_lib.escape(name) for name in layers]  # names are the user's: plain text
    fig = go.Figure(go.Heatmap(z=z, x=layers, y=[f"round {r['round']}" for r in records],
                               customdata=[full] * len(records),
                               hovertemplate="%{customdata}<br>%{y}: %{z:.1f}% pruned"
                                             "<extra></extra>",
                               colorscale="Reds", zmin=0, zmax=100,
                               colorbar={"title": "sparsity %"}))
    fig.update_xaxes(tickmode="array", tickvals=layers,
                     ticktext=[html_lib.escape(label) for label in tick_labels(layers)])
    fig.update_layout(title="Per-layer sparsity", yaxis={"autorange": "reversed"})
    return _keep_view(fig, "heatmap")


def flops_per_round(records: list[dict]) -> go.Figure:
    fig = go.Figure(go.Bar(x=[r["round"] for r in records], y=[r["flops"] for r in records],
                           marker_color=INFERENCE))
    fig.update_layout(title="Estimated FLOPs per inference", yaxis_title="FLOPs")
    _x_axis(fig, "round")
    return _keep_view(fig, "flops")


def accuracy_vs_flops(records: list[dict], hybrid: dict | None) -> go.Figure:
    """IMP rounds' test accuracy against their FLOPs, and the hybrid baseline's point."""
    fig = go.Figure(go.Scatter(x=[r["flops"] for r in records],
                               y=[r["test_accuracy"] for r in records], mode="lines+markers",
                               name="IMP rounds", text=[f"round {r['round']}" for r in records],
                               line={"color": ACCURACY}))
    if hybrid:
        fig.add_trace(go.Scatter(x=[hybrid["flops"]], y=[hybrid["accuracy"]], mode="markers",
                                 name=f"hybrid: {hybrid['layer']} + RandomForest",
                                 marker={"color": F1, "size": 14, "symbol": "diamond"}))
    fig.update_xaxes(type="log", title_text="FLOPs per inference")
    fig.update_layout(title="Accuracy vs FLOPs", yaxis_title="test accuracy")
    return _keep_view(fig, "flops-accuracy")


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average, as TensorBoard's smoothing slider (0 leaves values as they are)."""
    out, last = [], None
    for value in values:
        last = value if last is None else weight * last + (1 - weight) * value
        out.append(last)
    return out


def epoch_history(record: dict, smoothing: float = 0.0) -> go.Figure:
    """One round's per-epoch loss and accuracy (train and val), optionally smoothed."""
    history = record.get("history", {})
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for col, key in ((1, "loss"), (2, "accuracy")):
        for prefix, dash in (("", "solid"), ("val_", "dash")):
            values = smooth(history.get(prefix + key, []), smoothing)
            fig.add_trace(go.Scatter(x=list(range(1, len(values) + 1)), y=values,
                                     name=(prefix or "train_") + key, line={"dash": dash}),
                          row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_layout(title=f"Round {record.get('round')}: training")
    return _keep_view(fig, "epochs")


def compare(runs: dict[str, dict[str, list[dict]]], metric: str = "val_accuracy",
            axis: str = "sparsity") -> go.Figure:
    """Runs and their series (ticket, controls) on one figure. One run: a colour per series;
    several: a colour per run and a dash per series. Labels are shown as plain text."""
    fig = go.Figure()
    for i, (run, series) in enumerate(runs.items()):
        for kind, records in series.items():
            colour = (SERIES_COLOURS.get(kind) if len(runs) == 1
                      else RUN_COLOURS[i % len(RUN_COLOURS)])
            label = SERIES_LABELS.get(kind, kind)
            fig.add_trace(go.Scatter(
                x=_x(records, axis), y=[r[metric] for r in records], mode="lines+markers",
                name=html_lib.escape(label if len(runs) == 1 else f"{run[:28]} · {label}"),
                legendgroup=html_lib.escape(run), line={"color": colour,
                                                        "dash": SERIES_DASH.get(kind)}))
    fig.update_layout(title=f"{metric} by series", yaxis_title=metric,
                      legend={"orientation": "h", "y": -0.25})
    _x_axis(fig, axis)
    return _keep_view(fig, f"compare-{axis}-{metric}")


TABLE_COLUMNS = [("round", "round", "{}"), ("global_sparsity", "sparsity %", "{:.1%}"),
                 ("remaining_prunable", "remaining", "{:,}"), ("val_accuracy", "val acc", "{:.4f}"),
                 ("val_f1", "val F1", "{:.4f}"), ("val_loss", "val loss", "{:.4f}"),
                 ("test_accuracy", "test acc", "{:.4f}"),
                 ("early_stop_step", "early-stop step", "{:,.0f}"),
                 ("early_stop_test_accuracy", "test acc at early stop", "{:.4f}"),
                 ("flops", "FLOPs", "{:,}"),
                 ("inference_ms", "ms/sample", "{:.4f}"), ("train_seconds", "train s", "{:.1f}")]


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


def _formatted(record: dict, columns: list[tuple[str, str, str]]) -> dict[str, str]:
    """A record's values formatted by column, keyed by title ('–' for a value it lacks)."""
    return {title: fmt.format(record[key]) if key in record else "–"
            for key, title, fmt in columns}


def table_rows(records: list[dict]) -> list[dict[str, str]]:
    """Rounds as rows of formatted strings, keyed by column title ('–' for a number an older
    run did not record)."""
    return [_formatted(r, TABLE_COLUMNS) for r in records]


def markdown_table(records: list[dict]) -> str:
    titles = [title for _, title, _ in TABLE_COLUMNS]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    lines += ["| " + " | ".join(row.values()) + " |" for row in table_rows(records)]
    return "\n".join(lines) + "\n"


def figures(run_dir: Path) -> list[go.Figure]:
    run_dir = Path(run_dir)
    records = runfolder.read_rounds(run_dir)
    ticket = runfolder.read_json(run_dir / runfolder.TICKET_JSON, {})
    figs = [sparsity_accuracy(records), remaining_weights(records, ticket.get("round")),
            layer_heatmap(records), flops_per_round(records)]
    all_series = runfolder.series(run_dir)
    if len(all_series) > 1:
        figs.append(compare({runfolder.run_name(run_dir): all_series}))
    hybrid = runfolder.hybrid_metrics(run_dir)
    if hybrid:
        figs.append(accuracy_vs_flops(records, hybrid))
    return figs


def _cells(tag: str, values: list[str]) -> str:
    return "".join(f"<{tag}>{html_lib.escape(v)}</{tag}>" for v in values)


def html_table(records: list[dict]) -> str:
    """The rounds table of the Markdown file, as HTML: the same rows and columns."""
    head = _cells("th", [title for _, title, _ in TABLE_COLUMNS])
    body = "".join(f"<tr>{_cells('td', list(row.values()))}</tr>" for row in table_rows(records))
    return f"<table id='rounds'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def ticket_html(ticket: dict | None, records: list[dict]) -> str:
    """The winning ticket's facts (winning_ticket.json, and its round's early-stop iteration),
    or why there is none: a reader of the mailed file has no folder to look in."""
    if not ticket:
        return ("<p id='ticket'>No winning ticket in this run folder: it is made after the last "
                "round from the best pruned round (<code>lottery ticket RUN_DIR</code>).</p>")
    record = next((r for r in records if r["round"] == ticket.get("round")), {})
    rows = "".join(f"<tr><th>{html_lib.escape(title)}</th><td>{html_lib.escape(value)}</td></tr>"
                   for title, value in _formatted(record | ticket, TICKET_FIELDS).items())
    return f"<table id='ticket'>{rows}</table>"


def config_html(run_dir: Path) -> str:
    """The frozen config as escaped YAML text: what made these numbers (names and paths in it
    are the user's, so plain text, never markup)."""
    try:
        text = (Path(run_dir) / runfolder.CONFIG).read_bytes().decode("utf-8", "replace")
    except OSError:
        text = "(no config.yaml in the run folder)"
    return f"<pre id='config'>{html_lib.escape(text)}</pre>"


def html_page(run_dir: Path) -> str:
    """The report as one self-contained page that stands alone when mailed: the ticket, the
    charts (plotly.js inlined once, with the first), every round and the config that made it."""
    run_dir = Path(run_dir)
    records = runfolder.read_rounds(run_dir)
    ticket = runfolder.read_json(run_dir / runfolder.TICKET_JSON, None)
    charts = [fig.to_html(full_html=False, include_plotlyjs=(i == 0))
              for i, fig in enumerate(figures(run_dir))]
    name = html_lib.escape(runfolder.run_name(run_dir))
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Lottery Lab report: "
            f"{name}</title><style>{STYLE}</style></head><body><h1>{name}</h1>"
            f"<h2>Winning ticket</h2>{ticket_html(ticket, records)}<h2>Charts</h2>"
            + "".join(charts) + f"<h2>Rounds</h2>{html_table(records)}"
            f"<h2>Config</h2>{config_html(run_dir)}</body></html>")


def write(run_dir: Path, html: bool = True, markdown: bool = True) -> None:
    """Write the self-contained HTML report and/or the Markdown table of rounds."""
    run_dir = Path(run_dir)
    if markdown:
        runfolder.atomic_write(run_dir / runfolder.REPORT_MD,
                               markdown_table(runfolder.read_rounds(run_dir)))
    if html:
        runfolder.atomic_write(run_dir / runfolder.REPORT_HTML, html_page(run_dir))
