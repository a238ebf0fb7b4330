"""The dashboard as `make run` serves it (`streamlit run app/asgi.py`, which finds `app` below):
app/streamlit_app.py, with Plotly's bundles and Streamlit's own scripts answered from memory,
compressed once and cacheable, and the partial bundle fetched by the chart pages' HTML
(app/bundles.py says why)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from app.bundles import EarlyBundleInPages, PrecompressedStatic  # noqa: E402

app = st.App("streamlit_app.py", middleware=[Middleware(PrecompressedStatic),
                                             Middleware(EarlyBundleInPages)])
