"""Plotly figures of several runs: the Compare page's runs and groups (a group's mean with its
spread, by the one band rule an experiment's Figure 4 pair uses too) and its parallel coordinates,
with the config keys that set runs apart. As in figures.py, nothing here imports TensorFlow.
"""

from __future__ import annotations

import html as html_lib
import json
import math
import statistics
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Protocol, TypeVar

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..foundations.round_record import RoundRecord
from .figures import SERIES_COLOURS, SERIES_DASH, SERIES_LABELS, keep_view, x_axis, x_values

RUN_COLOURS = ["#E64B35", "#3C5488", "#00A087", "#F39B7F", "#8491B4", "#91D1C2", "#DC0000",
               "#7E6148", "#B09C85", "#4DBBD5"]  # one per run when several are compared

T = TypeVar("T")
Series = dict[str, list[RoundRecord]]  # a run's round records by series: IMP and each control
Line = tuple[Sequence[float], Sequence[float]]  # one run's x and y values
Bounds = tuple[float | None, float | None]  # what a value can be, None where unbounded
UNIT: Bounds = (0.0, 1.0)
BOUNDED_METRICS = ("accuracy", "f1", "precision", "recall")  # metrics in UNIT
MIN_BAND_RUNS = 3  # below this a 95% t interval is mostly its quantile (12.7 at n = 2)


class SeedCell(Protocol):
    """One series at one round over seeds, as the write-up aggregates it (science/over_seeds.py's
    Cell, in a wing above this one, so it is named by shape here)."""

    remaining: float  # fraction of prunable weights left
    accuracy: list[float]  # test accuracy at early stop, per seed
    iteration: list[float]  # early-stop iteration, per seed


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
    return {html_lib.escape(run): (x_values(series[kind], axis), [r[metric] for r in series[kind]])
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
    x_axis(fig, axis)
    return keep_view(fig, f"compare-{axis}-{metric}")


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


MIN_SPAN = 0.05  # of an axis' largest magnitude: a 0.001-point spread is not drawn as 0 to 1
LABEL_CHARS, TICK_CHARS = 24, 18  # longer names are cut in the middle (the table has them whole)


def _shortened(text: str, most: int) -> str:
    """`text`, or its start and end around an ellipsis when longer than `most` characters."""
    if len(text) <= most:
        return text
    head = (most - 1) // 2
    return f"{text[:head]}…{text[-(most - 1 - head):]}"


def _axis_range(values: Sequence[float]) -> list[float]:
    """The values' range, widened about its middle to at least MIN_SPAN of the largest
    magnitude, so that runs that barely differ are not drawn from one end of the axis to the
    other."""
    low, high = min(values), max(values)
    span = max(high - low, MIN_SPAN * max(abs(low), abs(high)) or 1.0)
    middle = (low + high) / 2
    return [middle - span / 2, middle + span / 2]


def _dimension(label: str, values: Sequence[object]) -> dict:
    """A parallel-coordinates axis: numbers as they are, on a range of sensible span; anything
    else (text, booleans, lists) as categories in sorted order, named on the axis."""
    if all(_is_number(v) for v in values):
        return {"label": html_lib.escape(label), "values": list(values),
                "range": _axis_range(values)}
    categories = sorted({value_text(v) for v in values})
    return {"label": html_lib.escape(label),
            "values": [categories.index(value_text(v)) for v in values],
            "tickvals": list(range(len(categories))),
            "ticktext": [html_lib.escape(_shortened(c, TICK_CHARS)) for c in categories]}


def _axis_labels(columns: Sequence[str]) -> list[str]:
    """Each column's axis label: shortened where that keeps the labels apart."""
    short = [_shortened(column, LABEL_CHARS) for column in columns]
    return [s if short.count(s) == 1 else c for s, c in zip(short, columns)]


def parallel_coordinates(rows: Sequence[Mapping[str, object]], columns: Sequence[str],
                         colour: str) -> go.Figure:
    """One line per row (a run) across the chosen columns (config keys, then what the run found),
    coloured by the column `colour` (one of them, so no colour bar): which settings lead where.
    Drag along an axis to brush a range. Long names are cut in the middle on the chart (Plotly
    shows no hover on an axis); the table under it shows them whole."""
    fig = go.Figure(go.Parcoords(
        dimensions=[_dimension(label, [row[column] for row in rows])
                    for label, column in zip(_axis_labels(columns), columns)],
        line={"color": [row[colour] for row in rows], "colorscale": "Viridis"}))
    fig.update_layout(title="Config → what each run found", margin={"l": 80, "r": 80})
    return keep_view(fig, "parallel-coordinates")


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
