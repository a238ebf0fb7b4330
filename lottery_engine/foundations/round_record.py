"""One round of one series: a line of `rounds.jsonl` (SPEC §4), written by the IMP loop and its
controls and read by the reports, the write-up, the worker and the dashboard.

The fields are declared in the order they are written, so a record of today's engine goes to disk
byte for byte as the dict it replaced did. `from_json` reads every format the engine has written:
the fields each later version added get, once and here, the value readers assumed before they
existed (the round's end for its early-stop point, Keras' fit for its training path). Optional
fields hold None when absent and are not written then; a new one is one more line at the end, and
keys this version does not know are kept in `extra` and written back after the others.

It reads as a read-only mapping of its JSON keys too (`record["val_accuracy"]`), for readers that
pick a metric by name (imp.select_metric, a table's columns). TensorFlow-free.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

STACKED = "stacked"  # train_step of a round whose ticket and controls trained as one stack

# Fields added after the first format (2026-11-25), with what a record written before them means.
# early_stop_* are filled from the round's end in `from_json` (no curve: the end was all there was).
_ADDED_LATER: dict[str, Any] = {
    "start_step": 0, "steps": 0, "stopped_early": False,  # 2026-11-26, with the early-stop point
    "kept_weights": "final",  # 2026-12-06: val_*/test_* were always of the final weights before
    "train_step": "keras",  # 2026-12-01: Keras' fit was the only path before the fused step
}


@dataclass(kw_only=True)
class RoundRecord(Mapping):
    """What one round of one series (`imp`, or a control) trained to and measured."""

    round: int
    series: str
    global_sparsity: float
    layer_sparsity: dict[str, float]
    remaining_prunable: int
    total_prunable: int
    remaining_total: int
    total_params: int
    val_accuracy: float
    val_f1: float
    val_precision: float
    val_recall: float
    val_loss: float
    test_accuracy: float
    test_f1: float
    test_precision: float
    test_recall: float
    test_loss: float
    flops: int
    layer_flops: dict[str, int]
    inference_ms: float  # per sample, the median of repeated calls (evaluation/timing.py)
    inference_ms_range: list[float] | None = None  # its fastest and slowest calls (since 12-07)
    train_seconds: float
    epochs: int
    start_step: int  # round 0's step clock: 0 for round 0, the rewind step k after it
    steps: int  # the step the round ended at
    stopped_early: bool
    kept_weights: str  # which weights val_*/test_* are of ("final", or the early-stop point's)
    train_step: str  # the training path: "fused", "keras" or STACKED
    jit_compile: bool | None = None  # the fused step's XLA choice (absent on Keras' fit)
    probe_ms_per_step: dict[str, float | None] | None = None  # jit_compile: auto's timing
    xla_refused: str | None = None  # why XLA could not compile the step, under auto
    # why rounds >= 1 trained their series one after another (asked from round 1 on when a stack
    # was possible); written as null on a stacked round, where nothing refused
    stack_refused: str | None = None
    early_stop_step: int
    early_stop_val_loss: float
    early_stop_val_accuracy: float
    early_stop_test_accuracy: float
    val_curve: list[list[float]]  # [step, val loss, val accuracy] at each validation
    history: dict[str, list[float]]  # per-epoch logs
    stacked_series: int | None = None  # how many series the stack trained
    # channel granularity only (pruning/channels.py): per unit layer the fraction of its units
    # removed, the units left of all unit layers' units, and why each other kernel keeps its width
    layer_channel_sparsity: dict[str, float] | None = None
    remaining_units: int | None = None
    total_units: int | None = None
    kept_width: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a newer writer, kept as read

    def to_json(self) -> dict[str, Any]:
        """The record as written to `rounds.jsonl`: declared fields in order, absent optional
        ones left out, then `extra`."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                out.update(value)
            elif value is not None or (f.name == "stack_refused" and self.train_step == STACKED):
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RoundRecord:
        """A record of any format the engine has written (see `_ADDED_LATER`)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        values = _ADDED_LATER | {k: v for k, v in raw.items() if k in known}
        values.setdefault("early_stop_step", values["steps"])
        values.setdefault("early_stop_val_loss", raw["val_loss"])
        values.setdefault("early_stop_val_accuracy", raw["val_accuracy"])
        values.setdefault("early_stop_test_accuracy", raw["test_accuracy"])
        values.setdefault("val_curve", [])
        return cls(**values, extra={k: v for k, v in raw.items() if k not in known})

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def __len__(self) -> int:
        return len(self.to_json())
