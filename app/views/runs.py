"""Every job as a table: sort by any column (click its header), filter by text and state, select
rows to open, compare, cancel or delete them (deleting asks first), download it as CSV. A
selection is a set of runs, not of row positions: it stays with its runs as jobs arrive and as
the filter changes, and a run that the filter hides leaves it."""

from pathlib import Path
from typing import Callable

import streamlit as st

from app import lab
from jobs import queue

st.title("Runs")
root = lab.home()

COLUMNS = {
    "name": st.column_config.TextColumn("name", width="medium"),
    "state": st.column_config.TextColumn("state"),
    "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0,
                                                format="percent"),
    "sparsity reached %": st.column_config.NumberColumn(
        "sparsity reached %", format="%.1f", help="The last finished round's (progress)"),
    "ticket round": st.column_config.NumberColumn(
        "ticket round", format="%d", help="The winning ticket: the round the run ships"),
    "ticket sparsity %": st.column_config.NumberColumn("ticket sparsity %", format="%.1f"),
    "ticket val acc": st.column_config.NumberColumn("ticket val acc", format="%.4f"),
    "ticket test acc": st.column_config.NumberColumn("ticket test acc", format="%.4f"),
    "notes": st.column_config.TextColumn("notes", width="medium",
                                         help="Written on the run's page"),
    "error": st.column_config.TextColumn("error", width="large"),
}


def ask_to_delete(ids: list[str]) -> None:
    st.session_state["confirm_delete"] = ids


def act(action: Callable[[str, Path], object], ids: list[str]) -> None:
    """Cancel or delete each job; a refusal (a job that changed meanwhile, a job folder that is
    a symbolic link) is kept to be shown on the page in one line, never a traceback."""
    refusals = []
    for job_id in ids:
        try:
            action(job_id, root)
        except queue.JobError as exc:
            refusals.append(str(exc))
    st.session_state["refusals"] = refusals


@st.fragment(run_every=2)
def run_table() -> None:
    lab.no_worker_banner(root)
    for refusal in st.session_state.get("refusals", []):
        st.error(lab.plain(refusal))
    jobs = queue.list_jobs(root)
    if not jobs:
        st.info("No jobs yet. Queue one on the Launch page.")
        return
    left, right = st.columns([2, 3])
    search = left.text_input("Search name or tag", key="search", placeholder="e.g. lenet")
    states = right.multiselect("State", [*queue.STATES, queue.BROKEN], key="states")
    rows = lab.job_rows(jobs, search, states)
    ids = [row["id"] for row in rows]
    kept = [ids.index(i) for i in st.session_state.get("chosen_runs", []) if i in ids]
    event = st.dataframe(rows, key=lab.table_key(ids), on_select="rerun",
                         selection_mode="multi-row",
                         selection_default={"selection": {"rows": kept}}, hide_index=True,
                         column_config=COLUMNS, column_order=lab.TABLE_COLUMNS, placeholder="–")
    chosen = st.session_state["chosen_runs"] = [ids[i] for i in event.selection.rows]
    by_id = {j["id"]: j for j in jobs}
    cols = st.columns(5)
    if cols[0].button("Open", disabled=len(chosen) != 1, icon=":material/monitoring:"):
        st.switch_page("views/run.py", query_params={"job": chosen[0]})
    if cols[1].button("Compare", disabled=not chosen, icon=":material/compare_arrows:"):
        st.session_state["compare"] = [lab.lab_label(by_id[i]) for i in chosen]
        st.switch_page("views/compare.py")
    live = [i for i in chosen if lab.can_cancel(by_id[i])]
    if cols[2].button("Cancel", disabled=not live, icon=":material/stop_circle:"):
        act(queue.cancel, live)
        st.rerun(scope="fragment")
    ended = [i for i in chosen if by_id[i]["state"] in (*queue.FINISHED, queue.BROKEN)]
    cols[3].button("Delete", disabled=not ended, icon=":material/delete:",
                   on_click=ask_to_delete, args=(ended,))
    cols[4].download_button("Download CSV", lab.table_csv(rows), file_name="runs.csv",
                            mime="text/csv", on_click="ignore", icon=":material/download:")
    pending = [i for i in st.session_state.get("confirm_delete", []) if i in by_id]
    if pending:
        names = ", ".join(lab.lab_label(by_id[i]) for i in pending)
        st.warning(f"Delete {len(pending)} run(s) and their folders for good? {lab.plain(names)}")
        yes, no = st.columns([1, 6])
        if yes.button("Yes, delete", type="primary", key="confirm-delete"):
            act(queue.delete, pending)
            st.session_state["confirm_delete"] = []
            st.rerun(scope="fragment")
        if no.button("Keep them", key="keep"):
            st.session_state["confirm_delete"] = []
            st.rerun(scope="fragment")


run_table()
