"""The value checks every config rule is made of: a type, a range, a choice, a path, each
refusing in one line that names the key, shows the value (shortened) and says what is allowed.
"""

from __future__ import annotations

import reprlib
from typing import Any

from .schema import ConfigError, did_you_mean

MAX_PATH = 4096
MAX_STEP = 10**9  # rewind step, validation interval, warm-up

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60
_short.maxlist = _short.maxdict = 6
_short.maxlevel = 2


def fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{key}: invalid value {_short.repr(value)}; {allowed}.")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def choice(key: str, value: Any, options: tuple) -> None:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or value not in options:
        hint = did_you_mean(str(value), [str(o) for o in options])
        allowed = ", ".join(str(o) for o in options)
        raise ConfigError(f"{key}: unknown value {_short.repr(value)}; allowed: {allowed}.{hint}")


def int_in(key: str, value: Any, low: int, high: int) -> None:
    if not is_int(value) or not low <= value <= high:
        fail(key, value, f"expected an integer from {low:,} to {high:,}")


def fraction(key: str, value: Any, *, open_high: bool = True) -> None:
    if not (is_number(value) and 0 < value and (value < 1 if open_high else value <= 1)):
        fail(key, value, f"expected a number in (0, 1{')' if open_high else ']'}")


def check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        fail(key, value, "expected true or false")


def check_path(key: str, value: Any, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_PATH \
            or "\x00" in value:
        fail(key, value, f"expected the path of a folder or file (at most {MAX_PATH} characters)")
