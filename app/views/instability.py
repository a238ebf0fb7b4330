"""The Run page's Instability section (issue 31): choose rounds and rewind steps, queue the
analysis as a job of its own (a worker runs `lottery instability`: this page never runs
TensorFlow), watch its lines arrive as the two figures of the report."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app import lab
from jobs import instability_jobs, queue
from lottery_engine.config import load as config_lib
from lottery_engine.foundations.events import IMP
from lottery_engine.foundations.faults import UserError
from lottery_engine.lottery.instability_plan import Request, parse_steps, total_steps
from lottery_engine.report import instability_figures


def default_rewinds(steps: int) -> str:
    """θ0 and a few steps spread over the first third of training (the paper's range), as a
    starting point the user edits: every one below T."""
    return ",".join(str(k) for k in sorted({0, steps // 100, steps // 20, steps // 5}))


def section(root: Path, job_id: str, run_dir: Path) -> None:
    """The section under the ticket: nothing until round 0 has finished."""
    records = [r for r in lab.rounds(run_dir) if r.series == IMP]
    if not records:
        return
    jobs = instability_jobs.jobs_of(queue.list_jobs(root), job_id)
    last = jobs[-1] if jobs else None
    live = bool(last) and last["state"] in (queue.QUEUED, queue.RUNNING)
    st.subheader("Instability")
    st.caption("Is a round's subnetwork stable to SGD noise? Copies of it start from round 0's "
               "weights after step k and train in different data orders; the error along the "
               "straight line between them shows a barrier when they ended in different basins "
               "(Frankle et al., 2020). Instability is the highest test error on the line minus "
               "the mean of its ends' errors.")
    _request_form(root, job_id, run_dir, records, live)
    st.fragment(run_every=1.5 if live else None)(_progress)(root, run_dir, last, live)


def _request_form(root: Path, job_id: str, run_dir: Path, records: list[dict],
                  live: bool) -> None:
    steps = total_steps(config_lib.load_run(run_dir), run_dir)
    sparsity = {r["round"]: r["global_sparsity"] for r in records}
    with st.form("instability"):
        rounds = st.multiselect("Rounds", list(sparsity), default=sorted({0, max(sparsity)}),
                                format_func=lambda r: f"round {r} ({100 * sparsity[r]:.1f}% "
                                                      f"pruned)")
        rewinds = st.text_input(f"Rewind steps k (0 to {steps - 1}, comma-separated)",
                                default_rewinds(steps))
        left, right = st.columns(2)
        copies = left.number_input("Copies per (round, k)", 2, 8, 2)
        points = right.number_input("Points along each line", 2, 101, 31)
        if st.form_submit_button("Analysing…" if live else "Queue the analysis",
                                 disabled=live, icon=":material/timeline:"):
            try:
                request = Request(tuple(sorted(rounds)), parse_steps("Rewind steps", rewinds),
                                  int(copies), int(points))
                if not request.rounds:
                    raise UserError("Rounds: choose one round at least.")
                instability_jobs.submit(job_id, request, root)
            except UserError as exc:
                st.error(lab.plain(exc))
            else:
                st.rerun()


def _progress(root: Path, run_dir: Path, last: dict | None, live: bool) -> None:
    """The last analysis' state and the figures of every line so far."""
    try:
        status = queue.get(last["id"], root) if last else None
    except queue.JobError:  # deleted meanwhile
        status = None
    if live and status and status["state"] not in (queue.QUEUED, queue.RUNNING):
        st.rerun()  # it ended: redraw the page once and stop polling
    if status and status["state"] == queue.QUEUED:
        st.info(f"Analysis {lab.plain(lab.state_text(status))}", icon=":material/schedule:")
        lab.no_worker_banner(root)
    elif status and queue.stalled(status):
        lab.stalled_warning(root)
    elif status and status["state"] == queue.RUNNING:
        st.info(lab.plain(status.get("phase") or "starting the job's process…"),
                icon=":material/hourglass_top:")
    elif status and status["state"] == queue.FAILED:
        st.error(f"The last analysis failed: {lab.plain(status.get('error'))}")
    if status and lab.can_cancel(status) and st.button("Cancel the analysis",
                                                       icon=":material/stop_circle:"):
        _cancel(root, status["id"])
    lines = instability_figures.read(run_dir)
    if lines:
        lab.chart(instability_figures.error_along_line(lines), key="instability-line")
        lab.chart(instability_figures.instability_vs_rewind(lines), key="instability-k")


def _cancel(root: Path, job_id: str) -> None:
    """Cancel the analysis (a running one stops at its next batch; its lines are kept)."""
    try:
        queue.cancel(job_id, root)
    except queue.JobError as exc:  # it ended meanwhile
        st.error(lab.plain(exc))
        return
    st.rerun()
