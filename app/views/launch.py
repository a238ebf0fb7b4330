"""Launch a run: a form over the quickstart defaults, or a YAML config pasted, uploaded or edited."""

import streamlit as st
import yaml

from app import lab
from jobs import queue
from lottery_engine import config as config_lib

st.title("Launch a run")
root = lab.home()
lab.no_worker_banner(root)
base = lab.quickstart_raw()


def submit(raw_or_text, fields: tuple[str, ...] = ()) -> None:
    """Queue a config. A refusal is shown in the validator's words next to the field it names
    (for a key in `fields`), else above the button."""
    st.session_state.pop("launch_error", None)
    try:
        if isinstance(raw_or_text, str):
            cfg = config_lib.loads(raw_or_text)
        else:
            cfg = config_lib.from_dict(raw_or_text)
        job_id = queue.submit(cfg, root)
    except config_lib.ConfigError as exc:
        key = str(exc).split(":")[0].split(" ")[0]
        if key in fields:
            st.session_state["launch_error"] = (key, str(exc))
            st.rerun()
        st.error(f"Not queued: {lab.plain(exc)}")
        return
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


SOURCES = {"bundled digits": "bundled", "image folder": "folder", "keras dataset": "keras"}
FIELDS = ("train.arch", "data.data_dir", "data.name", "data.image_size", "data.channels",
          "data.limit_total", "imp.num_rounds", "imp.prune_rate", "imp.scope",
          "imp.target_sparsity", "imp.rewind", "imp.controls", "train.epochs", "train.batch_size",
          "train.learning_rate", "run.seed", "run.device", "run.name")
form_tab, yaml_tab = st.tabs(["Form", "YAML"])
with form_tab, st.form("launch"):
    d, t, i, r = base["data"], base["train"], base["imp"], base["run"]
    c1, c2, c3 = st.columns(3)
    with c1:
        st.subheader("Model and data")
        arch = field("train.arch", st.selectbox, "Architecture", config_lib.ARCHS,
                     index=config_lib.ARCHS.index(t["arch"]))
        source = st.radio("Dataset", list(SOURCES), horizontal=True)
        data_dir = field("data.data_dir", st.text_input, "Image folder path",
                         placeholder="/data/dogs-vs-cats/train")
        keras_name = field("data.name", st.selectbox, "Keras dataset", config_lib.KERAS_DATASETS)
        size = field("data.image_size", st.number_input, "Image size (pixels, square)",
                     value=d["image_size"][0], step=1)
        channels = field("data.channels", st.selectbox, "Channels", [1, 3],
                         index=[1, 3].index(d["channels"]))
        limit = field("data.limit_total", st.number_input, "Limit total images (0 = all)",
                      value=d["limit_total"] or 0, step=100)
    with c2:
        st.subheader("Pruning")
        rounds = field("imp.num_rounds", st.number_input,
                       "Pruning rounds (after the dense round 0)", value=i["num_rounds"], step=1)
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
    if st.form_submit_button("Queue run", type="primary"):
        raw = {**base,
               "run": {**r, "name": name, "seed": int(seed), "device": device},
               "data": {**d, "source": SOURCES[source],
                        "name": keras_name if SOURCES[source] == "keras" else d["name"],
                        "data_dir": data_dir or None, "image_size": [int(size), int(size)],
                        "channels": int(channels), "limit_total": int(limit) or None},
               "train": {**t, "arch": arch, "epochs": int(epochs), "batch_size": int(batch),
                         "learning_rate": float(lr)},
               "imp": {**i, "num_rounds": int(rounds), "prune_rate": float(rate), "scope": scope,
                       "target_sparsity": float(target), "rewind": rewind.strip(),
                       "controls": list(controls)}}
        submit(raw, FIELDS)

with yaml_tab:
    uploaded = st.file_uploader("Upload a YAML config", type=["yaml", "yml"])
    if uploaded is not None and st.session_state.get("_uploaded") != uploaded.file_id:
        st.session_state["_uploaded"] = uploaded.file_id  # a new file replaces the text once
        st.session_state["yaml_text"] = uploaded.getvalue().decode("utf-8", "replace")
    st.session_state.setdefault("yaml_text", yaml.safe_dump(base, sort_keys=False))
    text = st.text_area("Config (paste or edit)", height=420, key="yaml_text")
    if st.button("Queue this config", type="primary"):
        submit(text)
