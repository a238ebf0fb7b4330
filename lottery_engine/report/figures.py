"""Plotly figures and tables of a run (SPEC §6), shared by the HTML report and the dashboard,
and of several runs: the Compare page's runs and groups (a group's mean with its spread, by the
one band rule an experiment's Figure 4 pair uses too) and its parallel coordinates.

Functions take round records (dicts from rounds.jsonl) and return figures; nothing here imports
TensorFlow, so the dashboard can draw the same figures the report file holds. The report file
(report.html) also carries the winning ticket, every round and the frozen config, so it stands
alone when mailed.
"""

from __future__ import annotations

import html as html_lib
import json
import math
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..export import export_records
from ..foundations import runfolder

ACCURACY, F1, INFERENCE = "#E64B35", "#4DBBD5", "#3C5488"  # SPEC §6: one run's metrics
# series: the ticket and each control, everywhere (pages, report, experiment write-up)
SERIES_COLOURS = {"imp": "#E64B35", "random_reinit": "#00A087", "random_prune": "#7E6148"}
SERIES_DASH = {"imp": "solid", "random_reinit": "dash", "random_prune": "dot"}
SERIES_LABELS = {"imp": "ticket", "random_reinit": "random reinit",
                 "random_prune": "random prune"}
DENSE = "#7F7F7F"  # the dense baseline
TRAIN = "#8491B4"  # training curves (validation ones take ACCURACY)
TICK_CHARS = 24  # the most of a layer name an axis label keeps (after its '…')
RUN_COLOURS = ["#E64B35", "#3C5488", "#00A087", "#F39B7F", "#8491B4", "#91D1C2", "#DC0000",
               "#7E6148", "#B09C85", "#4DBBD5"]  # one per run when several are compared
# x axes a user can choose: title, value of a record, log scale
AXES = {
    "sparsity": ("global sparsity (%)", lambda r: 100.0 * r["global_sparsity"], False),
    "remaining": ("remaining prunable weights", lambda r: r["remaining_prunable"], True),
    "round": ("round (0 = dense)", lambda r: r["round"], False),
}

T = TypeVar("T")
Series = dict[str, list[dict]]  # a run's round records by series: "imp" and each control
Line = tuple[Sequence[float], Sequence[float]]  # one run's x and y values
Bounds = tuple[float | None, float | None]  # what a value can be, None where unbounded
UNIT: Bounds = (0.0, 1.0)
BOUNDED_METRICS = ("accuracy", "f1", "precision", "recall")  # metrics in UNIT
MIN_BAND_RUNS = 3  # below this a 95% t interval is mostly its quantile (12.7 at n = 2)


class SeedCell(Protocol):
    """One series at one round over seeds, as the write-up aggregates it (writeup.Cell, which
    imports this module, so it is named by shape here)."""

    remaining: float  # fraction of prunable weights left
    accuracy: list[float]  # test accuracy at early stop, per seed
    iteration: list[float]  # early-stop iteration, per seed


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
    """Val accuracy and F1 against the chosen x axis, the dense baseline dashed and each
    control's val accuracy overlaid; inference time in its own small panel below, on its own
    axis from 0 with round ticks (on a second y axis over the accuracies it read as a fourth
    series, and its narrow range gave ticks like 0.019621). Every line of the run itself is
    solid: a dash always means a control (SERIES_DASH)."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.74, 0.26],
                        vertical_spacing=0.06)
    x = _x(records, axis)
    fig.add_trace(go.Scatter(x=x, y=[r["val_accuracy"] for r in records], name="val accuracy",
                             mode="lines+markers", line={"color": ACCURACY}), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[r["val_f1"] for r in records], name="val F1",
                             mode="lines+markers", line={"color": F1}), row=1, col=1)
    for name, control in (controls or {}).items():
        fig.add_trace(go.Scatter(x=_x(control, axis), y=[r["val_accuracy"] for r in control],
                                 name=f"val accuracy, {SERIES_LABELS.get(name, name)}",
                                 mode="lines+markers", line={"color": SERIES_COLOURS.get(name),
                                                             "dash": SERIES_DASH.get(name)}),
                      row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[r["inference_ms"] for r in records],
                             name="inference ms/sample", mode="lines+markers",
                             line={"color": INFERENCE}), row=2, col=1)
    if records and records[0]["round"] == 0:
        fig.add_hline(y=records[0]["val_accuracy"], line={"dash": "dash", "color": DENSE},
                      annotation_text="dense baseline", row=1, col=1)
    fig.update_layout(title=f"{AXES[axis][0].split(' (')[0].capitalize()} vs accuracy",
                      height=520, legend={"orientation": "h", "y": -0.22})
    _x_axis(fig, axis)
    fig.update_xaxes(title_text=None, row=1, col=1)
    fig.update_yaxes(title_text="accuracy / F1", row=1, col=1)
    fig.update_yaxes(title_text="ms / sample", rangemode="tozero", nticks=4,
                     tickformat=".3~g", hoverformat=".3g", row=2, col=1)
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
    return _keep_view(fig, "epochs")


def metric_bounds(metric: str) -> Bounds:
    """What a metric can be: [0, 1] for accuracies, F1, precision and recall, at least 0 for a
    loss, else anything."""
    if metric.endswith(BOUNDED_METRICS):
        return UNIT
    return (0.0, None) if metric.endswith("loss") else (None, None)


def _clip(value: float, bounds: Bounds) -> float:
    low, high = bounds
    return min(max(value, -math.inf if low is None else low), math.inf if high is None else high)


def spread(runs: Mapping[str, Line], *, name: str, line: dict, group: str,
           bounds: Bounds = (None, None), showlegend: bool = True) -> list[go.Scatter]:
    """One series over several runs (an arm's seeds, runs grouped by a config key): the runs'
    mean, at the points every run has, as a line with markers. From MIN_BAND_RUNS runs the 95%
    t interval of that mean is a band under it, clipped to `bounds` (a band past 100% accuracy
    claims what no run can reach); with fewer, each run is a thin line instead, since the
    interval from two values is mostly the t quantile. A lone run is just its line."""
    # scipy: 0.8 s to import, paid only where bands are
    from ..evaluation.significance import half_width

    lines = list(runs.values())
    points = min(len(y) for _, y in lines)
    x = [statistics.fmean(xs[i] for xs, _ in lines) for i in range(points)]
    values = [[ys[i] for _, ys in lines] for i in range(points)]
    means = [statistics.fmean(v) for v in values]
    mean = go.Scatter(x=x, y=means, mode="lines+markers", name=name, legendgroup=group,
                      showlegend=showlegend, line=line)
    if len(lines) == 1:
        return [mean]
    if len(lines) < MIN_BAND_RUNS:
        return [mean] + [go.Scatter(x=list(xs), y=list(ys), mode="lines", name=f"{name}, {run}",
                                    legendgroup=group, showlegend=False, opacity=0.55,
                                    line={**line, "width": 1})
                         for run, (xs, ys) in runs.items()]
    half = [half_width(v) for v in values]
    edge = [_clip(m + h, bounds) for m, h in zip(means, half)] + \
        [_clip(m - h, bounds) for m, h in zip(means, half)][::-1]
    band = go.Scatter(x=x + x[::-1], y=edge, mode="lines", fill="toself",
                      fillcolor=line.get("color"), opacity=0.18, line={"width": 0},
                      hoverinfo="skip", showlegend=False, legendgroup=group,
                      name=f"{name}, 95% interval")
    return [band, mean]


def spread_note(sizes: Iterable[int], runs: str = "runs") -> str | None:
    """What the spread drawn by `spread` is, for a legend's title, given how many runs each
    line averages (None when every line is a single run)."""
    sizes = set(sizes)
    notes = ([f"band: 95% interval of the mean over the {runs}"]
             if any(n >= MIN_BAND_RUNS for n in sizes) else [])
    if any(1 < n < MIN_BAND_RUNS for n in sizes):
        notes.append(f"thin lines: each of the {runs} (fewer than {MIN_BAND_RUNS}: too few for a "
                     f"95% interval)")
    return "<br>".join(notes) or None


def _spread_legend(fig: go.Figure, sizes: Iterable[int], runs: str) -> None:
    note = spread_note(sizes, runs)
    if note:
        fig.update_layout(legend_title={"text": note, "side": "top"})


def _series_lines(members: Mapping[str, Series], kind: str, axis: str,
                  metric: str) -> dict[str, Line]:
    """Each member run's line of one series (runs without that series yet left out)."""
    return {html_lib.escape(run): (_x(series[kind], axis), [r[metric] for r in series[kind]])
            for run, series in members.items() if series.get(kind)}


def compare(groups: Mapping[str, Mapping[str, Series]], metric: str = "val_accuracy",
            axis: str = "sparsity") -> go.Figure:
    """Runs, or groups of runs, and their series (ticket, controls) on one figure: a group is
    its runs' mean with their spread (see `spread`), a group of one run that run. One group: a
    colour per series; several: a colour per group and a dash per series. Labels are shown as
    plain text."""
    fig = go.Figure()
    for i, (label, members) in enumerate(groups.items()):
        for kind in dict.fromkeys(kind for series in members.values() for kind in series):
            lines = _series_lines(members, kind, axis, metric)
            if not lines:
                continue
            colour = (SERIES_COLOURS.get(kind) if len(groups) == 1
                      else RUN_COLOURS[i % len(RUN_COLOURS)])
            name = SERIES_LABELS.get(kind, kind)
            name = name if len(groups) == 1 else f"{label[:28]} · {name}"
            fig.add_traces(spread(lines, name=html_lib.escape(name),
                                  line={"color": colour, "dash": SERIES_DASH.get(kind)},
                                  group=html_lib.escape(label), bounds=metric_bounds(metric)))
    fig.update_layout(title=f"{metric} by series", yaxis_title=metric,
                      legend={"orientation": "h", "y": -0.25})
    _spread_legend(fig, (len(members) for members in groups.values()), "runs")
    _x_axis(fig, axis)
    return _keep_view(fig, f"compare-{axis}-{metric}")


def experiment_figure(results: Mapping[str, Mapping[str, Sequence[SeedCell]]],
                      names: Mapping[str, str]) -> go.Figure:
    """The Figure 4 pair per arm: test accuracy at early stop and early-stop iteration, both
    against weights remaining (log x), each series its seeds' mean with their spread (see
    `spread`): accuracy bands clipped to [0, 100]%, iterations to at least 0. `names`: how the
    write-up names each series."""
    fig = make_subplots(rows=2, cols=len(results), subplot_titles=list(results),
                        shared_xaxes=True, vertical_spacing=0.08)
    for col, series in enumerate(results.values(), start=1):
        for name, cells in series.items():
            if not cells:  # a series no seed has finished a round of yet
                continue
            x, n = [100 * c.remaining for c in cells], len(cells[0].accuracy)
            line = {"color": SERIES_COLOURS.get(name, "#777777"), "dash": SERIES_DASH.get(name)}
            for row, values, bounds in ((1, [[100 * a for a in c.accuracy] for c in cells],
                                         (0.0, 100.0)),
                                        (2, [c.iteration for c in cells], (0.0, None))):
                seeds = {f"seed {s + 1}/{n}": (x, [v[s] for v in values]) for s in range(n)}
                fig.add_traces(spread(seeds, name=names.get(name, name), line=line, group=name,
                                      bounds=bounds, showlegend=col == 1 and row == 1),
                               rows=row, cols=col)
        fig.update_xaxes(type="log", autorange="reversed", row=2, col=col,
                         title_text="weights remaining (%)")
        fig.update_xaxes(type="log", autorange="reversed", row=1, col=col)
    fig.update_yaxes(title_text="test accuracy at early stop (%)", row=1, col=1)
    fig.update_yaxes(title_text="early-stop iteration", row=2, col=1)
    fig.update_layout(width=560 * len(results), height=820, template="plotly_white",
                      legend={"orientation": "h", "y": -0.08}, margin={"t": 40},
                      uirevision="experiment")  # a live page keeps the user's zoom
    _spread_legend(fig, (len(cells[0].accuracy) for series in results.values()
                         for cells in series.values() if cells), "seeds")
    return fig


def _leaves(config: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in config.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def config_keys(configs: Iterable[dict]) -> list[str]:
    """Every dotted key (`imp.prune_rate`) that holds a value in any of these frozen configs."""
    return sorted({key for config in configs for key, _ in _leaves(config)})


def varying_keys(configs: Sequence[dict]) -> list[str]:
    """The keys whose values differ between these configs: what sets the runs apart."""
    return [key for key in config_keys(configs)
            if len({value_text(config_value(c, key)) for c in configs}) > 1]


def config_value(config: dict, key: str) -> object:
    """The value at a dotted key of a frozen config (None where it has none)."""
    for part in key.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def value_text(value: object) -> str:
    """A config value as a label: text as it is, anything else as YAML/JSON writes it."""
    return value if isinstance(value, str) else json.dumps(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _value_order(value: object) -> tuple[bool, float | str]:
    """Numbers by size first, then everything else by its text."""
    return (False, value) if _is_number(value) else (True, value_text(value))


def group_by_key(runs: Mapping[str, T], configs: Mapping[str, dict],
                 key: str) -> dict[str, dict[str, T]]:
    """Runs grouped by their config's value at `key`, as W&B groups runs: one group per value,
    labelled `key = value`, in the order of the values."""
    values = {run: config_value(configs[run], key) for run in runs}
    distinct = sorted({value_text(v): v for v in values.values()}.items(),
                      key=lambda item: _value_order(item[1]))
    return {f"{key} = {text}": {run: member for run, member in runs.items()
                                if value_text(values[run]) == text}
            for text, _ in distinct}


def _dimension(label: str, values: Sequence[object]) -> dict:
    """A parallel-coordinates axis: numbers as they are; anything else (text, booleans, lists)
    as categories in sorted order, named on the axis."""
    if all(_is_number(v) for v in values):
        return {"label": html_lib.escape(label), "values": list(values)}
    categories = sorted({value_text(v) for v in values})
    return {"label": html_lib.escape(label),
            "values": [categories.index(value_text(v)) for v in values],
            "tickvals": list(range(len(categories))),
            "ticktext": [html_lib.escape(c) for c in categories]}


def parallel_coordinates(rows: Sequence[Mapping[str, object]], columns: Sequence[str],
                         colour: str) -> go.Figure:
    """One line per row (a run) across the chosen columns (config keys, then what the run found),
    coloured by the column `colour` (one of them, so no colour bar): which settings lead where.
    Drag along an axis to brush a range."""
    fig = go.Figure(go.Parcoords(
        dimensions=[_dimension(column, [row[column] for row in rows]) for column in columns],
        line={"color": [row[colour] for row in rows], "colorscale": "Viridis"}))
    fig.update_layout(title="Config → what each run found", margin={"l": 80, "r": 80})
    return _keep_view(fig, "parallel-coordinates")


def _inside(value: float, ranges: list) -> bool:
    """Whether `value` lies in a brushed range: [low, high] or a list of them."""
    spans = ranges if isinstance(ranges[0], list) else [ranges]
    return any(low <= value <= high for low, high in spans)


def brushed(figure: go.Figure, ranges: Mapping[str, list]) -> list[int]:
    """The rows of a `parallel_coordinates` figure inside every range brushed on its axes
    (ranges by axis label, as the chart reports them; an axis may hold several)."""
    dimensions = figure.data[0].dimensions
    rows = len(dimensions[0].values) if dimensions else 0
    return [i for i in range(rows)
            if all(_inside(d.values[i], ranges[d.label]) for d in dimensions
                   if ranges.get(d.label))]


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
        name = runfolder.run_name(run_dir)
        figs.append(compare({name: {name: all_series}}))
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


def network_text(train: Mapping) -> str:
    """The network a run trained, from its frozen config's train section: the architecture and,
    for vgg16, whether its conv base was a fixed feature extractor or trained and pruned with the
    head (two different experiments under one arch name)."""
    arch = str(train.get("arch", "?"))
    if arch != "vgg16":
        return arch
    if train.get("freeze_base", True) is False:
        return ("vgg16 with its conv base trained and pruned with the dense head "
                "(train.freeze_base: false, no feature cache)")
    return "vgg16 with its conv base frozen (never trained or pruned) under the pruned dense head"


def config_html(run_dir: Path) -> str:
    """The frozen config as escaped YAML text: what made these numbers (names and paths in it
    are the user's, so plain text, never markup)."""
    try:
        text = (Path(run_dir) / runfolder.CONFIG).read_bytes().decode("utf-8", "replace")
    except OSError:
        text = "(no config.yaml in the run folder)"
    return f"<pre id='config'>{html_lib.escape(text)}</pre>"


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
    network = html_lib.escape(network_text(runfolder.frozen_config(run_dir).get("train") or {}))
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
