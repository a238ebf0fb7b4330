"""What a run sets up before it builds a model: the device it asked for (a run never falls back to
the CPU silently) and deterministic ops, so a CPU run repeats bit for bit.
"""

from __future__ import annotations

import logging

import tensorflow as tf

from ..config.load import ConfigError


def check_device(device: str) -> list:
    """The GPUs TensorFlow sees; a `gpu` or `gpu:N` this machine does not have is a ConfigError
    naming what it has (a run never falls back to the CPU silently)."""
    gpus = tf.config.list_physical_devices("GPU")
    wanted = device == "gpu" or device.startswith("gpu:")
    index = int(device[4:]) if device.startswith("gpu:") else 0
    if wanted and index >= len(gpus):
        found = ", ".join(f"gpu:{i} ({g.name})" for i, g in enumerate(gpus)) or "none"
        raise ConfigError(f"run.device: {device} is not on this machine; GPUs found: {found}. "
                          f"Use cpu or auto{', or one of those' if gpus else ''}.")
    return gpus


def setup_runtime(device: str) -> None:
    """Pick the device and make CPU runs bit-for-bit repeatable. Call before building models."""
    gpus = check_device(device)
    if device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    elif device.startswith("gpu:"):
        tf.config.set_visible_devices(gpus[int(device[4:])], "GPU")
    tf.config.experimental.enable_op_determinism()
    tf.get_logger().setLevel(logging.ERROR)  # retracing notes: expected, one fit per round
