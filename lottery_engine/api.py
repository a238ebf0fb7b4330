"""The Python API for notebooks: `find_ticket(model, (x, y))` runs IMP on an in-memory model.

It writes an ordinary run folder (the model as a `.keras` file, the arrays as an uncompressed
`.npz`, so the folder is complete and resumable like any other), shows the command line's progress
lines and returns the records and the winning ticket.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import keras
import numpy as np

from . import pipeline, preflight
from .config import load as config_lib
from .config.load import Config, ConfigError
from .foundations import runfolder
from .foundations.round_record import RoundRecord
from .lottery.progress import ProgressBar

Arrays = tuple[np.ndarray, np.ndarray]
DATA_FILE = "data.npz"


@dataclass
class TicketResult:
    """What `find_ticket` found: the run folder, every round's record and the winning ticket."""

    run_dir: Path
    records: list[RoundRecord]
    ticket: dict | None  # winning_ticket.json; None when no pruned round ran

    @property
    def ticket_path(self) -> Path | None:
        return self.run_dir / runfolder.TICKET_MODEL if self.ticket else None

    @cached_property
    def model(self) -> keras.Model | None:
        """The winning ticket as a plain Keras model (pruned weights exactly 0)."""
        path = self.ticket_path
        return keras.saving.load_model(path, safe_mode=True) if path else None


def _sections() -> dict[str, list[str]]:
    return {f.name: [g.name for g in dataclasses.fields(f.default_factory)]
            for f in dataclasses.fields(Config)}


def settings_to_raw(settings: dict[str, Any]) -> dict[str, dict]:
    """Config keys without their section (`num_rounds=3`) placed in their section; a key that
    no section has, or that two have (`name`), is a ConfigError saying how to write it."""
    sections = _sections()
    aliases = {plan: (section, key) for section, names in config_lib.PLAN_ALIASES.items()
               for plan, key in names.items()}
    raw: dict[str, dict] = {}
    for key, value in settings.items():
        owners = [s for s, keys in sections.items() if key in keys]
        if key in aliases:
            owners, key = [aliases[key][0]], aliases[key][1]
        if len(owners) > 1:
            raise ConfigError(f"find_ticket({key}=...): ambiguous, a key of "
                              f"{' and '.join(owners)}; write it as {owners[0]}_{key}=... ")
        if not owners:
            section, _, rest = key.partition("_")
            if section in sections and rest in sections[section]:
                owners, key = [section], rest
            else:
                every = sorted({k for keys in sections.values() for k in keys})
                raise ConfigError(f"find_ticket({key}=...): unknown setting."
                                  f"{config_lib.did_you_mean(key, every)}")
        raw.setdefault(owners[0], {})[key] = value
    return raw


def _save_arrays(path: Path, train: Arrays, val: Arrays | None, test: Arrays | None) -> None:
    parts = {"train": train, "val": val, "test": test}
    arrays = {}
    for part, pair in parts.items():
        if pair is not None:
            arrays[f"x_{part}"], arrays[f"y_{part}"] = np.asarray(pair[0]), np.asarray(pair[1])
    np.savez(path, **arrays)  # uncompressed: the run reads it memory-mapped


def find_ticket(model: keras.Model, train: Arrays, *, test: Arrays | None = None,
                val: Arrays | None = None, out: str | Path | None = None,
                **settings: Any) -> TicketResult:
    """Run IMP on `model` (its current weights are θ0) with `train` (and optional `val`/`test`)
    arrays; parts not given are split off `train` as for any run. `settings` are config keys
    without their section: num_rounds=, epochs=, prune_rate=, controls=, seed=, ..."""
    raw = settings_to_raw(settings)
    raw.setdefault("run", {}).setdefault("name", model.name)
    cfg_raw = {**raw, "train": {**raw.get("train", {}), "arch": "file"},
               "data": {**raw.get("data", {}), "source": "arrays"}}
    out = Path(out) if out else runfolder.new_run_dir(
        runfolder.runs_home(config_lib.from_dict({"run": raw["run"]})),
        raw["run"]["name"])
    out.mkdir(parents=True, exist_ok=True)
    _save_arrays(out / DATA_FILE, train, val, test)
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "model.keras"
        model.save(saved)
        cfg_raw["train"]["model_file"] = str(saved)
        cfg_raw["data"]["path"] = str((out / DATA_FILE).resolve())
        cfg = preflight.from_dict(cfg_raw)
        print(f"run folder: {out}", flush=True)
        summary = pipeline.execute(cfg, out, ProgressBar(cfg))
    return TicketResult(out, runfolder.read_rounds(out), summary["ticket"])
