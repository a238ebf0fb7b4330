"""Experiments: launch one config over several seeds with its controls, or a grid over one or two
of its keys (one arm per combination), watch all its jobs, see the grouped figures (accuracy and
iteration at early stop vs weights remaining) grow as series finish, download the write-up."""

import time
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from app import charts, lab, wording
from jobs import experiments, queue
from lottery_engine import preflight
from lottery_engine.config import controls, load as config_lib
from lottery_engine.foundations import yaml_text
from lottery_engine.report import compare as report
from lottery_engine.science import experiment as experiment_lib
from lottery_engine.science import instability_section, over_seeds, writeup

WRITE_UP_WAIT = 300.0  # seconds after the last job's end to wait for its write-up (it exports)
GRID_ROWS = 2  # config keys a launch may sweep (an experiment file's `grid` takes any number)
FIELD_LABELS = {"imp.num_rounds": "Pruning rounds", "train.epochs": "Epochs per round",
                "imp.prune_rate": "Prune rate per round", "imp.controls": "Controls",
                "imp.target_sparsity": "Target sparsity", "imp.granularity": "What to prune",
                "imp.refill": "Refill (IMP-Refill)"}  # the form's settings: key -> label
REFILL = {None: "the config's", True: "on", False: "off"}
st.title("Experiments")
root = lab.home()
lab.no_worker_banner(root)


def experiment_config(text: str, base: Path, settings: dict[str, Any]) -> config_lib.Config:
    """The pasted config (else the chosen base) with the form's `settings` (config key: value;
    None keeps the config's) over it. Pasted text goes through the one size-limited reader and
    the one validator like any other, so text that is no config (a word, a list, `imp: 5`) is a
    one-line ConfigError, and a config with several bad values names each."""
    overrides = [config_lib.override(key, value) for key, value in settings.items()
                 if value is not None]
    return (preflight.loads(text, overrides=overrides) if text.strip()
            else preflight.load(base, overrides))


def refuse(exc: Exception, place: DeltaGenerator | None = None,
           labels: dict[str, str] | None = None) -> None:
    """Each refusal in its own line, under the button or in `place` (under the field it is
    about): a config's every bad value, or the queue's reason. A refusal of a form field
    (a key of `labels`, config key -> field label) is worded for a person, its key in a caption;
    the rest come from the pasted config or a grid row and speak config as those do."""
    where = st if place is None else place
    for reason in exc.errors if isinstance(exc, config_lib.ConfigError) else [exc]:
        if isinstance(reason, config_lib.ConfigError) and reason.key in (labels or {}):
            refusal = wording.for_person(reason, labels or {})
            where.error(f"Not queued: {lab.plain(refusal.text)}")
            where.caption(f"config key `{refusal.key}`")
        else:
            where.error(f"Not queued: {lab.plain(reason)}")


def grid_row(number: int) -> tuple[str, str, DeltaGenerator]:
    """One row of the grid: a config key, its values, and the place under them for a refusal."""
    key, values = st.columns([1, 2])
    return (key.text_input(f"Grid key {number}", placeholder="imp.prune_rate",
                           help="A config key, section.key: one arm per value (per combination "
                                "with the other row), each over every seed."),
            values.text_input(f"Grid values {number}", placeholder="0.2, 0.4",
                              help="Separated by commas, as in an experiment file's grid list: "
                                   "0.2, 0.4 or init, step:500."),
            st.container())


def grid_entry(key: str, values: str, number: int, grid: dict[str, list]) -> dict[str, list]:
    """A row as {key: values} ({} when blank). The values are read as the inside of a YAML list
    by the one size-limited reader, so they arrive typed as an experiment file's would."""
    key, values = key.strip(), values.strip()
    if not key and not values:
        return {}
    if not key or not values:
        raise config_lib.ConfigError(
            f"grid row {number}: give a config key and its values, e.g. imp.prune_rate and "
            f"0.2, 0.4.")
    if key in grid:
        raise config_lib.ConfigError(f"grid.{key}: the row above sweeps it already; give all "
                                     f"its values there.")
    try:
        return {key: yaml_text.parse(f"[{values}]", f"grid.{key}")}
    except yaml_text.YamlError as exc:
        raise config_lib.ConfigError(str(exc)) from None


def checked_grid(rows: list[tuple[str, str, DeltaGenerator]], name: str, cfg: config_lib.Config,
                 seeds: list[int]) -> dict[str, list] | None:
    """The rows' grid; each row is expanded alone first (its key, its values, the configs they
    make), so a refusal shows under the row it is about. None when any row was refused."""
    grid: dict[str, list] = {}
    refused = False
    for number, (key, values, place) in enumerate(rows, start=1):
        try:
            row = grid_entry(key, values, number, grid)
            if row:
                experiment_lib.grid_arms(name, cfg, row, seeds[:1])
        except config_lib.ConfigError as exc:
            refuse(exc, place)
            refused = True
        else:
            grid |= row
    return None if refused else grid


with st.expander("Launch an experiment", expanded=not experiments.list_experiments(root)):
    configs = lab.config_files()
    with st.form("experiment"):
        left, right = st.columns([2, 1])
        chosen = left.selectbox("Base config", list(configs), index=list(configs).index(
            "quickstart.yaml") if "quickstart.yaml" in configs else 0)
        text = left.text_area("…or paste a YAML config (used when not empty)", height=120)
        short = left.columns(3)  # blank: the config's own value; set: a shorter experiment
        settings = {
            key: column.number_input(FIELD_LABELS[key], value=None, step=step,
                                     placeholder="the config's")
            for column, (key, step) in zip(short, [("imp.num_rounds", 1), ("train.epochs", 1),
                                                   ("imp.prune_rate", 0.05)])}
        name = right.text_input("Experiment name", "Quickstart over seeds")
        seeds = right.number_input("Seeds", min_value=1, max_value=20, value=3, step=1)
        settings["imp.controls"] = right.multiselect(FIELD_LABELS["imp.controls"],
                                                     controls.names(),
                                                     list(controls.names()))
        settings["imp.target_sparsity"] = right.number_input(
            FIELD_LABELS["imp.target_sparsity"], value=0.9, step=0.05)
        prune, refill = left.columns(2)  # blank: the config's own choice
        settings["imp.granularity"] = prune.selectbox(
            FIELD_LABELS["imp.granularity"], [None, *wording.GRANULARITY],
            format_func=lambda g: wording.GRANULARITY.get(g, "the config's"),
            help=wording.GRANULARITY_HELP)
        settings["imp.refill"] = refill.selectbox(
            FIELD_LABELS["imp.refill"], list(REFILL), format_func=REFILL.get,
            help=f"{wording.REFILL_HELP} Only with whole channels.")
        st.caption("Optionally a grid over the config (blank rows: one arm).")
        rows = [grid_row(number) for number in range(1, GRID_ROWS + 1)]
        if st.form_submit_button("Queue experiment", type="primary"):
            label, seed_list = name.strip() or "experiment", list(range(int(seeds)))
            try:
                cfg = experiment_config(text, configs[chosen], settings)
                grid = checked_grid(rows, label, cfg, seed_list)
                if grid is not None:
                    exp, members = (experiment_lib.grid_arms(label, cfg, grid, seed_list) if grid
                                    else experiment_lib.one_arm(label, cfg, seed_list))
                    new_id = experiments.submit(exp, members, root)
                    st.session_state["chosen_experiment"] = new_id
                    st.success(f"Queued experiment {new_id}: {len(members)} jobs.")
            except (config_lib.ConfigError, queue.JobError) as exc:
                refuse(exc, labels={key: FIELD_LABELS[key] for key, value in settings.items()
                                    if value is not None})

known = experiments.list_experiments(root)
if not known:
    st.info("No experiments yet. Launch one above, or from a terminal: "
            "`lottery experiment --config configs/experiment_fashion.yaml`.")
    st.stop()
by_id = {m["id"]: m for m in known}
wanted = st.session_state.get("chosen_experiment") or st.query_params.get("experiment")
experiment_id = st.selectbox("Experiment", list(by_id), format_func=lambda i: by_id[i]["name"]
                             + f" · {i[-4:]}", index=list(by_id).index(wanted)
                             if wanted in by_id else 0)
st.query_params["experiment"] = experiment_id
written = experiments.folder(root, experiment_id) / experiments.RESULTS


def waiting(jobs: list[dict]) -> bool:
    """Jobs still to finish, or the write-up the last one's worker is making (a compact export
    per arm for its ticket to ship: minutes at most)."""
    if not experiments.finished(jobs):
        return True
    ended = max((j.get("finished", 0) for j in jobs), default=0)
    return not written.is_file() and time.time() - ended < WRITE_UP_WAIT


live = waiting(experiments.statuses(root, experiment_id))


@st.fragment(run_every=2.0 if live else None)
def experiment_view() -> None:
    jobs = experiments.statuses(root, experiment_id)
    done = sum(j["state"] in queue.FINISHED for j in jobs)
    fraction = experiments.fraction_done(jobs)
    st.progress(fraction, text=f"{done} of {len(jobs)} jobs finished · {100 * fraction:.0f}%")
    st.dataframe([{"arm": j["label"], "seed": j["seed"], "state": lab.state_text(j),
                   "progress": lab.progress_fraction(j), "now": lab.progress_text(j),
                   "worker": j.get("worker") or "", "node": lab.node_text(j),
                   "elapsed": lab.duration(lab.elapsed(j)), "error": j.get("error", "")} for j in jobs], hide_index=True,
                 column_config={"progress": st.column_config.ProgressColumn(
                     "progress", min_value=0.0, max_value=1.0)})
    folders = lab.experiment_folders(root, jobs)
    if not folders:
        st.info("The figures appear when every seed of an arm has finished its dense round.")
    else:
        results = {label: over_seeds.aggregate(by_seed) for label, by_seed in folders.items()}
        st.caption("Accuracy at early stop (test) and the early-stop iteration against weights "
                   "remaining, mean over seeds with their spread (the legend says which): the "
                   "rounds every "
                   "seed has finished so far.")
        figure = report.experiment_figure(results, writeup.SERIES_NAMES).update_layout(
            width=None, autosize=True)
        charts.chart(figure, key="experiment-figure")
        analysed = instability_section.analysed(folders)
        for label, series in results.items():
            with st.container(border=True):
                st.markdown(f"**{lab.plain(label)}** · {len(folders[label])} seed(s)")
                st.markdown("\n".join(f"- {lab.plain(line)}" for line in
                                      writeup.verdicts(series)))
                if label in analysed:  # the arm's `instability:`, as the write-up says it
                    st.markdown("\n".join(f"- {lab.plain(instability_section.verdict(line))}"
                                          for line in analysed[label].values()))
        if analysed:
            st.caption("Instability (Frankle et al., 2020): the error barrier between two copies "
                       "trained from round 0's weights after step k under a round's mask, in "
                       f"points, mean over seeds with its 95% interval; stable below "
                       f"{100 * instability_section.THRESHOLD:g} points, the dotted line.")
            charts.chart(instability_section.figure(analysed).update_layout(
                width=None, autosize=True), key="experiment-instability")
    if live and not waiting(jobs):
        st.rerun()  # the experiment ended: redraw once with the write-up, then stop polling


experiment_view()
if written.is_file():
    left, right = st.columns(2)
    left.download_button("Download RESULTS.md", written.read_bytes(), "RESULTS.md",
                         "text/markdown", icon=":material/download:")
    png = written.with_suffix(".png")
    if png.is_file():
        right.download_button("Download the figure (PNG)", png.read_bytes(), "RESULTS.png",
                              "image/png", icon=":material/image:")
    unstable = instability_section.figure_path(written)
    if unstable.is_file():
        right.download_button("Download the instability figure (PNG)", unstable.read_bytes(),
                              unstable.name, "image/png", icon=":material/image:")
elif not live:
    st.caption(f"No write-up yet: `lottery experiment --report {experiment_id}` makes it.")
