"""Plotly charts that stay put while they grow, in the page's theme.

`st.plotly_chart` (Streamlit 1.67) gives a chart a new identity whenever its figure changes, even
with a key, so every live refresh remounts it and a user's zoom, pan and hidden legend items are
lost; Plotly's `uirevision` never gets a chance. This small Streamlit component keeps one plot per
key and hands each new figure to `Plotly.react`, which keeps the UI state while `uirevision`
stays the same (the report's figures set it). Streamlit still remounts a component when the page
around it changes shape (the full redraw when a live run ends drops its progress bar), so the
plot itself is kept per page and key and moved into the new place: the same plot, the same view.
A brushed parallel-coordinates chart reports its ranges back.

The figures are drawn with the app's partial Plotly bundle (scatter, bar and heatmap traces)
when all their traces are in it; only a chart that needs another trace type (the Compare page's
parallel coordinates) loads the full bundle (app/bundles.py says which files, and how they are
served), and a new chart drawn after that uses it too (the Compare page draws its line chart
first, so a first visit there loads both). A plot stays with the bundle that first drew it (so a
kept plot keeps its view), unless its figure needs the full one. Pages with charts start loading
the partial bundle before their data work (`preload`).
"""

from __future__ import annotations

from urllib.parse import urlencode

import plotly.graph_objects as go
import streamlit as st
from plotly.io.json import to_json_plotly

from app.bundles import FULL_NAME, PARTIAL_NAME, PARTIAL_TRACES

# A bundle's Plotly, by URL; each is loaded once per page, by a chart or by `preload`. (A bundle
# sets window.Plotly as it runs and its load event follows at once, so each promise gets its own
# bundle's Plotly.)
LOADER = """
function loadPlotly(src) {
  const bundles = (window.labPlotlyBundles = window.labPlotlyBundles || new Map());
  if (!bundles.has(src)) {
    bundles.set(src, new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.fetchPriority = "high";  // not behind the page's own lazily loaded chunks
      script.onload = () => resolve(window.Plotly);
      script.onerror = reject;
      document.head.appendChild(script);
    }));
  }
  return bundles.get(src);
}
"""

JS = ("""
const FULL = "app/static/__FULL__", PARTIAL = "app/static/__PARTIAL__";
""" + LOADER + """

// The bundle to draw `figure` in `div` with: the full one if the figure needs it; else the one
// that drew this plot before; else the partial one, unless the full one is already on the page.
function bundleFor(div, figure) {
  if (figure.fullBundle) return FULL;
  if (div.labBundle) return div.labBundle;
  return window.labPlotlyBundles && window.labPlotlyBundles.has(FULL) ? FULL : PARTIAL;
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
  const src = bundleFor(div, figure);
  loadPlotly(src).then((Plotly) => {
    if (div.labPlotly && div.labPlotly !== Plotly) div.labPlotly.purge(div);  // the other bundle
    div.labPlotly = Plotly;
    div.labBundle = src;
    return Plotly.react(div, figure.data, figure.layout, {responsive: true, displaylogo: false});
  })
    .then(() => {
      if (div.labListening || figure.data[0]?.type !== "parcoords") return;
      div.labListening = true;
      div.on("plotly_restyle", () => div.labComponent.setStateValue("brush", brushed(div)));
    });
}
""").replace("__FULL__", FULL_NAME).replace("__PARTIAL__", PARTIAL_NAME)


def preload() -> None:
    """Run the partial bundle as the page's first element, before the page reads its data: on
    a first visit a chart otherwise asks for it only once it is mounted, after the frontend has
    laid out the page, and then waits for it to download and run (half a second or more), while
    here that runs as the server is still busy with the page's script. Pages with charts call
    this; under app/asgi.py the page's HTML has already fetched the bundle (app.bundles.EARLY).
    The element takes no room (its container is hidden)."""
    st.html(f'<span class="lab-preload"></span><style>.stElementContainer:has(.lab-preload)'
            f'{{display:none}}</style><script>{LOADER}loadPlotly("app/static/{PARTIAL_NAME}");'
            f'</script>', unsafe_allow_javascript=True)


def needs_full_bundle(figure: go.Figure) -> bool:
    """Whether `figure` has a trace type that the partial bundle lacks."""
    return any(trace.type not in PARTIAL_TRACES for trace in figure.data)


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
    data = to_json_plotly({**figure.to_plotly_json(), "key": key,
                           "fullBundle": needs_full_bundle(figure)})
    result = _component(data=data, key=key, default={"brush": {}},
                        on_brush_change=_declared)
    return result.brush or {}
