"""Several runs, or a run and its controls, on one figure and one table; an experiment's arm
draws as one run whose numbers are the means over its seeds."""

import streamlit as st

from app import charts, lab
from jobs import experiments, queue
from lottery_engine import report, writeup

st.title("Compare runs")
root = lab.home()
folders = lab.run_folders(root)
arms = {f"experiment {meta['name']} · {meta['id'][-4:]} · {label} (mean)": by_seed
        for meta in experiments.list_experiments(root)
        for label, by_seed in lab.experiment_folders(
            root, experiments.statuses(root, meta["id"])).items()}
if not folders:
    st.info("No run has finished a round yet.")
    st.stop()

done = [lab.lab_label(j) for j in reversed(queue.list_jobs(root)) if j["state"] == queue.DONE]
chosen_before = [label for label in st.session_state.get("compare", []) if label in folders]
default = chosen_before or [label for label in done if label in folders][:2]
chosen = st.multiselect("Runs and experiment arms", list(folders) + list(arms), default=default)
with_controls = st.toggle("Include each run's controls", value=True)
left, right = st.columns(2)
metric = left.radio("Metric", ["val_accuracy", "test_accuracy", "val_f1"], horizontal=True)
axis = right.radio("x axis", list(report.AXES), horizontal=True,
                   format_func=lambda a: report.AXES[a][0])

runs = {label: {kind: records for kind, records in
                (lab.all_series(folders[label]) if label in folders
                 else writeup.mean_records(arms[label])).items()
                if kind == "imp" or with_controls}
        for label in chosen}
if runs:
    charts.chart(report.compare(runs, metric, axis), key="compare")
    rows = [{"run": label, "series": report.SERIES_LABELS.get(kind, kind), **row}
            for label, series in runs.items() for kind, records in series.items()
            for row in report.table_rows(records)]
    st.dataframe(rows, hide_index=True)
