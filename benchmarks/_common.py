"""The command line every benchmark shares: its description from the first line of the script's
docstring, and --quick, which makes tiny sizes the defaults so tests/test_benchmarks.py runs the
full benchmark's code path in seconds (an option given explicitly still wins). A helper, not a
benchmark: its name starts with an underscore."""

from __future__ import annotations

import argparse
from typing import Any


def parser(doc: str) -> argparse.ArgumentParser:
    """A benchmark's argument parser, described by the first line of `doc` (its docstring)."""
    return argparse.ArgumentParser(description=doc.splitlines()[0])


def parse(parser: argparse.ArgumentParser, **quick: Any) -> argparse.Namespace:
    """The arguments, after adding --quick (last in --help): under it, `quick`'s values are the
    defaults."""
    parser.add_argument("--quick", action="store_true", help="seconds, tiny sizes (a smoke test)")
    if parser.parse_known_args()[0].quick:
        parser.set_defaults(**quick)
    return parser.parse_args()
