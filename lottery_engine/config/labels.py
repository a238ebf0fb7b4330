"""The one rule for the labels a user gives a run (its name, notes and tags), and how a label
written before the rule is shown: they appear in tables, titles, reports and terminals, so they
must show what they hold.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .values import fail

MAX_NAME = 100
# what a label (run name, notes, tags) may not hold; see check_text
_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # C0 and C1 but tab, line feed, return
_BREAKS = r"\t\n\r"
_DIRECTION = r"\u202a-\u202e\u2066-\u2069"  # embeddings, overrides, isolates
_SURROGATES = r"\ud800-\udfff"
_SURROGATE_RE = re.compile(f"[{_SURROGATES}]")
_DIRECTION_RE = re.compile(f"[{_DIRECTION}]")
_CONTROL_RE = re.compile(f"[{_CONTROLS}{_BREAKS}]")
_CONTROL_IN_LINES_RE = re.compile(f"[{_CONTROLS}]")
_UNSHOWABLE_RE = re.compile(f"[{_CONTROLS}{_DIRECTION}{_SURROGATES}]")
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")  # fillers drawn as nothing


def _visible(char: str) -> bool:
    """A letter, digit, punctuation mark or symbol that is drawn as something."""
    return unicodedata.category(char)[0] in "LNPS" and char not in _BLANK_LETTERS


def check_text(key: str, value: Any, limit: int, *, lines: bool = False,
               required: bool = True) -> None:
    """The one rule for the labels a user gives a run (its name, notes and tags). They are shown
    in tables, titles, reports and terminals, so they must show what they hold: refused are lone
    surrogates (half a UTF-16 pair, not a character: no page can encode one), direction overrides
    and isolates (U+202A-U+202E, U+2066-U+2069: they show text in another order than it is
    stored), control characters (terminal escape codes; line breaks and tabs only in `lines`
    text), and text with nothing visible (only spaces or zero-width characters). Blank text is
    refused only where it is `required`. Text in any script, emoji and joiners inside it pass."""
    if not isinstance(value, str):
        fail(key, value, "expected a string")
    if len(value) > limit:
        fail(key, value, f"at most {limit:,} characters (it is {len(value):,})")
    surrogate = _SURROGATE_RE.search(value)
    if surrogate:
        fail(key, value, f"U+{ord(surrogate.group()):04X} is half of a UTF-16 pair, not a "
                         f"character; type or paste the text again")
    direction = _DIRECTION_RE.search(value)
    if direction:
        fail(key, value, f"no direction override or isolate characters (U+"
                         f"{ord(direction.group()):04X}): they show text in another order than "
                         f"it holds; remove it")
    if (_CONTROL_IN_LINES_RE if lines else _CONTROL_RE).search(value):
        fail(key, value, "no control characters such as escape codes"
                         + (" (line breaks and tabs are fine)" if lines else ", line breaks or "
                                                                               "tabs"))
    if (required or value.strip()) and not any(map(_visible, value)):
        fail(key, value, "expected visible text (letters, digits, punctuation or symbols), not "
                         "only spaces or zero-width characters")


def shown(text: str) -> str:
    """`text` as a page or a terminal can show it: each character check_text refuses for not
    being encodable or for hiding what the text says becomes U+FFFD. For labels written before
    the rule, or by hand into a status.json: reading one must never break a page."""
    return _UNSHOWABLE_RE.sub("\ufffd", text)


def check_run_name(name: Any) -> None:
    """A run name is a label (check_text), never a path."""
    check_text("run.name", name, MAX_NAME)
