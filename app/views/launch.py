"""Launch a run: a form over the quickstart defaults (a built-in network and dataset, or the
user's own .keras model and .npz/.csv data, summarised before anything is queued), or a YAML config
pasted, uploaded or edited."""

from pathlib import Path
from typing import Any, Callable

import streamlit as st
import yaml
from streamlit.delta_generator import DeltaGenerator

from app import form_memory, lab, user_files, wording
from jobs import queue
from lottery_engine import preflight
from lottery_engine.config import controls as control_registry, load as config_lib
from lottery_engine.config.architectures import ARCHITECTURES
from lottery_engine.config.data_sources import DATA_SOURCES

st.title("Launch a run")
root = lab.home()
lab.no_worker_banner(root)
base = lab.quickstart_raw()


def checked(raw_or_text: dict | str) -> tuple[config_lib.Config, dict[str, Any] | None]:
    """The config as it would be queued and the summary of the user's model or data (None for
    built-ins); a ConfigError carries every refusal."""
    cfg = (preflight.loads(raw_or_text) if isinstance(raw_or_text, str)
           else preflight.from_dict(raw_or_text))
    return cfg, user_files.summary(cfg)


def show_refusal(where: DeltaGenerator, verdict: str, refusal: wording.Refusal) -> None:
    """A refusal in red, its config key (if the words are a form's) in a caption under it."""
    where.error(f"{verdict}: {lab.plain(refusal.text)}")
    if refusal.key:
        where.caption(f"config key `{refusal.key}`")


def attempt(raw_or_text: dict | str, queued: bool, refused: str,
            place: Callable[[str], DeltaGenerator], summary_at: DeltaGenerator,
            say: Callable[[config_lib.ConfigError], wording.Refusal],
            checking: dict[DeltaGenerator, str], eager: bool = False,
            complete: bool = True) -> str | None:
    """Check a config, show each refusal where `place` puts its key (under its field), in the
    words `say` gives it, and queue it if Queue was pressed and nothing is refused. It is checked
    when Queue is pressed, on every rerun after a refusal (the session flag `refused`, cleared
    once queued) and when `eager`: what is shown always belongs to the values shown, so an error
    goes once its field is fixed and none outlives its rerun. A form whose upload is still
    missing (not `complete`) is checked only when Queue is pressed: a file not uploaded yet, or
    one being replaced, is not an error the user made. While the check runs, each place of
    `checking` says what it checks, which also clears what an earlier run left there.
    Returns the id of the job it queued, if any."""
    if not (queued or eager or (complete and st.session_state.get(refused))):
        return None
    notes = [where.empty() for where in checking]
    for note, text in zip(notes, checking.values()):
        note.caption(text)
    try:
        cfg, answer = checked(raw_or_text)
        job_id = queue.submit(cfg, root) if queued else None
    except config_lib.ConfigError as exc:
        st.session_state[refused] = True
        for error in exc.errors:
            show_refusal(place(error.key), "Not queued" if queued else "Cannot be queued",
                         say(error))
        return None
    finally:
        for note in notes:
            note.empty()
    if answer:
        with summary_at:
            user_files.show_summary(answer)
    if job_id:
        st.session_state.pop(refused, None)
        st.success(f"Queued {lab.plain(cfg.run.name)}.")
        st.page_link("views/run.py", label=f"Watch {lab.plain(cfg.run.name)}",
                     icon=":material/monitoring:", query_params={"job": job_id})
    return job_id


slots: dict[str, DeltaGenerator] = {}  # a form field's config key -> the place under it
labels = {"train.model_file": "Your model", "data.path": "Your data file",
          "data.label": "Label column"}  # a config key -> what the form calls it


def field(config_key: str, widget: Callable[..., Any], label: str, *args: Any,
          **kwargs: Any) -> Any:
    """A form widget, with a place under it for the refusals of its config key."""
    value = widget(label, *args, key=f"{form_memory.PREFIX}{config_key}", **kwargs)
    slots[config_key], labels[config_key] = st.container(), label
    return value


# the form's options: each registry entry's label, for the name it stands for
ARCH_LABELS = {arch.label: arch.name for arch in ARCHITECTURES.values() if arch.label}
SOURCE_LABELS = {source.label: source.name for source in DATA_SOURCES.values() if source.label}
OWN_MODEL = next(label for label, name in ARCH_LABELS.items() if name == "file")
OWN_DATA = next(label for label, name in SOURCE_LABELS.items() if name == "arrays")
DATA_KEYS = ("data.source", "data.path", "data.label")  # shown under the data uploader
MODEL_KEYS = ("train.model_file",)  # shown under the model uploader


def data_fields(source: str, d: dict[str, Any]) -> dict[str, Any]:
    """The data fields that apply to `source` (a data.source; "arrays": the user's own file),
    as its registry entry says, as config values; the rest keep the base's (`d`). The user's
    own files keep their own shape, so they have no image size or channels."""
    entry = DATA_SOURCES[source]
    values: dict[str, Any] = {}
    if entry.needs == "data.data_dir":
        values["data_dir"] = field("data.data_dir", st.text_input, "Image folder path",
                                   placeholder="/data/dogs-vs-cats/train") or None
    if entry.needs == "data.name" and len(entry.names) > 1:  # bundled: digits is all there is
        values["name"] = field("data.name", st.selectbox, str(entry.label).capitalize(),
                               entry.names)
    if entry.suffix is None:
        size = field("data.image_size", st.number_input, "Image size (pixels, square)",
                     value=d["image_size"][0], step=1)
        values["image_size"] = [int(size), int(size)]
        values["channels"] = int(field("data.channels", st.selectbox, "Channels", [1, 3],
                                       index=[1, 3].index(d["channels"])))
    values["limit_total"] = int(field("data.limit_total", st.number_input,
                                      "Limit total images (0 = all)",
                                      value=d["limit_total"] or 0, step=100)) or None
    return values


def suggest_name(upload: form_memory.Upload | None, default: str) -> None:
    """Name the run after the user's file (the model's, else the data's; else the config's
    name) until the user types a name of their own: a run of their network is not "quickstart".
    The suggestion follows the uploads while the field still holds the last suggestion."""
    key = f"{form_memory.PREFIX}run.name"
    suggested = Path(upload.name).stem if upload is not None else default
    if st.session_state.get(key, "") in ("", st.session_state.get("_suggested_name")):
        st.session_state[key] = suggested
    st.session_state["_suggested_name"] = suggested


def preview(where: DeltaGenerator, checking: str, keys: tuple[str, ...],
            say: Callable[[config_lib.ConfigError], wording.Refusal],
            show: Callable[[], None]) -> None:
    """Describe an upload under its uploader the moment it is there (`show`), saying what it
    checks meanwhile; a refusal of one of `keys` is shown there, any other is left to the check
    of the whole form."""
    note = where.empty()
    note.caption(checking)
    try:
        with where:
            show()
    except config_lib.ConfigError as exc:
        for error in exc.errors:
            if error.key in keys:
                show_refusal(where, "Cannot be queued", say(error))
    finally:
        note.empty()


form_memory.fresh_after_queue()
form_tab, yaml_tab = st.tabs(["Form", "YAML"])
with form_tab:
    d, t, i, r = base["data"], base["train"], base["imp"], base["run"]
    model_col, data_col = st.columns(2)  # outside the form: a choice reruns the page, showing
    # its uploader and only the form fields that apply to it
    with model_col:
        arch = field("train.arch", st.selectbox, "Architecture", list(ARCH_LABELS),
                     index=list(ARCH_LABELS.values()).index(t["arch"]))
        model_upload = form_memory.upload(
            "model_upload", "Keras model (.keras, saved with model.save)", ["keras"],
            lambda given: user_files.saved_model(given, root)) if arch == OWN_MODEL else None
        model_note = st.container()
    with data_col:
        source = st.radio("Dataset", list(SOURCE_LABELS), horizontal=True,
                          key=f"{form_memory.PREFIX}data.source")
        data_upload, label = None, ""
        if source == OWN_DATA:
            data_upload = form_memory.upload(
                "data_upload", "Data (.npz with x_train, y_train; or .csv with a header)",
                ["npz", "csv"], lambda given: user_files.saved_data(given, root)[1])
            label = st.text_input("Label column (.csv only)", key=f"{form_memory.PREFIX}label")
        data_note = st.container()
    suggest_name(model_upload or data_upload, r["name"])
    with st.container():  # no st.form: a value typed and not yet queued is kept too
        c1, c2, c3 = st.columns(3)
        with c1:
            st.subheader("Data")
            data_values = data_fields(SOURCE_LABELS[source], d)
        with c2:
            st.subheader("Pruning")
            rounds = field("imp.num_rounds", st.number_input,
                           "Pruning rounds (after the dense round 0)", value=i["num_rounds"],
                           step=1)
            rate = field("imp.prune_rate", st.number_input, "Prune rate per round",
                         value=float(i["prune_rate"]), step=0.05)
            scope = field("imp.scope", st.selectbox, "Scope", config_lib.SCOPES,
                          index=config_lib.SCOPES.index(i["scope"]))
            granularity = field("imp.granularity", st.selectbox, "What to prune",
                                list(wording.GRANULARITY), format_func=wording.GRANULARITY.get,
                                index=list(wording.GRANULARITY).index(i.get(
                                    "granularity", config_lib.ImpConfig.granularity)),
                                help=wording.GRANULARITY_HELP)
            refill = granularity == "channel" and field(  # meaningful only on whole channels
                "imp.refill", st.checkbox, "Refill (IMP-Refill)",
                value=i.get("refill", config_lib.ImpConfig.refill), help=wording.REFILL_HELP)
            target = field("imp.target_sparsity", st.number_input, "Target sparsity",
                           value=float(i["target_sparsity"]), step=0.05)
            rewind = field("imp.rewind", st.text_input, "Rewind (init, epoch:K or step:N)",
                           i["rewind"])
            controls = field("imp.controls", st.multiselect, "Controls", control_registry.names(),
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
            name = field("run.name", st.text_input, "Run name")
        above_button = st.container()  # refusals of keys without a field
        queue_col, reset_col = st.columns([1, 5])
        queued = queue_col.button("Queue run", type="primary")
        reset_col.button("Reset form", on_click=form_memory.reset,
                         help="Every field back to its default, both uploads removed")
    train = {"arch": ARCH_LABELS[arch]}
    names: dict[Path, str] = {}  # each upload's stored file -> the name the user gave it
    checking: dict[DeltaGenerator, str] = {}  # what each uploader's note says during a check
    if arch == OWN_MODEL:  # without an upload, validation names train.model_file
        train = {"arch": "file", "model_file": None}
        if model_upload is not None:
            train["model_file"] = str(model_upload.path)
            names[model_upload.path] = model_upload.name
            checking[model_note] = f"Checking {model_upload.name} with Keras…"
    data = {"source": SOURCE_LABELS[source]}
    if data_upload is not None:
        data = {"source": user_files.SUFFIX_SOURCES.get(data_upload.path.suffix, "arrays"),
                "path": str(data_upload.path), "label": label.strip() or None}
        names[data_upload.path] = data_upload.name
        checking[data_note] = f"Checking {data_upload.name}…"
    raw = {**base,
           "run": {**r, "name": name, "seed": int(seed), "device": device},
           "data": {**d, **data_values, **data},
           "train": {**t, **train, "epochs": int(epochs), "batch_size": int(batch),
                     "learning_rate": float(lr)},
           "imp": {**i, "num_rounds": int(rounds), "prune_rate": float(rate), "scope": scope,
                   "granularity": granularity, "refill": bool(refill),
                   "target_sparsity": float(target), "rewind": rewind.strip(),
                   "controls": list(controls)}}

    def place(key: str) -> DeltaGenerator:
        """Under the key's field, under the uploader it concerns, else above the button."""
        if key in slots:
            return slots[key]
        return data_note if key in DATA_KEYS else model_note if key in MODEL_KEYS else above_button

    own = arch == OWN_MODEL or source == OWN_DATA
    files_given = (model_upload is not None or arch != OWN_MODEL) and \
        (data_upload is not None or source != OWN_DATA)

    def say(error: config_lib.ConfigError) -> wording.Refusal:
        return wording.for_person(error, labels, names)

    if model_upload is not None and not files_given:  # the model alone, its data to come
        preview(model_note, f"Checking {model_upload.name} with Keras…", MODEL_KEYS, say,
                lambda: user_files.show_summary(user_files.summary(preflight.from_dict(
                    {**raw, "data": d}), with_data=False), with_data=False))
    if data_upload is not None:  # the data alone; with a model too, the fit check says more
        preview(data_note, f"Reading {data_upload.name}…", () if files_given else DATA_KEYS,
                say, lambda: user_files.show_data(config_lib.from_dict({"data": raw["data"]}),
                                                  data_upload.name))
    if attempt(raw, queued, f"{form_memory.PREFIX}refused", place, model_note,
               say, checking,
               eager=own and files_given, complete=files_given):
        st.session_state[form_memory.QUEUED] = True  # the next visit starts a fresh form

with yaml_tab:
    uploaded = st.file_uploader("Upload a YAML config", type=["yaml", "yml"])
    if uploaded is not None and st.session_state.get("_uploaded") != uploaded.file_id:
        st.session_state["_uploaded"] = uploaded.file_id  # a new file replaces the text once
        st.session_state["yaml_text"] = uploaded.getvalue().decode("utf-8", "replace")
    st.session_state.setdefault("yaml_text", yaml.safe_dump(base, sort_keys=False))
    text = st.text_area("Config (paste or edit)", height=420, key="yaml_text")
    refusals = st.container()  # no field but the text: every refusal above the button
    clicked = st.button("Queue this config", type="primary")
    attempt(text, clicked, "yaml_refused", lambda key: refusals, st.container(),
            lambda error: wording.Refusal(str(error), ""),
            {refusals: "Checking the config (and its model and data, if your own)…"})
