"""The instability analysis' figures (issue 31; Frankle et al. 2020, their Figures 3 and 5), from
a run's instability.jsonl: the test error along the line between two copies, and the barrier
against the rewind step k. Free of TensorFlow, like figures.py: the report and the dashboard
draw the same figures.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from ..foundations import runfolder
from .figures import keep_view

COLOURS = qualitative.Plotly


def read(run_dir: Path) -> list[dict]:
    """Every complete line of the run's instability.jsonl ([] before an analysis)."""
    return runfolder.read_lines_from(Path(run_dir) / runfolder.INSTABILITY)[0]


def figures(run_dir: Path) -> list[go.Figure]:
    """Both figures when the run has been analysed, else none."""
    lines = read(run_dir)
    return [error_along_line(lines), instability_vs_rewind(lines)] if lines else []


def _mean(values: list) -> float | list[float]:
    """The mean over a (round, k)'s pairs: of numbers, or point by point of curves."""
    if isinstance(values[0], list):
        return [sum(column) / len(column) for column in zip(*values)]
    return sum(values) / len(values)


def by_round_and_k(lines: list[dict]) -> dict[int, dict[int, list[dict]]]:
    """Lines grouped by round, then by rewind step, both ascending; a (round, k) analysed at
    several point counts keeps the lines of its latest."""
    grouped: dict[int, dict[int, list[dict]]] = {}
    for line in lines:
        same = grouped.setdefault(line["round"], {}).setdefault(line["rewind_step"], [])
        if same and same[-1]["points"] != line["points"]:
            same.clear()
        same.append(line)
    return {r: dict(sorted(ks.items())) for r, ks in sorted(grouped.items())}


def _round_title(r: int, ks: dict[int, list[dict]], sep: str = " ") -> str:
    """`sep` "<br>": a panel's title on two lines, as four panels' one-line titles ran into
    each other on a laptop-wide page."""
    sparsity = next(iter(ks.values()))[0]["sparsity"]
    return f"round {r}{sep}({100 * (1 - sparsity):.1f}% of weights)"


def error_along_line(lines: list[dict]) -> go.Figure:
    """Test error (%) against α, one panel per round, one line per rewind step k: the mean over
    the (r, k)'s pairs of copies. A hump in the middle is a barrier: the copies ended in
    different basins."""
    grouped = by_round_and_k(lines)
    steps = sorted({k for ks in grouped.values() for k in ks})
    fig = make_subplots(rows=1, cols=len(grouped), shared_yaxes=True,
                        subplot_titles=[_round_title(r, ks, "<br>")
                                        for r, ks in grouped.items()])
    for col, ks in enumerate(grouped.values(), start=1):
        for k, same in ks.items():
            fig.add_trace(go.Scatter(
                x=same[0]["alphas"], y=[100 * e for e in _mean([x["test_error"] for x in same])],
                name=f"k = {k}", legendgroup=f"k{k}", showlegend=col == 1, mode="lines",
                line={"color": COLOURS[steps.index(k) % len(COLOURS)]}), row=1, col=col)
        fig.update_xaxes(title_text="α (0: copy 1, 1: copy 2)", row=1, col=col)
    fig.update_yaxes(title_text="test error (%)", row=1, col=1)
    fig.update_layout(title="Test error along the line between two copies", height=440,
                      margin={"t": 130})  # room for the panels' two-line titles
    return keep_view(fig, "instability-line")


def _positions(steps: list[int]) -> dict[int, float]:
    """Where each k sits on the log axis: k itself, and k = 0 (θ0, off any log axis) half the
    smallest other k to its left, labelled 0."""
    positive = [k for k in steps if k > 0]
    return {k: float(k) if k else (min(positive) / 2 if positive else 1.0) for k in steps}


def instability_vs_rewind(lines: list[dict]) -> go.Figure:
    """Test instability (the barrier, percentage points) against the rewind step k on a log
    axis, one line per round's sparsity: from which k on a subnetwork is stable to SGD noise."""
    grouped = by_round_and_k(lines)
    steps = sorted({k for ks in grouped.values() for k in ks})
    where = _positions(steps)
    fig = go.Figure()
    for i, (r, ks) in enumerate(grouped.items()):
        fig.add_trace(go.Scatter(
            x=[where[k] for k in ks], y=[100 * _mean([x["test_instability"] for x in same])
                                         for same in ks.values()],
            customdata=list(ks), hovertemplate="k = %{customdata}: %{y:.2f} points",
            name=_round_title(r, ks), mode="lines+markers",
            line={"color": COLOURS[i % len(COLOURS)]}))
    fig.update_xaxes(type="log", title_text="rewind step k (0: θ0)",
                     tickvals=[where[k] for k in steps], ticktext=[str(k) for k in steps])
    fig.update_yaxes(title_text="test instability (percentage points)", rangemode="tozero")
    fig.update_layout(title="Instability vs rewind step", height=420)
    return keep_view(fig, "instability-k")


def over_seeds(arms: dict[str, dict[str, list[tuple[int, float, float]]]],
               threshold: float) -> go.Figure:
    """The experiment write-up's instability vs k: a panel per arm, a line per round's
    sparsity, each point the mean test instability over seeds with half its 95% interval as an
    error bar (none with one seed), and the stability threshold dotted. `arms`: by label, by
    line name, (k, mean, half-width) as fractions."""
    fig = make_subplots(rows=1, cols=len(arms), shared_yaxes=True, subplot_titles=list(arms))
    for col, (label, lines) in enumerate(arms.items(), start=1):
        steps = sorted({k for points in lines.values() for k, _, _ in points})
        where = _positions(steps)
        for i, (name, points) in enumerate(lines.items()):
            fig.add_trace(go.Scatter(
                x=[where[k] for k, _, _ in points], y=[100 * mean for _, mean, _ in points],
                error_y={"type": "data", "array": [100 * half for _, _, half in points]},
                name=name if len(arms) == 1 else f"{label}: {name}", mode="lines+markers",
                line={"color": COLOURS[i % len(COLOURS)]}), row=1, col=col)
        fig.update_xaxes(type="log", title_text="rewind step k (0: θ0)", row=1, col=col,
                         tickvals=[where[k] for k in steps], ticktext=[str(k) for k in steps])
    fig.add_hline(y=100 * threshold, line_dash="dot", line_color="#777777")
    fig.update_yaxes(title_text="test instability (percentage points)", rangemode="tozero",
                     row=1, col=1)
    fig.update_layout(title="Instability vs rewind step, mean and 95% interval over seeds",
                      width=560 * len(arms), height=460, template="plotly_white")
    return fig
