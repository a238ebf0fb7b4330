"""The deployment trade-off of several runs at a glance: each run's exported ticket, its test
accuracy against the milliseconds per sample its format took (batch 1 and 256), coloured by how
the run pruned. Unstructured tickets are small but hardly faster; channel tickets trade some
accuracy for speed (docs/channels.md): on one figure the two read side by side. As in figures.py,
nothing here imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import keep_view

# how a run pruned, as its frozen config says, and its colour
PRUNED_COLOURS = {"single weights": "#3C5488", "whole channels": "#E64B35",
                  "whole channels, refilled": "#00A087"}
BATCHES = (1, 256)


def pruned_as(config: Mapping) -> str:
    """How a run pruned, from its frozen config (plain data; a config from before channel
    pruning pruned single weights)."""
    imp = config.get("imp") or {}
    if not isinstance(imp, Mapping) or imp.get("granularity") != "channel":
        return "single weights"
    return "whole channels, refilled" if imp.get("refill") is True else "whole channels"


def latency_tradeoff(points: Mapping[str, tuple[str, dict]], fmt: str) -> go.Figure:
    """Test accuracy against latency per sample, batch 1 left and 256 right, one point per run:
    `points` maps a run's label to how it pruned (pruned_as) and its ok export record of `fmt`.
    Latency is log-scaled: channel tickets can be several times faster than the rest."""
    fig = make_subplots(rows=1, cols=len(BATCHES), shared_yaxes=True,
                        subplot_titles=[f"batch {n}" for n in BATCHES])
    for col, batch in enumerate(BATCHES, start=1):
        for pruned, colour in PRUNED_COLOURS.items():
            runs = {run: record for run, (how, record) in points.items() if how == pruned}
            if not runs:
                continue
            fig.add_trace(go.Scatter(
                x=[r["latency_ms_per_sample"][f"batch_{batch}"] for r in runs.values()],
                y=[r["test_accuracy"] for r in runs.values()], text=list(runs), mode="markers",
                name=pruned, legendgroup=pruned, showlegend=col == 1,
                marker={"color": colour, "size": 10},
                hovertemplate="%{text}<br>%{x:.3g} ms/sample, test accuracy %{y:.4f}"
                              "<extra></extra>"), row=1, col=col)
        fig.update_xaxes(type="log", title_text="ms per sample", row=1, col=col)
    fig.update_yaxes(title_text="test accuracy", row=1, col=1)
    fig.update_layout(title=f"Accuracy against latency, {fmt} export (left and up is better)",
                      legend={"orientation": "h", "y": -0.25})
    return keep_view(fig, f"tradeoff-{fmt}")
