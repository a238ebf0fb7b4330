"""Plotly figures and tables of a run (SPEC §6), shared by the HTML report and the dashboard.

Functions take round records (foundations/round_record.py, read from rounds.jsonl) and return
figures; nothing here imports TensorFlow, so the dashboard can draw the same figures the report
file holds (page.py). Several runs, or a run's series, on one figure: compare.py.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..config.controls import CONTROLS
from ..foundations.events import IMP
from ..foundations.round_record import RoundRecord

ACCURACY, F1, INFERENCE = "#E64B35", "#4DBBD5", "#3C5488"  # SPEC §6: one run's metrics
# series: the ticket and each control, everywhere (pages, report, experiment write-up)
SERIES_COLOURS = {IMP: "#E64B35", **{c.name: c.colour for c in CONTROLS.values()}}
SERIES_DASH = {IMP: "solid", **{c.name: c.dash for c in CONTROLS.values()}}
SERIES_LABELS = {IMP: "ticket", **{c.name: c.label for c in CONTROLS.values()}}
DENSE = "#7F7F7F"  # the dense baseline
TRAIN = "#8491B4"  # training curves (validation ones take ACCURACY)
TICK_CHARS = 24  # the most of a layer name an axis label keeps (after its '…')
# x axes a user can choose: title, value of a record, log scale
AXES = {
    "sparsity": ("global sparsity (%)", lambda r: 100.0 * r["global_sparsity"], False),
    "remaining": ("remaining prunable weights", lambda r: r["remaining_prunable"], True),
    "round": ("round (0 = dense)", lambda r: r["round"], False),
}


def x_values(records: list[RoundRecord], axis: str) -> list[float]:
    return [AXES[axis][1](r) for r in records]


def x_axis(fig: go.Figure, axis: str, **where) -> None:
    title, _, log = AXES[axis]
    fig.update_xaxes(title_text=title, type="log" if log else "linear",
                     autorange="reversed" if log else True,
                     dtick=1 if axis == "round" else None, **where)


def keep_view(fig: go.Figure, key: str) -> go.Figure:
    """A fixed uirevision: a live redraw extends the traces and keeps the user's zoom, pan and
    hidden legend items (Plotly keeps UI state while uirevision is unchanged)."""
    fig.update_layout(uirevision=key, template="plotly_white")
    return fig


def sparsity_accuracy(records: list[RoundRecord], axis: str = "sparsity",
                      controls: dict[str, list[RoundRecord]] | None = None) -> go.Figure:
    """Val accuracy and F1 against the chosen x axis, the dense baseline dashed and each
    control's val accuracy overlaid; inference time in its own small panel below, on its own
    axis from 0 with round ticks (on a second y axis over the accuracies it read as a fourth
    series, and its narrow range gave ticks like 0.019621), each round's bar reaching its
    fastest and slowest call and the dense round's range shaded: a round inside the shade
    times no differently from dense. Every line of the run itself is
    solid: a dash always means a control (SERIES_DASH)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.74, 0.26],
                        vertical_spacing=0.06)
    x = x_values(records, axis)
    fig.add_trace(go.Scatter(x=x, y=[r["val_accuracy"] for r in records], name="val accuracy",
                             mode="lines+markers", line={"color": ACCURACY}), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[r["val_f1"] for r in records], name="val F1",
                             mode="lines+markers", line={"color": F1}), row=1, col=1)
    for name, control in (controls or {}).items():
        fig.add_trace(go.Scatter(x=x_values(control, axis), y=[r["val_accuracy"] for r in control],
                                 name=f"val accuracy, {SERIES_LABELS.get(name, name)}",
                                 mode="lines+markers", line={"color": SERIES_COLOURS.get(name),
                                                             "dash": SERIES_DASH.get(name)}),
                      row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[r.inference_ms for r in records],
                             error_y=_timing_bars(records), name="inference ms/sample",
                             mode="lines+markers", line={"color": INFERENCE}), row=2, col=1)
    if records and records[0].round == 0:
        fig.add_hline(y=records[0].val_accuracy, line={"dash": "dash", "color": DENSE},
                      annotation_text="dense baseline", row=1, col=1)
        if records[0].inference_ms_range:  # a round inside it times no differently from dense
            low, high = records[0].inference_ms_range
            fig.add_hrect(y0=low, y1=high, fillcolor=DENSE, opacity=0.15, line_width=0,
                          annotation_text="dense: fastest-slowest call",
                          annotation_position="top left", row=2, col=1)
    fig.update_layout(title=f"{AXES[axis][0].split(' (')[0].capitalize()} vs accuracy",
                      height=520, legend={"orientation": "h", "y": -0.22})
    x_axis(fig, axis)
    fig.update_xaxes(title_text=None, row=1, col=1)
    fig.update_yaxes(title_text="accuracy / F1", row=1, col=1)
    fig.update_yaxes(title_text="ms / sample", rangemode="tozero", nticks=4,
                     tickformat=".3~g", hoverformat=".3g", row=2, col=1)
    return keep_view(fig, f"sparsity-{axis}")


def _timing_bars(records: list[RoundRecord]) -> dict | None:
    """Each round's inference time from its median call to its fastest and slowest (records
    before 2026-12-07 have only a mean: no bars)."""
    if not all(r.inference_ms_range for r in records):
        return None
    return {"type": "data", "symmetric": False, "color": INFERENCE, "thickness": 1,
            "array": [r.inference_ms_range[1] - r.inference_ms for r in records],
            "arrayminus": [r.inference_ms - r.inference_ms_range[0] for r in records]}


def remaining_weights(records: list[RoundRecord], ticket_round: int | None = None) -> go.Figure:
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
    return keep_view(fig, "remaining")


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


# what a per-layer heatmap shows: the record's field, what a cell counts, the figure's title
HEATMAPS = {"weights": ("layer_sparsity", "weights pruned", "Per-layer sparsity"),
            "channels": ("layer_channel_sparsity", "units pruned",
                         "Per-layer channel sparsity: whole filters and units removed")}


def has_channels(records: list[RoundRecord]) -> bool:
    """Whether the records are a channel run's, whose layers also lose whole units."""
    return any(r.get("layer_channel_sparsity") is not None for r in records)


def layer_heatmap(records: list[RoundRecord], of: str = "weights") -> go.Figure:
    """Per-layer sparsity, rounds × layers, under the model's own layer names: short tails on
    the axis, the full name in the hover. `of` "channels" (a channel run's records only) counts
    the units each layer lost instead of its weights: what compact export can cut out."""
    key, what, title = HEATMAPS[of]
    records = [r for r in records if r.get(key) is not None]
    layers = list(records[0][key]) if records else []
    z = [[100.0 * r[key][name] for name in layers] for r in records]
    full = [html_lib.escape(name) for name in layers]  # names are the user's: plain text
    fig = go.Figure(go.Heatmap(z=z, x=layers, y=[f"round {r['round']}" for r in records],
                               customdata=[full] * len(records),
                               hovertemplate=f"%{{customdata}}<br>%{{y}}: %{{z:.1f}}% {what}"
                                             "<extra></extra>",
                               colorscale="Reds", zmin=0, zmax=100,
                               colorbar={"title": "sparsity %"}))
    fig.update_xaxes(tickmode="array", tickvals=layers,
                     ticktext=[html_lib.escape(label) for label in tick_labels(layers)])
    fig.update_layout(title=title, yaxis={"autorange": "reversed"})
    return keep_view(fig, f"heatmap-{of}")


def flops_per_round(records: list[RoundRecord]) -> go.Figure:
    fig = go.Figure(go.Bar(x=[r["round"] for r in records], y=[r["flops"] for r in records],
                           marker_color=INFERENCE))
    fig.update_layout(title="Estimated FLOPs per inference", yaxis_title="FLOPs")
    x_axis(fig, "round")
    return keep_view(fig, "flops")


def accuracy_vs_flops(records: list[RoundRecord], hybrid: dict | None) -> go.Figure:
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
    return keep_view(fig, "flops-accuracy")


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average, as TensorBoard's smoothing slider (0 leaves values as they are)."""
    out, last = [], None
    for value in values:
        last = value if last is None else weight * last + (1 - weight) * value
        out.append(last)
    return out


def epoch_history(record: dict, smoothing: float = 0.0) -> go.Figure:
    """One round's per-epoch loss and accuracy (train and val), optionally smoothed. Train and
    val differ by colour, not dash: on these pages a dash means a control series."""
    history = record.get("history", {})
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for col, key in ((1, "loss"), (2, "accuracy")):
        for prefix, colour in (("", TRAIN), ("val_", ACCURACY)):
            values = smooth(history.get(prefix + key, []), smoothing)
            fig.add_trace(go.Scatter(x=list(range(1, len(values) + 1)), y=values,
                                     name=(prefix or "train_") + key, line={"color": colour}),
                          row=1, col=col)
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_layout(title=f"Round {record.get('round')}: training")
    return keep_view(fig, "epochs")


def deployment_figure(records: Mapping[str, dict]) -> go.Figure:
    """Each exported format's size and latency per sample (batch 1 and 256) as a fraction of the
    dense ticket's, measured in the same export: below 1 is smaller or faster."""
    fig = go.Figure()
    ok = {fmt: r for fmt, r in records.items() if r.get("status") == "ok"}
    bars = {"size": lambda r, ref: r["bytes"] / ref["bytes"]} | {
        f"latency, batch {n}": (lambda r, ref, key=f"batch_{n}": r["latency_ms_per_sample"][key]
                                / ref["latency_ms_per_sample"][key]) for n in (1, 256)}
    for name, fraction in bars.items():
        fig.add_bar(name=name, x=list(ok), y=[fraction(r, r["reference"]) for r in ok.values()])
    fig.add_hline(y=1.0, line_dash="dash", line_color="grey", annotation_text="dense ticket")
    fig.update_layout(title="The ticket deployed: each format against the dense ticket",
                      yaxis_title="× dense (lower is better)", barmode="group")
    return fig


TABLE_COLUMNS = [("round", "round", "{}"), ("global_sparsity", "sparsity %", "{:.1%}"),
                 ("remaining_prunable", "remaining", "{:,}"), ("val_accuracy", "val acc", "{:.4f}"),
                 ("val_f1", "val F1", "{:.4f}"), ("val_loss", "val loss", "{:.4f}"),
                 ("test_accuracy", "test acc", "{:.4f}"),
                 ("early_stop_step", "early-stop step", "{:,.0f}"),
                 ("early_stop_test_accuracy", "test acc at early stop", "{:.4f}"),
                 ("flops", "FLOPs", "{:,}"),
                 ("inference_ms", "ms/sample", "{:.4f}"), ("train_seconds", "train s", "{:.1f}")]


def formatted(record: Mapping, columns: list[tuple[str, str, str]]) -> dict[str, str]:
    """A record's values formatted by column, keyed by title ('–' for a value it lacks)."""
    return {title: fmt.format(record[key]) if key in record else "–"
            for key, title, fmt in columns}


def table_rows(records: list[RoundRecord]) -> list[dict[str, str]]:
    """Rounds as rows of formatted strings, keyed by column title ('–' for a number an older
    run did not record)."""
    return [formatted(r, TABLE_COLUMNS) for r in records]


def markdown_table(records: list[RoundRecord]) -> str:
    titles = [title for _, title, _ in TABLE_COLUMNS]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    lines += ["| " + " | ".join(row.values()) + " |" for row in table_rows(records)]
    return "\n".join(lines) + "\n"
