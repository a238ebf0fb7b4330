"""Every job: state, progress, sparsity, best accuracy, timing, worker; cancel and delete."""

import streamlit as st

from app import lab
from jobs import queue

st.title("Runs")
root = lab.home()


@st.fragment(run_every=2)
def jobs_table() -> None:
    lab.no_worker_banner(root)
    jobs = list(reversed(queue.list_jobs(root)))
    if not jobs:
        st.info("No jobs yet. Queue one on the Launch page.")
        return
    for status in jobs:
        job_id, state = status["id"], status["state"]
        with st.container(border=True):
            left, mid, right = st.columns([3, 4, 2])
            left.page_link("views/run.py", label=f"**{lab.plain(status.get('name'))}** · {job_id}",
                           query_params={"job": job_id})
            left.caption(f"{state}" + (f" · worker {status['worker']}"
                                       if status.get("worker") else ""))
            mid.progress(lab.progress_fraction(status), text=lab.progress_text(status))
            best = status.get("best_val_accuracy")
            best_text = f"{best:.4f}" if best is not None else "–"
            mid.caption(f"sparsity {100 * status.get('sparsity', 0):.1f}% · "
                        f"best val acc {best_text}")
            mid.caption(f"elapsed {lab.duration(status.get('elapsed'))} · ETA "
                        f"{lab.duration(status.get('eta')) if state == 'running' else '–'}")
            if status.get("error"):
                mid.error(lab.plain(status["error"]))
            if state in (queue.QUEUED, queue.RUNNING):
                if right.button("Cancel", key=f"cancel-{job_id}",
                                disabled=bool(status.get("cancel_requested"))):
                    queue.cancel(job_id, root)
                    st.rerun()
            elif right.button("Delete", key=f"delete-{job_id}"):
                queue.delete(job_id, root)
                st.rerun()


jobs_table()
