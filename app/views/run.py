"""One run, live: what it is doing, curves with its controls overlaid, per-layer heatmap, FLOPs,
epochs of the current round, rounds, log; its name, notes, tags and config (with a diff against
another run); once done, the winning ticket and the report to download, and the ticket's export
(queued for a worker) with what each format measured and its file."""

import streamlit as st

from app import lab
from app.views import instability
from jobs import queue
from lottery_engine.export import downloads, export_records
from lottery_engine.foundations import runfolder
from lottery_engine.foundations.events import IMP
from lottery_engine.foundations.round_record import RoundRecord
from lottery_engine.report import figures as report

EXPORT_COLUMNS = {
    "test acc %": st.column_config.NumberColumn("test acc %", format="%.2f"),
    "change (points)": st.column_config.NumberColumn(
        "change (points)", format="%+.2f", help="Test accuracy minus the dense ticket's"),
    **{f"speed-up batch {n}": st.column_config.TextColumn(
        f"speed-up batch {n}", help=f"The dense ticket's milliseconds per sample over this "
        f"format's at batch {n}, timed in the same export: above 1x is faster") for n in (1, 256)},
    "note": st.column_config.TextColumn(
        "note", width="medium", help="Why a number is what it is: a compact model the dense "
        "ticket's size kept every unit, as single weights were pruned, not whole channels; "
        "or why a format failed"),
}

# the export table's columns: speed-up beside accuracy, few enough not to scroll sideways at a
# laptop's width; a failed format's status and error are its note, and the milliseconds behind
# each speed-up, the runtimes and the round are said under the table (and in the HTML report)
EXPORT_ORDER = ["format", "size", "size × dense", "speed-up batch 1", "speed-up batch 256",
                "test acc %", "change (points)", "note"]
SAME_SIZE = "no unit lost all its weights: IMP's sparsity is unstructured"


def made_by(records: dict[str, dict], rows: list[dict]) -> str:
    """What the table leaves out: which round's ticket, which runtime ran which formats (a
    failed format may have neither) and the median milliseconds per sample behind each
    speed-up."""
    runtimes: dict[str, list[str]] = {}
    for fmt, record in records.items():
        if record.get("runtime"):
            runtimes.setdefault(str(record["runtime"]), []).append(fmt)
    rounds = sorted({str(r["round"]) for r in records.values() if r.get("round") is not None})
    said = f"Round {', '.join(rounds)}'s ticket" if rounds else "The ticket"
    if runtimes:
        said += ", run by " + "; ".join(f"{runtime} ({', '.join(formats)})"
                                        for runtime, formats in runtimes.items())
    timed = [f"{row['format']} {row['ms batch 1']:.3g} at batch 1, {row['ms batch 256']:.3g} "
             f"at 256" for row in rows if row["status"] == "ok"]
    return said + (f". Milliseconds per sample: {'; '.join(timed)}." if timed else ".")


def other_round_note(records: dict[str, dict], ticket_round: int | None) -> str | None:
    """What to say when the table holds another round than the winning ticket the page shows
    above it (an experiment's write-up ships its own choice of round; `lottery export --round`
    exports any), or None: the table sits under "Deploy the ticket", and its caption alone did
    not stop a reader taking round 18's numbers for round 3's."""
    rounds = sorted({r["round"] for r in records.values() if isinstance(r.get("round"), int)})
    if ticket_round is None or not rounds or rounds == [ticket_round]:
        return None
    which = " and ".join(str(r) for r in rounds)
    return (f"These files are of round {which}, not of this run's winning ticket (round "
            f"{ticket_round}): an experiment's write-up or `lottery export --round` exported "
            f"them. Export makes the winning ticket's.")


def export_rows(records: dict[str, dict]) -> list[dict]:
    """The export table's rows, where a compact model that kept every unit says why it is the
    dense ticket's size rather than showing a bare 1.0x, and a format that did not export says
    why in the same column."""
    rows = export_records.table_rows(records)
    compaction = records.get("compact", {}).get("compaction")
    for row in rows:
        if row["status"] != "ok":
            row["note"] = ": ".join(str(part) for part in (row["status"], row["error"]) if part)
        elif row["format"] == "compact" and isinstance(compaction, dict) \
                and compaction.get("units_removed") == 0:
            row["note"] = SAME_SIZE
    return rows


root = lab.home()
everything = queue.list_jobs(root)
jobs = [j for j in reversed(everything) if queue.is_run(j)]
by_id = {j["id"]: j for j in jobs}
wanted = st.query_params.get("job")
if wanted is not None and wanted not in by_id:
    lab.no_such_run(wanted, jobs)
    st.stop()
if not jobs:
    st.title("Run")
    st.info("No runs yet. Queue one on the Launch page.")
    st.stop()

job_id = st.selectbox("Run", list(by_id), index=list(by_id).index(wanted) if wanted in by_id
                      else 0, format_func=lambda i: lab.job_label(by_id[i]))
st.query_params["job"] = job_id
run_dir = root / job_id
live = by_id[job_id]["state"] in (queue.QUEUED, queue.RUNNING)
exports = queue.export_jobs(everything, job_id)
last_export = exports[-1] if exports else None
exporting = bool(last_export) and last_export["state"] in (queue.QUEUED, queue.RUNNING)
if live:
    lab.no_worker_banner(root)
if saved := st.session_state.pop("saved_labels", None):  # the save's rerun, with its new title
    st.toast(f"Saved the name, notes and tags of {lab.plain(saved)}.", icon=":material/check:")


def progress_group(status: dict, records: list[RoundRecord]) -> None:
    """How far the run is: rounds done, the sparsity its last round reached, time."""
    st.markdown("**Progress**")
    cols = st.columns(3)
    cols[0].metric("Pruning rounds done", f"{max(0, len(records) - 1)} / "
                   f"{status.get('num_rounds')}", help="after the dense round 0")
    cols[1].metric("Sparsity reached",
                   f"{100 * (records[-1].global_sparsity if records else 0):.1f}%",
                   help="the last finished round's; the winning ticket may be an earlier one")
    cols[2].metric("Elapsed", lab.duration(lab.elapsed(status)))


def ticket_group(ticket: dict) -> None:
    """The winning ticket's own numbers, one group, so that no number of another round stands
    beside them: its round, sparsity, weights left, val and test accuracy."""
    st.markdown("**Winning ticket**")
    if "round" not in ticket:
        st.caption("Chosen when the run ends: the pruned round that scores best on the "
                   "validation split.")
        return
    cols = st.columns(5)
    cols[0].metric("Round", ticket["round"], help=f"chosen on {ticket['select_metric']}")
    cols[1].metric("Ticket sparsity", f"{100 * ticket['global_sparsity']:.1f}%")
    cols[2].metric("Weights left", f"{ticket['remaining_prunable']:,}",
                   help="prunable weights that are not zero")
    cols[3].metric("Val accuracy", f"{ticket['logged_val_accuracy']:.4f}")
    cols[4].metric("Test accuracy", f"{ticket['test_accuracy']:.4f}")


@st.fragment(run_every=1.5 if live else None)
def run_view() -> None:
    status = queue.get(job_id, root)
    records = lab.rounds(run_dir)
    st.title(f"{lab.plain(status.get('name'))} · {lab.plain(lab.state_text(status))}")
    if status.get("notes"):
        st.text(status["notes"])  # as typed: never Markdown
    st.caption(f"Round 0 trains the dense network; then {status.get('num_rounds')} pruning "
               f"rounds each prune the surviving weights, rewind and retrain.")
    if status.get("error"):
        st.error(f"{status['state'].capitalize()}: {lab.plain(status['error'])}")
        st.code(runfolder.log_tail(run_dir, lines=15) or "(empty log)", language=None)
    if live and status["state"] not in (queue.QUEUED, queue.RUNNING):
        st.rerun()  # the job ended: redraw the whole page once, with downloads, and stop polling

    ticket = runfolder.read_json(run_dir / runfolder.TICKET_JSON, {})
    progress_group(status, records)
    ticket_group(ticket)
    phase = lab.phase_text(status)
    if queue.stalled(status):
        lab.stalled_warning(root)
    elif phase:
        st.info(phase, icon=":material/hourglass_top:")
    elif status["state"] == queue.RUNNING:
        st.progress(lab.progress_fraction(status), text=lab.progress_text(status)
                    + f" · ETA {lab.duration(status.get('eta'))}")

    series = lab.all_series(run_dir)
    controls = {name: recs for name, recs in series.items() if name != IMP and recs}
    if records:
        axis = st.segmented_control("x axis", list(report.AXES), default="sparsity",
                                    format_func=lambda a: report.AXES[a][0], key="axis") \
            or "sparsity"
        left, right = st.columns(2)
        with left:
            lab.chart(report.sparsity_accuracy(records, axis, controls), key="sparsity")
            of = st.segmented_control(  # a channel run's layers lose whole units too
                "Heatmap counts", list(report.HEATMAPS), default="weights",
                key="heatmap_of") if report.has_channels(records) else None
            lab.chart(report.layer_heatmap(records, of or "weights"), key="heatmap")
        with right:
            lab.chart(report.remaining_weights(records, ticket.get("round")), key="remaining")
            lab.chart(report.flops_per_round(records), key="flops")
    smoothing = st.slider("Smoothing of epoch curves", 0.0, 0.95, 0.0, 0.05, key="smoothing")
    current = {"round": status.get("round"), "history": status.get("history", {})}
    if status["state"] == queue.RUNNING and current["history"]:
        lab.chart(report.epoch_history(current, smoothing), key="epochs")
    elif records:  # a round that has ended: no longer "training"
        figure = report.epoch_history(records[-1], smoothing)
        lab.chart(figure.update_layout(title=f"Round {records[-1]['round']}, the last to "
                                             f"finish: loss and accuracy per epoch"),
                  key="epochs")
    if records:
        st.subheader("Rounds")
        st.dataframe(report.table_rows(records), hide_index=True)
    with st.expander("Log"):
        st.code(runfolder.log_tail(run_dir) or "(empty)", language=None)


def actions() -> None:
    """Cancel, and the labels a user edits after launch: name, notes, tags."""
    status = queue.get(job_id, root)
    if status["state"] in (queue.QUEUED, queue.RUNNING):
        pending = not lab.can_cancel(status)
        if st.button("Cancelling…" if pending else "Cancel this run", disabled=pending,
                     icon=":material/stop_circle:"):
            try:
                queue.cancel(job_id, root)
            except queue.JobError as exc:  # it ended meanwhile
                st.error(lab.plain(exc))
            else:
                st.rerun()
    with st.expander("Name, notes and tags"), st.form("labels"):
        name = st.text_input("Name", status.get("name", ""))
        notes = st.text_area("Notes", status.get("notes", ""))
        tags = st.text_input("Tags (comma-separated)", ", ".join(status.get("tags") or []))
        if st.form_submit_button("Save"):
            try:
                queue.annotate(job_id, root, name=name, notes=notes, tags=tags.split(","))
            except ValueError as exc:
                st.error(lab.plain(exc))
            else:
                st.session_state["saved_labels"] = name.strip()
                st.rerun()


def config_view() -> None:
    mine = lab.config_text(run_dir)
    with st.expander("Config"):
        st.code(mine, language="yaml")
        others = [i for i in by_id if i != job_id]
        other = st.selectbox("Diff against", [None, *others], key="diff_against",
                             format_func=lambda i: "(choose a run)" if i is None
                             else lab.job_label(by_id[i]))
        if other:
            diff = lab.config_diff(lab.config_text(root / other), mine,
                                   lab.lab_label(by_id[other]), lab.lab_label(by_id[job_id]))
            st.code(diff or "(the configs are the same)", language="diff")


def file_stem(status: dict) -> str:
    """What the run's downloads are named after: its name as a file name part, with its id
    where another run has the same name (two "quickstart" tickets must not overwrite each
    other in a Downloads folder)."""
    stem = runfolder.slug(status.get("name") or "run")
    clash = any(runfolder.slug(j.get("name") or "run") == stem for j in jobs
                if j["id"] != status["id"])
    return f"{stem}-{status['id']}" if clash else stem


def ticket_view() -> None:
    """The winning ticket of a finished run: its downloads, then its export."""
    if not (runfolder.is_complete(run_dir) and (run_dir / runfolder.TICKET_MODEL).is_file()):
        return
    ticket = runfolder.read_json(run_dir / runfolder.TICKET_JSON, {})
    st.subheader("Winning ticket")
    st.write(f"Round {ticket['round']} at {100 * ticket['global_sparsity']:.1f}% sparsity: val "
             f"accuracy {ticket['reloaded_val_accuracy']:.4f} (re-evaluated from the saved file), "
             f"test accuracy {ticket['test_accuracy']:.4f}. Its weights take "
             f"{ticket['dense_bytes']:,} bytes stored dense (zeros included) and "
             f"{ticket['compressed_bytes']:,} zip-compressed.")
    # the files are made when clicked, not sent with every page load (the report alone is
    # 4.6 MB of plotly.js; a VGG16 ticket is hundreds of MB)
    left, right = st.columns(2)
    stem = file_stem(queue.get(job_id, root))
    left.download_button("Download the winning ticket (.zip)",
                         lambda: downloads.ticket_zip(run_dir),
                         file_name=f"{stem}-ticket-r{ticket['round']}.zip",
                         mime="application/zip",
                         type="primary", on_click="ignore")
    page = run_dir / runfolder.REPORT_HTML
    if page.is_file():
        right.download_button("Download the HTML report", page.read_bytes,
                              file_name=f"{stem}-report.html", mime="text/html",
                              on_click="ignore")
    export_view()


def export_state(status: dict | None) -> None:
    """Where the run's last export job stands (nothing once it is done: its table says it)."""
    if status is None or status["state"] == queue.DONE:
        return
    if status["state"] == queue.QUEUED:
        st.info(f"Export {lab.plain(lab.state_text(status))}", icon=":material/schedule:")
        lab.no_worker_banner(root)
    elif queue.stalled(status):
        lab.stalled_warning(root)
    elif status["state"] == queue.RUNNING:
        st.info(lab.phase_text(status) + (" (cancelling: it stops before the next format)"
                                          if status.get("cancel_requested") else ""),
                icon=":material/hourglass_top:")
    elif status["state"] == queue.FAILED:
        st.error(f"The last export failed: {lab.plain(status.get('error'))}")
    else:
        st.caption("The last export was cancelled; the formats it finished are kept below.")


@st.fragment(run_every=1.5 if exporting else None)
def export_view() -> None:
    """Export queues a job (a worker runs `lottery export RUN_DIR --format all`: this page never
    runs TensorFlow); the table and files are what exports.json records."""
    try:
        status = queue.get(last_export["id"], root) if last_export else None
    except queue.JobError:  # deleted meanwhile
        status = None
    pending = status is not None and status["state"] in (queue.QUEUED, queue.RUNNING)
    if exporting and not pending:
        st.rerun()  # the export ended: redraw the page once, with its table, and stop polling
    st.subheader("Deploy the ticket")
    st.caption("Export writes the ticket as the masked Keras model, a compact Keras model "
               "without its dead units, sparse float TFLite and int8 TFLite, and measures each "
               "against the dense ticket on this run's test split.")
    export_state(status)
    left, right = st.columns(2)
    if left.button("Exporting…" if pending else "Export (Keras, compact, TFLite, int8)",
                   disabled=pending, icon=":material/rocket_launch:"):
        try:
            queue.submit_export(job_id, root)
        except queue.JobError as exc:  # one was queued meanwhile, or the run is gone
            st.error(lab.plain(exc))
        else:
            st.rerun()
    if status and lab.can_cancel(status) and right.button("Cancel the export",
                                                          icon=":material/stop_circle:"):
        try:
            queue.cancel(status["id"], root)
        except queue.JobError as exc:  # it ended meanwhile
            st.error(lab.plain(exc))
        else:
            st.rerun()
    records = export_records.read(run_dir)
    if not records:
        return
    rows = export_rows(records)
    ticket_round = runfolder.read_json(run_dir / runfolder.TICKET_JSON, {}).get("round")
    if note := other_round_note(records, ticket_round):
        st.info(note, icon=":material/info:")
    st.dataframe(rows, hide_index=True, column_order=EXPORT_ORDER,
                 column_config=EXPORT_COLUMNS, placeholder="–")
    st.caption(f"{lab.plain(made_by(records, rows))} "
               "Sizes, latencies and accuracy are each against the dense ticket timed in the "
               "same export, on one thread. Timed twice, the dense ticket differs by about 10%: "
               "a speed-up within that is noise, and most of a batch-1 TFLite speed-up is "
               "Keras's own per-call overhead.")
    files = {fmt: downloads.exported_file(run_dir, record) for fmt, record in records.items()}
    stem = file_stem(queue.get(job_id, root))
    for column, (fmt, path) in zip(st.columns(len(files)), files.items()):
        made = records[fmt].get("round")  # a record is data read from disk: maybe not an int
        if path:  # read when clicked, like the ticket zip
            column.download_button(f"{fmt} ({export_records.human_bytes(path.stat().st_size)})",
                                   path.read_bytes,
                                   file_name=f"{stem}{f'-r{made}' if isinstance(made, int) else ''}-{path.name}",
                                   mime="application/octet-stream", on_click="ignore",
                                   icon=":material/download:", key=f"export-{fmt}")


run_view()
ticket_view()
instability.section(root, job_id, run_dir)
actions()
config_view()
st.caption(f"Run folder: {lab.plain(run_dir)}")
