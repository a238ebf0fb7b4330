"""Several runs, or a run and its controls, on one sparsity-vs-accuracy figure and one table."""

import streamlit as st

from app import lab
from lottery_engine import report

st.title("Compare runs")
root = lab.home()
folders = lab.run_folders(root)
if not folders:
    st.info("No run has finished a round yet.")
    st.stop()

chosen = st.multiselect("Runs", list(folders), default=list(folders)[:2])
with_controls = st.toggle("Include each run's controls", value=True)
metric = st.radio("Metric", ["val_accuracy", "test_accuracy", "val_f1"], horizontal=True)

series: dict[str, list[dict]] = {}
for label in chosen:
    for kind, records in lab.all_series(folders[label]).items():
        if kind == "imp" or with_controls:
            series[f"{label} · {kind}"] = records

if series:
    st.plotly_chart(report.compare(series, metric), key="compare")
    rows = [{"series": key, **row} for key, records in series.items()
            for row in report.table_rows(records)]
    st.dataframe(rows, hide_index=True)
