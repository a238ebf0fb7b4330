"""Where Keras keeps downloaded weights and datasets, so we can look before it would download."""

from __future__ import annotations

import os
from pathlib import Path


def keras_home() -> Path:
    """$KERAS_HOME, else ~/.keras: the folder keras.utils.get_file caches into."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
