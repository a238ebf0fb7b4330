"""Plotly charts that stay put while they grow, in the page's theme.

`st.plotly_chart` (Streamlit 1.67) gives a chart a new identity whenever its figure changes, even
with a key, so every live refresh remounts it and a user's zoom, pan and hidden legend items are
lost; Plotly's `uirevision` never gets a chance. This small Streamlit component keeps one plot per
key and hands each new figure to `Plotly.react`, which keeps the UI state while `uirevision`
stays the same (the report's figures set it). Streamlit still remounts a component when the page
around it changes shape (the full redraw when a live run ends drops its progress bar), so the
plot itself is kept per page and key and moved into the new place: the same plot, the same view.
A brushed parallel-coordinates chart reports its ranges back. Plotly's own bundle, from the
plotly package, is served once by Streamlit's static file serving and cached by the browser.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlencode

import plotly
import plotly.graph_objects as go
import streamlit as st
from plotly.io.json import to_json_plotly

STATIC = Path(__file__).resolve().parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
JS = """
function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.labPlotly) {
    window.labPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "app/static/plotly.min.js";
      script.onload = () => resolve(window.Plotly);
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }
  return window.labPlotly;
}

const KEPT = 40;  // plots kept for a remount, by page and key; the oldest are let go

// This chart's plot: the one in this element; else the one it had before Streamlit remounted it
// (kept with its zoom, pan and hidden traces), moved here; else a new one. `key` is the page's
// (Streamlit's own is new at every mount).
function plotFor(parentElement, key) {
  let div = parentElement.querySelector("div.lab-chart");
  const kept = (window.labPlots = window.labPlots || new Map());
  const id = `${location.pathname}|${key}`;
  if (!div) {
    div = kept.get(id) || Object.assign(document.createElement("div"), {className: "lab-chart"});
    parentElement.appendChild(div);
  }
  kept.delete(id);
  kept.set(id, div);
  if (kept.size > KEPT) kept.delete(kept.keys().next().value);
  return div;
}

// The ranges brushed on a parallel-coordinates chart's axes, by axis label.
function brushed(div) {
  const dimensions = (div.data && div.data[0] && div.data[0].dimensions) || [];
  return Object.fromEntries(dimensions.filter((d) => d.constraintrange)
                                      .map((d) => [d.label, d.constraintrange]));
}

export default function (component) {
  const { data, parentElement } = component;
  const figure = JSON.parse(data);
  const div = plotFor(parentElement, figure.key);
  div.labComponent = component;  // the latest, for the listener below
  // a fixed height and the column's width: a plot drawn while its column is still being laid
  // out would otherwise size itself to nothing
  div.style.height = `${figure.layout.height || 450}px`;
  div.style.width = "100%";
  loadPlotly().then((Plotly) => Plotly.react(div, figure.data, figure.layout,
                                             {responsive: true, displaylogo: false}))
    .then(() => {
      if (div.labListening || figure.data[0]?.type !== "parcoords") return;
      div.labListening = true;
      div.on("plotly_restyle", () => div.labComponent.setStateValue("brush", brushed(div)));
    });
}
"""


def serve_plotly_js() -> None:
    """Put Plotly's bundle where Streamlit's static serving finds it (app/static/)."""
    target = STATIC / PLOTLY_JS.name
    if not target.is_file() or target.stat().st_size != PLOTLY_JS.stat().st_size:
        STATIC.mkdir(exist_ok=True)
        shutil.copyfile(PLOTLY_JS, target)


# Plotly's dark template, on whatever background the page's dark theme has (none of its own)
DARK = {"template": "plotly_dark", "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)"}
_component = st.components.v2.component("lottery_lab_chart", js=JS, isolate_styles=False)


def themed(figure: go.Figure, theme: str | None) -> go.Figure:
    """`figure` (built light, as the report prints it) in the page's theme: with `theme`
    "dark", Plotly's dark template (light text, dark grid) over the page's own background."""
    return figure.update_layout(DARK) if theme == "dark" else figure


def _page_revision(figure: go.Figure) -> go.Figure:
    """The figure's uirevision with the page's query (`?job=…`) added: the same chart of another
    run is another view, so switching runs starts from the whole figure, not the last zoom."""
    query = urlencode(sorted(st.query_params.to_dict().items()))
    return figure.update_layout(uirevision=f"{figure.layout.uirevision}?{query}")


def _declared() -> None:
    """The component's `brush` state needs a change callback to exist; the rerun that follows
    a brush is all a page needs."""


def chart(figure: go.Figure, key: str) -> dict[str, list]:
    """Draw `figure` (restyled in place: callers build a figure per draw); a later call with the
    same key updates the same plot in place. Returns the ranges brushed on a parallel-coordinates
    chart's axes, by axis label ({} for any other chart, or before a brush)."""
    figure = _page_revision(themed(figure, st.context.theme.type))
    data = to_json_plotly({**figure.to_plotly_json(), "key": key})
    result = _component(data=data, key=key, default={"brush": {}},
                        on_brush_change=_declared)
    return result.brush or {}
