"""A function named by `package.module:function`, imported when first asked for.

The registries of networks and data sources (config/architectures.py, config/data_sources.py) name
their builders and loaders this way: config sits below models and data and must stay free of
TensorFlow, so it holds the name and the wing that runs the function imports it.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def function(spec: str) -> Callable[..., Any]:
    """The callable `spec` names; an ImportError or AttributeError says which part is missing
    (a registry entry naming a function that does not exist is a programming error)."""
    module_name, _, name = spec.partition(":")
    found = getattr(importlib.import_module(module_name), name)
    if not callable(found):
        raise TypeError(f"{spec} is not a function")
    return found
