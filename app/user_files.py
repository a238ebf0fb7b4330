"""The user's own model and data on the Launch page, checked without TensorFlow in the dashboard.

An upload is kept in the queue home by content hash, under the name the user gave it
(`models/<sha256[:16]>/convnet.keras`, `data/<sha256[:16]>/fmnist.npz`): the same bytes give the
same file, so a config that names it means one content, `queue.submit` can copy the model into the
job folder, and the run (its report, its downloaded config) still knows the file by its own name. Whether a model fits its
data (input shape, classes, logits or probabilities, what is prunable) is only known once Keras has
loaded it, so the page asks `python -m lottery_engine.model_summary` in a subprocess and caches its
answer by the config text.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.typing import UploadedFile

from app.lab import plain
from lottery_engine.config import load as config_lib
from lottery_engine.config import data_sources
from lottery_engine.config.architectures import ARCHITECTURES
from lottery_engine.config.data_sources import DATA_SOURCES
from lottery_engine.data import user_data
from lottery_engine.foundations import runfolder

ROOT = Path(__file__).resolve().parents[1]
MODELS, DATA = "models", "data"
SUFFIX_SOURCES = {suffix: source for source, suffix in data_sources.file_suffixes().items()}
MODEL_ONLY = "--model-only"  # model_summary.MODEL_ONLY, spelled here: that module imports Keras
SUMMARY_TIMEOUT = 300.0  # seconds: a large model on a busy machine loads slowly, but not this
FACTORY_REFUSAL = ("train.arch: factory runs your own Python code, which the dashboard does not "
                   "do; submit it from a shell: lottery submit --config FILE.")


def save_bytes(data: bytes, folder: Path, name: str) -> Path:
    """`folder/<sha256[:16]>/<name>`, written atomically once: a rerun or a second upload of
    the same bytes under the same name finds the file already there and never rewrites a file a
    job may be copying."""
    path = Path(folder).resolve() / hashlib.sha256(data).hexdigest()[:16] / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        runfolder.atomic_write(path, data)
    return path


def saved_upload(upload: UploadedFile, folder: Path, suffix: str) -> Path:
    """An upload's file (see save_bytes), hashed once per upload rather than on every rerun; its
    name made safe for a file name, with `suffix` (what the engine reads it as)."""
    saved = st.session_state.setdefault("_saved_uploads", {})
    path = saved.get(upload.file_id)
    if path is None or not path.is_file():
        name = f"{runfolder.slug(Path(upload.name).stem, 80)}{suffix}"
        path = saved[upload.file_id] = save_bytes(upload.getvalue(), folder, name)
    return path


def saved_model(upload: UploadedFile, home: Path) -> Path:
    return saved_upload(upload, Path(home) / MODELS, ".keras")


def saved_data(upload: UploadedFile, home: Path) -> tuple[str, Path]:
    """(data.source, saved file) of a data upload, by its suffix; a name the uploader should not
    have let through is read as an .npz, so the engine refuses it in its own words."""
    source = SUFFIX_SOURCES.get(Path(upload.name).suffix.lower(), "arrays")
    return source, saved_upload(upload, Path(home) / DATA, DATA_SOURCES[source].suffix)


def needs_summary(cfg: config_lib.Config) -> bool:
    """A user's model or data: only Keras can tell whether they fit each other."""
    return ARCHITECTURES[cfg.train.arch].own or DATA_SOURCES[cfg.data.source].suffix is not None


def _stamps(cfg: config_lib.Config) -> tuple:
    """Size and mtime of the files the config names: a file edited in place (a path typed into
    the YAML tab) is summarised again although the config text is the same."""
    paths = [p for p in (cfg.train.model_file, cfg.data.path) if p]
    return tuple((p, Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in paths)


class SummaryFailed(RuntimeError):
    """The subprocess ended without its JSON line; raised, so that st.cache_data keeps no entry
    and the next try asks again."""


SUMMARY_KEYS = {"train": ("arch", "weights", "freeze_base", "model_file", "factory", "init",
                          "loss"),
                "imp": ("prune_rate", "scope", "layer_rates", "prunable_layers")}


def summary_key(cfg: config_lib.Config) -> str:
    """What a summary depends on: the data, how the network is built and what is pruned at
    which rate; not the epochs, seed or run name, so that editing those (or pressing Queue)
    reuses the summary instead of loading the model with Keras again."""
    whole = cfg.to_dict()
    return json.dumps({"data": whole["data"], **{
        section: {key: whole[section][key] for key in keys}
        for section, keys in SUMMARY_KEYS.items()}}, sort_keys=True, default=str)


@st.cache_data(max_entries=64, show_spinner=False)  # the page says what it checks
def _summary_json(_config_text: str, key: str, stamps: tuple,
                  with_data: bool = True) -> dict[str, Any]:
    """model_summary's answer for a config (`key` and `stamps` key the cache: the text, not
    hashed, is only what the subprocess reads)."""
    command = [sys.executable, "-m", "lottery_engine.model_summary"]
    try:
        result = subprocess.run(command + ([] if with_data else [MODEL_ONLY]),
                                input=_config_text, capture_output=True, text=True, cwd=ROOT,
                                timeout=SUMMARY_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise SummaryFailed(f"took more than {SUMMARY_TIMEOUT:.0f} s") from None
    lines = result.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = result.stderr.strip().splitlines()[-1:] or [f"exit code {result.returncode}"]
        raise SummaryFailed(tail[0]) from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise SummaryFailed(f"unexpected answer {lines[-1][:200]}")
    return answer


def summary(cfg: config_lib.Config, with_data: bool = True) -> dict[str, Any] | None:
    """The model summary of a config with the user's model or data (None for built-ins). A model
    the run would refuse raises ConfigError in model_summary's words, so nothing is queued; so
    does a factory, whose code the dashboard never runs. Without data: the user's model alone,
    as soon as it is uploaded (the config's data is a stand-in)."""
    if cfg.train.arch == "factory":
        raise config_lib.ConfigError(FACTORY_REFUSAL)
    if not needs_summary(cfg):
        return None
    try:
        answer = _summary_json(config_lib.to_yaml(cfg), summary_key(cfg), _stamps(cfg),
                               with_data)
    except SummaryFailed as exc:
        raise config_lib.ConfigError(f"train.arch: the model could not be built to check it "
                                     f"against the data ({exc}).") from None
    if not answer["ok"]:
        raise config_lib.ConfigError(answer["error"])
    return answer


def show_summary(answer: dict[str, Any], with_data: bool = True) -> None:
    """What the run will do to the model: its layers with parameters and prune rates; with its
    data, that the two fit."""
    fit = (f"input {tuple(answer['input_shape'])}, {answer['classes']} classes, output "
           f"{answer['output']}" if with_data else
           f"its input {tuple(answer['input_shape'])} and {answer['classes']} outputs "
           f"({answer['output']}) are checked against your data once it is uploaded")
    st.caption(f"Model {plain(answer['model'])}: {answer['parameters']:,} parameters, "
               f"{answer['prunable_weights']:,} of them prunable; {fit}.")
    st.dataframe(answer["layers"], hide_index=True)


def show_data(cfg: config_lib.Config, name: str) -> None:
    """What the user's data file holds, the moment it is uploaded (read without TensorFlow):
    the shape of one example, the classes and the rows of each part. A ConfigError is the
    engine's refusal of the file."""
    outline = user_data.outline(cfg.data)
    rows = ", ".join(f"{part} {count:,}" for part, count in outline["rows"].items())
    split = "" if "test" in outline["rows"] else "; the run splits val and test off train"
    st.caption(f"{plain(name)}: examples of shape {tuple(outline['shape'])}, "
               f"{len(outline['classes'])} classes; rows: {rows}{split}.")
