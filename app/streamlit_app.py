"""Lottery Lab's dashboard: `streamlit run app/streamlit_app.py` (or `make run`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

from app import bundles, charts, form_memory  # noqa: E402

st.set_page_config(page_title="Lottery Lab", page_icon=":material/confirmation_number:",
                   layout="wide")
# live parts rerun every second or two: keep them at full opacity instead of Streamlit's fade
st.html("<style>.stElementContainer[data-stale='true']{opacity:1 !important;"
        "transition:none !important}</style>")

pages = [  # paths are relative to this file
    st.Page("views/launch.py", title="Launch", icon=":material/rocket_launch:", default=True),
    st.Page("views/runs.py", title="Runs", icon=":material/list:", url_path="runs"),
    st.Page("views/run.py", title="Run", icon=":material/monitoring:", url_path="run"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:",
            url_path="compare"),
    st.Page("views/experiments.py", title="Experiments", icon=":material/science:",
            url_path="experiments"),
]
bundles.copy_to_static()
form_memory.keep_fields()  # the Launch form outlives a visit to another page
page = st.navigation(pages)
if page.url_path in bundles.CHART_PAGES:
    charts.preload()
page.run()
