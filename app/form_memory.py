"""The Launch form, kept for the session: its values and both uploads stay when a person goes to
Runs and comes back, until the run is queued or the form is reset.

Streamlit drops a widget's state at the end of a run of another page; the entry point re-saves
every form key (`keep_fields`) on every run, which makes it session state that outlives the page.
An uploader's value cannot be set back, so each upload is kept as the file it was stored to, and
the uploader offers to replace it; an uploader's key changes on reset, which empties it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from app.lab import plain

PREFIX = "launch."  # the keys of the form's widgets
UPLOADS = "_launch_uploads"  # uploader name -> the Upload it holds
GENERATION = "_launch_generation"  # how often the form was reset: part of the uploaders' keys
QUEUED = "_launch_queued"  # a run was queued: the next run of the page starts a fresh form


@dataclass(frozen=True)
class Upload:
    """A file the user uploaded: the name they gave it and where it is stored."""
    name: str
    path: Path


def keep_fields() -> None:
    """Re-save the form's values so that Streamlit keeps them while another page shows."""
    for key in [key for key in st.session_state if str(key).startswith(PREFIX)]:
        st.session_state[key] = st.session_state[key]


def uploader_key(name: str) -> str:
    generation = st.session_state.get(GENERATION, 0)
    return f"{name}-{generation}" if generation else name


def _forget(name: str) -> None:
    """The user removed the file (or the browser did, to replace it): keep it no longer."""
    if st.session_state.get(uploader_key(name)) is None:
        st.session_state.get(UPLOADS, {}).pop(name, None)


def upload(name: str, label: str, types: list[str],
           save: Callable[[UploadedFile], Path]) -> Upload | None:
    """An uploader (`name` keys it) and the file it holds: the one just uploaded, stored by
    `save`, else the one kept from earlier in the session, which a caption names."""
    kept: dict[str, Upload] = st.session_state.setdefault(UPLOADS, {})
    given = st.file_uploader(label, type=types, key=uploader_key(name), on_change=_forget,
                             args=(name,))
    if given is not None:
        kept[name] = Upload(given.name, save(given))
    elif name in kept:
        st.caption(f"Using {plain(kept[name].name)}, uploaded earlier; upload another file "
                   f"to replace it.")
    return kept.get(name)


def fresh_after_queue() -> None:
    """Reset the form once, before its widgets, on the first run after a run was queued."""
    if st.session_state.pop(QUEUED, False):
        reset()


def reset() -> None:
    """Every field back to its default and both uploaders empty."""
    for key in [key for key in st.session_state if str(key).startswith(PREFIX)]:
        del st.session_state[key]
    st.session_state.pop(UPLOADS, None)
    st.session_state[GENERATION] = st.session_state.get(GENERATION, 0) + 1
