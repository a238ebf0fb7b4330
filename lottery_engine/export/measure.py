"""What one model is worth through one runtime, measured: its test outputs and accuracy, its latency
per sample at batch 1 and 256 (median of repeats after a warm-up call; Keras through one traced
call, LiteRT on one thread) and what its file stores. exporter.py measures the dense ticket and
every format with these in one call: a ratio between two calls would mostly measure the machine.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from ..evaluation.timing import time_per_sample
from . import tflite_export

REPEATS = 25  # timed calls at batch 1; batch 256 takes a fifth of them (at least 3)


def limit_threads(threads: int = 1) -> bool:
    """Ask TensorFlow for `threads` threads (the Keras latencies are then single-thread like
    LiteRT's); only possible before TensorFlow runs its first op, so call it first. Whether it
    took effect."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        return False
    return True


@dataclass
class Measured:
    """One model through one runtime: test outputs, accuracy, ms per sample by batch size."""

    outputs: np.ndarray
    accuracy: float
    latency: dict[str, float]


def _accuracy(outputs: np.ndarray, labels: np.ndarray, logits: bool) -> float:
    """As metrics.classification_metrics counts it: argmax, or one unit above 0.5 (logits: 0)."""
    if outputs.shape[1] == 1:
        predicted = (outputs[:, 0] > (0.0 if logits else 0.5)).astype(labels.dtype)
    else:
        predicted = outputs.argmax(axis=1)
    return float(np.mean(predicted == labels))


def _batches(x: np.ndarray) -> dict[str, np.ndarray]:
    """The latency batches, as float32 like the model's input: one example, and 256 (the test
    examples repeated if there are fewer)."""
    return {"batch_1": x[:1].astype(np.float32),
            "batch_256": np.resize(x[:256], (256, *x.shape[1:])).astype(np.float32)}


def _repeats(key: str, repeats: int) -> int:
    return repeats if key == "batch_1" else max(3, repeats // 5)


def measure_keras(model: keras.Model, x: np.ndarray, y: np.ndarray, logits: bool,
                  repeats: int) -> Measured:
    """Test outputs through `predict`; latency through one traced call of the model per batch
    size (what a Keras server runs; `predict`'s per-call overhead would swamp batch 1)."""
    import tensorflow as tf

    outputs = np.asarray(model.predict(x, batch_size=256, verbose=0), np.float32)
    latency = {}
    for key, batch in _batches(x).items():
        traced = tf.function(lambda inputs: model(inputs, training=False))
        latency[key] = time_per_sample(lambda b: traced(b).numpy(), batch, len(batch),
                                       _repeats(key, repeats)).median
    return Measured(outputs, _accuracy(outputs, y, logits), latency)


def measure_tflite(content: bytes, x: np.ndarray, y: np.ndarray, logits: bool,
                   repeats: int) -> tuple[Measured, list[str]]:
    """Test outputs and latency through the LiteRT interpreter on one thread; and its ops."""
    runners = {key: tflite_export.Runner(content, len(batch)) for key, batch in _batches(x).items()}
    big = runners["batch_256"]
    chunks = [np.resize(x[i:i + 256], (256, *x.shape[1:])) for i in range(0, len(x), 256)]
    outputs = np.concatenate([big(chunk) for chunk in chunks])[:len(x)]
    latency = {key: time_per_sample(runners[key], batch, len(batch), _repeats(key, repeats)).median
               for key, batch in _batches(x).items()}
    return Measured(outputs, _accuracy(outputs, y, logits), latency), big.ops()


def keras_parameters(model: keras.Model) -> dict[str, int]:
    """Every weight the file stores (frozen base and normalisation statistics included) and how
    many of them are nonzero."""
    arrays = model.get_weights()
    return {"stored": int(sum(a.size for a in arrays)),
            "nonzero": int(sum(np.count_nonzero(a) for a in arrays))}


def saved_bytes(model: keras.Model, folder: Path) -> int:
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = Path(tmp) / "dense.keras"
        model.save(path)
        return path.stat().st_size


def keras_threads() -> int | str:
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads() or "default (all cores)"
