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


def submit(raw_or_text) -> None:
    """Queue a config; show the engine's message beside the form when it is refused."""
    try:
        if isinstance(raw_or_text, str):
            cfg = config_lib.loads(raw_or_text)
        else:
            cfg = config_lib.from_dict(raw_or_text)
        job_id = queue.submit(cfg, root)
    except config_lib.ConfigError as exc:
        st.error(f"Not queued: {exc}")
        return
    st.success(f"Queued job {job_id}.")
    st.page_link("views/run.py", label=f"Watch {job_id}", icon=":material/monitoring:",
                 query_params={"job": job_id})


SOURCES = {"bundled digits": "bundled", "image folder": "folder", "keras dataset": "keras"}
form_tab, yaml_tab = st.tabs(["Form", "YAML"])
with form_tab, st.form("launch"):
    d, t, i, r = base["data"], base["train"], base["imp"], base["run"]
    c1, c2, c3 = st.columns(3)
    with c1:
        st.subheader("Model and data")
        arch = st.selectbox("Architecture", config_lib.ARCHS, index=config_lib.ARCHS.index(t["arch"]))
        source = st.radio("Dataset", list(SOURCES), horizontal=True)
        data_dir = st.text_input("Image folder path", placeholder="/data/dogs-vs-cats/train")
        keras_name = st.selectbox("Keras dataset", config_lib.KERAS_DATASETS)
        size = st.number_input("Image size (pixels, square)", 8, 512, d["image_size"][0])
        channels = st.selectbox("Channels", [1, 3], index=[1, 3].index(d["channels"]))
        limit = st.number_input("Limit total images (0 = all)", 0, None, d["limit_total"] or 0)
    with c2:
        st.subheader("Pruning")
        rounds = st.number_input("Rounds", 0, 100, i["num_rounds"])
        rate = st.number_input("Prune rate per round", 0.0, 1.0, float(i["prune_rate"]), 0.05)
        scope = st.selectbox("Scope", config_lib.SCOPES, index=config_lib.SCOPES.index(i["scope"]))
        target = st.number_input("Target sparsity", 0.0, 1.0, float(i["target_sparsity"]), 0.05)
        rewind = st.text_input("Rewind (init or epoch:K)", i["rewind"])
        controls = st.multiselect("Controls", config_lib.CONTROLS, i["controls"])
    with c3:
        st.subheader("Training")
        epochs = st.number_input("Epochs per round", 1, 1000, t["epochs"])
        batch = st.number_input("Batch size", 1, 4096, t["batch_size"])
        lr = st.number_input("Learning rate", 0.0, 10.0, float(t["learning_rate"]), format="%.5f")
        seed = st.number_input("Seed", 0, None, r["seed"])
        device = st.selectbox("Device", ["cpu", "gpu", "auto"])
        name = st.text_input("Run name", r["name"])
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
        submit(raw)

with yaml_tab:
    uploaded = st.file_uploader("Upload a YAML config", type=["yaml", "yml"])
    if uploaded is not None and st.session_state.get("_uploaded") != uploaded.file_id:
        st.session_state["_uploaded"] = uploaded.file_id  # a new file replaces the text once
        st.session_state["yaml_text"] = uploaded.getvalue().decode("utf-8", "replace")
    st.session_state.setdefault("yaml_text", yaml.safe_dump(base, sort_keys=False))
    text = st.text_area("Config (paste or edit)", height=420, key="yaml_text")
    if st.button("Queue this config", type="primary"):
        submit(text)
