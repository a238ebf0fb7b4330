"""Plotly charts that stay put while they grow.

`st.plotly_chart` (Streamlit 1.67) gives a chart a new identity whenever its figure changes, even
with a key, so every live refresh remounts it and a user's zoom, pan and hidden legend items are
lost; Plotly's `uirevision` never gets a chance. This small Streamlit component keeps one plot per
key and hands each new figure to `Plotly.react`, which keeps the UI state while `uirevision`
stays the same (the report's figures set it). Plotly's own bundle, from the plotly package, is
served once by Streamlit's static file serving and cached by the browser.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import plotly
import plotly.graph_objects as go
import streamlit as st

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

export default function (component) {
  const { data, parentElement } = component;
  let div = parentElement.querySelector("div.lab-chart");
  if (!div) {
    div = document.createElement("div");
    div.className = "lab-chart";
    parentElement.appendChild(div);
  }
  const figure = JSON.parse(data);
  // a fixed height and the column's width: a plot drawn while its column is still being laid
  // out would otherwise size itself to nothing
  div.style.height = `${figure.layout.height || 450}px`;
  div.style.width = "100%";
  loadPlotly().then((Plotly) => Plotly.react(div, figure.data, figure.layout,
                                             {responsive: true, displaylogo: false}));
}
"""


def serve_plotly_js() -> None:
    """Put Plotly's bundle where Streamlit's static serving finds it (app/static/)."""
    target = STATIC / PLOTLY_JS.name
    if not target.is_file() or target.stat().st_size != PLOTLY_JS.stat().st_size:
        STATIC.mkdir(exist_ok=True)
        shutil.copyfile(PLOTLY_JS, target)


_component = st.components.v2.component("lottery_lab_chart", js=JS, isolate_styles=False)


def chart(figure: go.Figure, key: str) -> None:
    """Draw `figure`; a later call with the same key updates the same plot in place."""
    _component(data=figure.to_json(), key=key)
