"""YAML parsing with limits: configs come from users, files and the browser, so a hostile or
careless document must be refused in well under a second, never parsed for minutes.

PyYAML's safe loader builds no Python objects beyond plain data, but an alias bomb (nine levels of
nine aliases each) is a small text whose expansion has 9**9 nodes: cheap to compose, ruinous for
any code that walks, copies or prints the result. So the document is composed first, its expanded
size counted (shared nodes counted once per reference, memoised so the count itself is linear),
and only a document under the limits is constructed.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import yaml

MAX_BYTES = 1_000_000
MAX_NODES = 10_000


class YamlError(ValueError):
    """Text that is not acceptable YAML for a config; the message says where and why."""


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once instead of looping
    size = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        size += _expanded_size(child, memo, limit)
        if size > limit:
            break
    memo[key] = size
    return size


def parse(text: str | bytes, where: str) -> Any:
    """Parse one YAML document under the size and expansion limits; `where` names the source."""
    if len(text) > MAX_BYTES:
        raise YamlError(f"{where}: {len(text):,} bytes; a config may hold at most "
                        f"{MAX_BYTES:,} bytes.")
    try:
        return _construct(text, where)
    except yaml.reader.ReaderError as exc:
        raise YamlError(_unreadable(exc, text, where)) from None
    except yaml.YAMLError as exc:
        raise YamlError(f"{where}: malformed YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise YamlError(f"{where}: the YAML is nested too deeply.") from None


def _construct(text: str | bytes, where: str) -> Any:
    """Compose the document, count its expanded size, and only then build it."""
    loader = yaml.SafeLoader(text)  # reads (and checks the characters of) the text at once
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {}, MAX_NODES)
        if size > MAX_NODES:
            raise YamlError(f"{where}: the YAML expands to more than {MAX_NODES:,} values "
                            f"(aliases repeated inside aliases?); a config needs far fewer.")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _unreadable(exc: yaml.reader.ReaderError, text: str | bytes, where: str) -> str:
    """What PyYAML's reader refuses, said in a user's terms: bytes that are not UTF-8, or a
    character YAML does not allow (an escape code pasted into `--set run.name=...`), by its
    code point and place, never the character itself (it may be a terminal escape)."""
    if exc.encoding != "unicode":  # bytes that did not decode
        return (f"{where}: not UTF-8 text (byte 0x{exc.character:02x} at offset "
                f"{exc.position}); save it as UTF-8.")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    before = text[:exc.position]
    line, column = before.count("\n") + 1, exc.position - before.rfind("\n")
    kind = "control character" if unicodedata.category(chr(exc.character)) == "Cc" else \
        "character"
    return (f"{where}: the {kind} U+{exc.character:04X} at line {line}, column {column} cannot "
            f"appear in YAML; remove it.")
