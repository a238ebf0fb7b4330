"""A form's refusals in a person's words. The validator speaks config (`data.path: invalid value
None; …`), which is right for a YAML file and wrong for a form: there a refusal starts with the
field's own label, says "upload" for a missing upload, names the user's file as they uploaded it
rather than the hashed name it is stored under, and leaves the config key to a small caption for
those who know the config reference. The words of a choice a form offers by name (granularity,
refill) live here too, so that the Launch and Experiments forms say the same."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lottery_engine.config.schema import ConfigError

# what a form says for an upload it has not been given (the validator's "invalid value None")
MISSING = {
    "train.model_file": "upload your model: a .keras file saved with model.save(...).",
    "data.path": "upload your data: a .npz file with x_train and y_train (x_test and y_test "
                 "if you have them), or a .csv file with a header row and a label column.",
}
_INVALID = re.compile(r"^invalid value (?P<value>.+?); (?P<allowed>.+)$", re.S)
# refusals that name another config key, as a form says them: key -> (the validator's words,
# a person's, filled from the first's groups)
BETWEEN = {
    "imp.refill": (re.compile(r"IMP-Refill keeps whole channels"),
                   "it keeps whole channels, so it needs them pruned: choose whole channels "
                   "under What to prune, or turn refill off."),
    "imp.granularity": (re.compile(r"no pruned layer of (?P<arch>\S+) can lose whole units "
                                   r"\((?P<why>.+)\); use granularity"),
                        "no pruned layer of {arch} can lose whole units ({why}): choose single "
                        "weights, or prune one of those layers (imp.prunable_layers)."),
}
# imp.granularity's choices, and what each buys (docs/channels.md)
GRANULARITY = {"weight": "single weights", "channel": "whole channels"}
GRANULARITY_HELP = ("Single weights find the sparsest ticket and the smallest file, hardly a "
                    "faster one; whole channels (a conv filter, a Dense unit) leave a narrower "
                    "dense network that the compact export makes faster on any hardware.")
REFILL_HELP = ("IMP-Refill prunes single weights each round, then makes dense again the channels "
               "that kept the most of them and drops the rest: a channel ticket that keeps its "
               "accuracy to higher sparsities than whole channels alone (Chen et al., 2022).")
_UNKNOWN = re.compile(r"^unknown value (?P<value>.+?); allowed: (?P<allowed>.+)$", re.S)


@dataclass(frozen=True)
class Refusal:
    """One refusal as a form shows it: `text` for a person, `key` for the caption."""
    text: str
    key: str


def detail(error: ConfigError) -> str:
    """The refusal without its leading config key."""
    text, key = str(error), error.key
    return text[len(key) + 1:].strip() if text.startswith(f"{key}:") else text


def own_names(text: str, names: dict[Path, str]) -> str:
    """`text` with each stored upload (full path first, then its hashed file name) replaced by the
    name the user gave the file."""
    for stored, name in names.items():
        text = text.replace(str(stored), name).replace(stored.name, name)
    return text


def for_person(error: ConfigError, labels: dict[str, str],
               names: dict[Path, str] | None = None) -> Refusal:
    """`error` worded for the form whose fields are `labels` (config key -> field label) and
    whose uploads are `names` (stored path -> the user's file name)."""
    key, text = error.key, own_names(detail(error), names or {})
    if key in MISSING and text.startswith("invalid value None"):
        return Refusal(MISSING[key][0].upper() + MISSING[key][1:], key)
    rule = BETWEEN.get(key)
    if rule and (between := rule[0].search(text)):
        text = rule[1].format(**between.groupdict())
    elif match := _INVALID.match(text):
        allowed = re.sub(r"^expected ", "give ", match["allowed"])
        text = f"{match['value']} does not work here; {allowed}"
    elif match := _UNKNOWN.match(text):
        text = f"{match['value']} is not one of the choices: {match['allowed']}"
    if label := labels.get(key):
        return Refusal(f"{label}: {text}", key)
    return Refusal(text if text.startswith(key) else text[:1].upper() + text[1:], key)
