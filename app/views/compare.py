"""Several runs on one figure and one table: a run with its controls, runs side by side, an
experiment's arm as its seeds' mean with their spread, or any chosen runs grouped by a config key
(as W&B groups runs); then a parallel-coordinates chart from chosen config keys to what each run
found, brushed to filter the table under it; and accuracy against measured latency for the runs
whose tickets were exported: the deployment trade-off of weight and channel tickets."""

from pathlib import Path

import streamlit as st

from app import charts, lab
from jobs import experiments, queue
from lottery_engine.export import export_records
from lottery_engine.foundations import runfolder
from lottery_engine.foundations.events import IMP
from lottery_engine.foundations.round_record import RoundRecord
from lottery_engine.report import compare, tradeoff
from lottery_engine.report import figures as report
from lottery_engine.science import over_seeds

OUTCOMES = ("ticket sparsity %", "ticket val accuracy", "early-stop iteration")


def experiment_arms(root: Path, labels: dict[Path, str]) -> dict[str, dict[str, Path]]:
    """Every experiment arm with a finished round, as its seeds' run folders by run label."""
    return {f"experiment {meta['name']} · {meta['id'][-4:]} · {arm} ({len(by_seed)} seeds)":
            {labels.get(folder, f"{arm} · seed {seed}"): folder
             for seed, folder in by_seed.items()}
            for meta in experiments.list_experiments(root)
            for arm, by_seed in lab.experiment_folders(
                root, experiments.statuses(root, meta["id"])).items()}


def outcome(folder: Path) -> dict[str, float] | None:
    """What a run found: its winning ticket's sparsity, val accuracy and early-stop iteration,
    all of the one round (None before it has a ticket)."""
    ticket = runfolder.read_json(folder / runfolder.TICKET_JSON, {})
    records = lab.rounds(folder)
    record = next((r for r in records if r.round == ticket.get("round")), None)
    if record is None:
        return None
    return dict(zip(OUTCOMES, (100 * ticket["global_sparsity"],
                               record.val_accuracy, record.early_stop_step)))


def shown(kind: str, with_controls: bool) -> bool:
    """Whether a series is drawn: the ticket always, its controls when asked for."""
    return kind == IMP or with_controls


def group_series(group: dict[str, Path]) -> dict[str, list[RoundRecord]]:
    """A group's round records by series: a lone run's own, else the means over its runs."""
    if len(group) == 1:
        return lab.all_series(*group.values())
    return over_seeds.mean_records(dict(enumerate(group.values())))


def group_table(groups: dict[str, dict[str, Path]], with_controls: bool) -> list[dict]:
    """A row per group, series and round: the numbers its line draws."""
    return [{"run": label, "runs": len(group), "series": report.SERIES_LABELS.get(kind, kind),
             **row}
            for label, group in groups.items()
            for kind, records in group_series(group).items()
            if shown(kind, with_controls) for row in report.table_rows(records)]


def cell(value: object) -> object:
    """A config value for a table column: numbers as they are, anything else as text."""
    return value if isinstance(value, (int, float)) else compare.value_text(value)


def parallel_view(runs: dict[str, Path], configs: dict[str, dict]) -> None:
    """Chosen config keys against what each run found, one line per run with a ticket; a range
    brushed on an axis filters the table under the chart."""
    st.subheader("Config → what each run found")
    keys = st.multiselect("Config keys", compare.config_keys(configs.values()),
                          default=[k for k in compare.varying_keys(list(configs.values()))
                                   if k != "run.name"][:4], key="parallel_keys")
    found = {run: outcome(folder) for run, folder in runs.items()}
    rows = [{"run": run, **{k: compare.config_value(configs[run], k) for k in keys}, **values}
            for run, values in found.items() if values]
    if len(rows) < len(found):
        st.caption(f"{len(found) - len(rows)} run(s) without a winning ticket yet are left out.")
    if not rows:
        return
    figure = compare.parallel_coordinates(rows, [*keys, *OUTCOMES], colour="ticket val accuracy")
    brush = charts.chart(figure, key="parallel")
    inside = compare.brushed(figure, brush)
    if brush:
        st.caption(f"{len(inside)} of {len(rows)} runs inside the brushed ranges.")
    st.dataframe([{k: cell(v) for k, v in rows[i].items()} for i in inside], hide_index=True)


def ticket_export(folder: Path, fmt: str) -> dict:
    """The ticket's export record of `fmt` ({} if none): the one the Run page exported, else,
    for an experiment arm that exports every round, the ticket round's."""
    record = export_records.read(folder).get(fmt)
    if record is None:
        ticket = runfolder.read_json(folder / runfolder.TICKET_JSON, {})
        record = export_records.read_by_round(folder).get(ticket.get("round"), {}).get(fmt)
    return record if isinstance(record, dict) else {}


def tradeoff_view(runs: dict[str, Path], configs: dict[str, dict]) -> None:
    """Each chosen run's exported ticket: its test accuracy against its format's latency per
    sample, coloured by how the run pruned."""
    st.subheader("Accuracy against latency, deployed")
    formats = list(export_records.FORMATS)
    fmt = st.radio("Exported format", formats, index=formats.index("compact"), horizontal=True,
                   key="tradeoff_format")
    points = {run: (tradeoff.pruned_as(configs[run]), record) for run, folder in runs.items()
              if (record := ticket_export(folder, fmt)).get("status") == "ok"}
    if not points:
        st.caption(f"No chosen run has a {fmt} export yet: export a finished run's ticket on "
                   f"its Run page.")
        return
    charts.chart(tradeoff.latency_tradeoff(points, fmt), key="tradeoff")


st.title("Compare runs")
root = lab.home()
folders = lab.run_folders(root)
arms = experiment_arms(root, {folder: label for label, folder in folders.items()})
if not folders:
    st.info("No run has finished a round yet.")
    st.stop()

done = [lab.lab_label(j) for j in reversed(queue.list_jobs(root)) if j["state"] == queue.DONE]
chosen_before = [label for label in st.session_state.get("compare", []) if label in folders]
default = chosen_before or [label for label in done if label in folders][:2]
chosen = st.multiselect("Runs and experiment arms", list(folders) + list(arms), default=default)
with_controls = st.toggle("Include each run's controls", value=True)
left, middle, right = st.columns(3)
metric = left.radio("Metric", ["val_accuracy", "test_accuracy", "val_f1"], horizontal=True)
axis = middle.radio("x axis", list(report.AXES), horizontal=True,
                    format_func=lambda a: report.AXES[a][0])
chosen_groups = {label: arms.get(label) or {label: folders[label]} for label in chosen}
runs = {run: folder for group in chosen_groups.values() for run, folder in group.items()}
configs = {run: runfolder.read_frozen_config(folder) for run, folder in runs.items()}
group_key = right.selectbox(
    "Group runs by", [None, *compare.config_keys(configs.values())], key="group_by",
    format_func=lambda k: "(each run; an arm by its seeds)" if k is None else k,
    help="Runs with the same value of this config key draw as one line, their mean, with "
         "their spread: a 95% band from 3 runs, else each run as a thin line.")
groups = compare.group_by_key(runs, configs, group_key) if group_key else chosen_groups

if groups:
    series = {label: {run: {kind: records for kind, records in lab.all_series(folder).items()
                            if shown(kind, with_controls)}
                      for run, folder in group.items()}
              for label, group in groups.items()}
    charts.chart(compare.compare(series, metric, axis), key="compare")
    st.dataframe(group_table(groups, with_controls), hide_index=True)
    parallel_view(runs, configs)
    tradeoff_view(runs, configs)
