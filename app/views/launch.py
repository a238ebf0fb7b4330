"""Launch a run: a form over the quickstart defaults (a built-in network and dataset, or the
user's own .keras model and .npz/.csv data, summarised before anything is queued), or a YAML config
pasted, uploaded or edited."""

import streamlit as st
import yaml
from streamlit.delta_generator import DeltaGenerator

from app import lab, user_files
from jobs import queue
from lottery_engine import config as config_lib

st.title("Launch a run")
root = lab.home()
lab.no_worker_banner(root)
base = lab.quickstart_raw()


def error_key(exc: Exception) -> str:
    """The config key a refusal starts with."""
    return str(exc).split(":")[0].split(" ")[0]


def submit(raw_or_text: dict | str, fields: tuple[str, ...] = (), summarised: bool = False) -> None:
    """Queue a config, after the model summary where the user's model or data needs one (shown
    here unless the form's preview already shows it: `summarised`). A refusal is shown in the
    validator's words next to the field it names (for a key in `fields`), else above the button."""
    st.session_state.pop("launch_error", None)
    try:
        if isinstance(raw_or_text, str):
            cfg = config_lib.loads(raw_or_text)
        else:
            cfg = config_lib.from_dict(raw_or_text)
        answer = user_files.summary(cfg)
        job_id = queue.submit(cfg, root)
    except config_lib.ConfigError as exc:
        key = error_key(exc)
        if key in fields:
            st.session_state["launch_error"] = (key, str(exc))
            st.rerun()
        st.error(f"Not queued: {lab.plain(exc)}")
        return
    if answer and not summarised:
        user_files.show_summary(answer)
    st.success(f"Queued job {job_id}.")
    st.page_link("views/run.py", label=f"Watch {job_id}", icon=":material/monitoring:",
                 query_params={"job": job_id})


def explain(key: str) -> None:
    """The last refusal, under the field whose key it names."""
    error = st.session_state.get("launch_error")
    if error and error[0] == key:
        st.error(f"Not queued: {lab.plain(error[1])}")


def field(key: str, widget, *args, **kwargs):
    value = widget(*args, **kwargs)
    explain(key)
    return value


OWN_MODEL, OWN_DATA = "my own model (.keras)", "my own data (.npz / .csv)"
ARCHS = [*config_lib.BUILTIN_ARCHS, OWN_MODEL]
SOURCES = {"bundled digits": "bundled", "image folder": "folder", "keras dataset": "keras",
           OWN_DATA: "arrays"}
FIELDS = ("train.arch", "data.data_dir", "data.name", "data.image_size", "data.channels",
          "data.limit_total", "imp.num_rounds", "imp.prune_rate", "imp.scope",
          "imp.target_sparsity", "imp.rewind", "imp.controls", "train.epochs", "train.batch_size",
          "train.learning_rate", "run.seed", "run.device", "run.name")


def preview(raw: dict, model_note: DeltaGenerator, data_note: DeltaGenerator) -> bool:
    """Check the form's config with the user's model or data as it would be queued, before Queue
    run is pressed: the summary goes under the model, a refusal under the model or the data it
    names (a form field's refusal is explained at that field when Queue run is pressed).
    True when a refusal is shown, so nothing may be queued."""
    try:
        answer = user_files.summary(config_lib.from_dict(raw))
    except config_lib.ConfigError as exc:
        key = error_key(exc)
        if key in FIELDS:
            return False
        with (data_note if key.startswith("data.") else model_note):
            st.error(f"Cannot be queued: {lab.plain(exc)}")
        return True
    with model_note:
        user_files.show_summary(answer)
    return False


form_tab, yaml_tab = st.tabs(["Form", "YAML"])
with form_tab:
    d, t, i, r = base["data"], base["train"], base["imp"], base["run"]
    model_col, data_col = st.columns(2)  # outside the form: choosing one shows its uploader
    with model_col:
        arch = field("train.arch", st.selectbox, "Architecture", ARCHS,
                     index=ARCHS.index(t["arch"]))
        model_upload = st.file_uploader(
            "Keras model (.keras, saved with model.save)", type=["keras"],
            key="model_upload") if arch == OWN_MODEL else None
        model_note = st.container()
    with data_col:
        source = st.radio("Dataset", list(SOURCES), horizontal=True)
        data_upload, label = None, ""
        if source == OWN_DATA:
            data_upload = st.file_uploader(
                "Data (.npz with x_train, y_train; or .csv with a header)", type=["npz", "csv"],
                key="data_upload")
            label = st.text_input("Label column (.csv only)", key="label")
        data_note = st.container()
    with st.form("launch"):
        c1, c2, c3 = st.columns(3)
        with c1:
            st.subheader("Data")
            data_dir = field("data.data_dir", st.text_input, "Image folder path",
                             placeholder="/data/dogs-vs-cats/train")
            keras_name = field("data.name", st.selectbox, "Keras dataset",
                               config_lib.KERAS_DATASETS)
            size = field("data.image_size", st.number_input, "Image size (pixels, square)",
                         value=d["image_size"][0], step=1)
            channels = field("data.channels", st.selectbox, "Channels", [1, 3],
                             index=[1, 3].index(d["channels"]))
            limit = field("data.limit_total", st.number_input, "Limit total images (0 = all)",
                          value=d["limit_total"] or 0, step=100)
        with c2:
            st.subheader("Pruning")
            rounds = field("imp.num_rounds", st.number_input,
                           "Pruning rounds (after the dense round 0)", value=i["num_rounds"],
                           step=1)
            rate = field("imp.prune_rate", st.number_input, "Prune rate per round",
                         value=float(i["prune_rate"]), step=0.05)
            scope = field("imp.scope", st.selectbox, "Scope", config_lib.SCOPES,
                          index=config_lib.SCOPES.index(i["scope"]))
            target = field("imp.target_sparsity", st.number_input, "Target sparsity",
                           value=float(i["target_sparsity"]), step=0.05)
            rewind = field("imp.rewind", st.text_input, "Rewind (init, epoch:K or step:N)",
                           i["rewind"])
            controls = field("imp.controls", st.multiselect, "Controls", config_lib.CONTROLS,
                             i["controls"])
        with c3:
            st.subheader("Training")
            epochs = field("train.epochs", st.number_input, "Epochs per round", value=t["epochs"],
                           step=1)
            batch = field("train.batch_size", st.number_input, "Batch size", value=t["batch_size"],
                          step=1)
            lr = field("train.learning_rate", st.number_input, "Learning rate",
                       value=float(t["learning_rate"]), step=1e-4, format="%.5f")
            seed = field("run.seed", st.number_input, "Seed", value=r["seed"], step=1)
            device = field("run.device", st.selectbox, "Device", ["cpu", "gpu", "auto"])
            name = field("run.name", st.text_input, "Run name", r["name"])
        queued = st.form_submit_button("Queue run", type="primary")
    train = {"arch": arch}
    if arch == OWN_MODEL:  # without an upload, validation names train.model_file
        train = {"arch": "file", "model_file": None if model_upload is None
                 else str(user_files.saved_model(model_upload, root))}
    data = {"source": SOURCES[source]}
    if data_upload is not None:
        own_source, path = user_files.saved_data(data_upload, root)
        data = {"source": own_source, "path": str(path), "label": label.strip() or None}
    raw = {**base,
           "run": {**r, "name": name, "seed": int(seed), "device": device},
           "data": {**d, **data, "name": keras_name if SOURCES[source] == "keras" else d["name"],
                    "data_dir": data_dir or None, "image_size": [int(size), int(size)],
                    "channels": int(channels), "limit_total": int(limit) or None},
           "train": {**t, **train, "epochs": int(epochs), "batch_size": int(batch),
                     "learning_rate": float(lr)},
           "imp": {**i, "num_rounds": int(rounds), "prune_rate": float(rate), "scope": scope,
                   "target_sparsity": float(target), "rewind": rewind.strip(),
                   "controls": list(controls)}}
    own = arch == OWN_MODEL or source == OWN_DATA
    files_given = (model_upload is not None or arch != OWN_MODEL) and \
        (data_upload is not None or source != OWN_DATA)
    refused = own and (files_given or queued) and preview(raw, model_note, data_note)
    if queued and not refused:
        submit(raw, FIELDS, summarised=own)

with yaml_tab:
    uploaded = st.file_uploader("Upload a YAML config", type=["yaml", "yml"])
    if uploaded is not None and st.session_state.get("_uploaded") != uploaded.file_id:
        st.session_state["_uploaded"] = uploaded.file_id  # a new file replaces the text once
        st.session_state["yaml_text"] = uploaded.getvalue().decode("utf-8", "replace")
    st.session_state.setdefault("yaml_text", yaml.safe_dump(base, sort_keys=False))
    text = st.text_area("Config (paste or edit)", height=420, key="yaml_text")
    if st.button("Queue this config", type="primary"):
        submit(text)
