"""Several runs, or a run and its controls, on one sparsity-vs-accuracy figure and one table."""

import streamlit as st

from app import lab
from jobs import queue
from lottery_engine import report

st.title("Compare runs")
root = lab.home()
jobs = [j for j in reversed(queue.list_jobs(root)) if (root / j["id"] / "rounds.jsonl").is_file()]
if not jobs:
    st.info("No run has finished a round yet.")
    st.stop()

labels = {j["id"]: lab.job_label(j) for j in jobs}
chosen = st.multiselect("Runs", list(labels), default=list(labels)[:2], format_func=labels.get)
with_controls = st.toggle("Include each run's controls", value=True)
metric = st.radio("Metric", ["val_accuracy", "test_accuracy", "val_f1"], horizontal=True)

series: dict[str, list[dict]] = {}
for job_id in chosen:
    name = labels[job_id].split(" · ")[0]
    for kind, records in lab.all_series(root / job_id).items():
        if kind == "imp" or with_controls:
            series[f"{name} ({job_id[-6:]}) {kind}"] = records

if series:
    st.plotly_chart(report.compare(series, metric), key="compare")
    rows = [{"series": key, **row} for key, records in series.items()
            for row in report.table_rows(records)]
    st.dataframe(rows, hide_index=True)
