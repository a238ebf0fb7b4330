"""Import TensorFlow without its start-up lines on stderr.

TensorFlow 2.21 prints absl and oneDNN/CUDA notes straight to file descriptor 2 while it loads,
whatever TF_CPP_MIN_LOG_LEVEL says; a user of the CLI or a worker log should see our lines only.
"""

from __future__ import annotations

import os


def tensorflow() -> None:
    """Import TensorFlow (once per process) with file descriptor 2 pointed at /dev/null."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
