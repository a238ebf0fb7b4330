"""One run, live: curves, per-layer heatmap, FLOPs, epochs of the current round, rounds, log;
and, once done, the winning ticket and the report to download."""

import streamlit as st

from app import lab
from jobs import queue
from lottery_engine import report, runfolder

root = lab.home()
jobs = list(reversed(queue.list_jobs(root)))
if not jobs:
    st.title("Run")
    st.info("No runs yet. Queue one on the Launch page.")
    st.stop()

ids = [j["id"] for j in jobs]
wanted = st.query_params.get("job")
job_id = st.selectbox("Run", ids, index=ids.index(wanted) if wanted in ids else 0,
                      format_func=lambda i: lab.job_label(next(j for j in jobs if j["id"] == i)))
st.query_params["job"] = job_id
run_dir = root / job_id
live = queue.get(job_id, root)["state"] in (queue.QUEUED, queue.RUNNING)


@st.fragment(run_every=1.5 if live else None)
def run_view() -> None:
    status = queue.get(job_id, root)
    records = lab.rounds(run_dir)
    st.title(f"{lab.plain(status.get('name'))} · {status['state']}")
    cols = st.columns(4)
    cols[0].metric("Rounds finished", len(records))
    cols[1].metric("Sparsity", f"{100 * (records[-1]['global_sparsity'] if records else 0):.1f}%")
    best = max((r["val_accuracy"] for r in records), default=None)
    cols[2].metric("Best val accuracy", f"{best:.4f}" if best is not None else "–")
    cols[3].metric("Elapsed", lab.duration(status.get("elapsed")))
    if status["state"] == queue.RUNNING:
        st.progress(lab.progress_fraction(status), text=lab.progress_text(status)
                    + f" · ETA {lab.duration(status.get('eta'))}")
    if status.get("error"):
        st.error(f"{status['state'].capitalize()}: {lab.plain(status['error'])}")
    if live and status["state"] in queue.FINISHED:
        st.rerun()  # the job ended: redraw the whole page once, with downloads, and stop polling

    if records:
        ticket = runfolder.read_json(run_dir / runfolder.TICKET_JSON, {})
        left, right = st.columns(2)
        left.plotly_chart(report.sparsity_accuracy(records), key="sparsity")
        right.plotly_chart(report.remaining_weights(records, ticket.get("round")), key="remaining")
        left.plotly_chart(report.layer_heatmap(records), key="heatmap")
        right.plotly_chart(report.flops_per_round(records), key="flops")
    current = {"round": status.get("round"), "history": status.get("history", {})}
    if status["state"] == queue.RUNNING and current["history"]:
        st.plotly_chart(report.epoch_history(current), key="epochs")
    elif records:
        st.plotly_chart(report.epoch_history(records[-1]), key="epochs")
    if records:
        st.subheader("Rounds")
        st.dataframe(report.table_rows(records), hide_index=True)
    with st.expander("Log", expanded=status["state"] == queue.FAILED):
        st.code(runfolder.log_tail(run_dir) or "(empty)", language=None)


run_view()

if runfolder.is_complete(run_dir) and (run_dir / runfolder.TICKET_MODEL).is_file():
    ticket = runfolder.read_json(run_dir / runfolder.TICKET_JSON, {})
    st.subheader("Winning ticket")
    st.write(f"Round {ticket['round']} at {100 * ticket['global_sparsity']:.1f}% sparsity: val "
             f"accuracy {ticket['reloaded_val_accuracy']:.4f} (re-evaluated from the saved file), "
             f"test accuracy {ticket['test_accuracy']:.4f}; {ticket['compressed_bytes']:,} bytes "
             f"compressed vs {ticket['dense_bytes']:,} dense.")
    left, right = st.columns(2)
    left.download_button("Download the winning ticket (.zip)", runfolder.ticket_zip(run_dir),
                         file_name=f"{job_id}-winning-ticket.zip", mime="application/zip",
                         type="primary", on_click="ignore")
    if (run_dir / runfolder.REPORT_HTML).is_file():
        right.download_button("Download the HTML report",
                              (run_dir / runfolder.REPORT_HTML).read_bytes(),
                              file_name=f"{job_id}-report.html", mime="text/html",
                              on_click="ignore")
