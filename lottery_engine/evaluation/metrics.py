"""Evaluation of a trained model on a split: the per-round numbers of SPEC §4."""

from __future__ import annotations

import keras
import numpy as np
from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score

from .timing import Timing, time_per_sample


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = 256,
                  logits: bool = False) -> np.ndarray:
    """Class probabilities (N, classes), also for a single sigmoid output; a model that ends in
    `logits` has them turned into probabilities first (softmax, or sigmoid for one unit)."""
    return as_probabilities(model.predict(x, batch_size=batch_size, verbose=0), logits)


def as_probabilities(outputs: np.ndarray, logits: bool = False) -> np.ndarray:
    """A model's outputs as class probabilities (N, classes) in float64: logits through softmax
    (sigmoid for one unit), and one sigmoid unit as two columns."""
    out = np.asarray(outputs, dtype=np.float64)
    if logits:
        if out.shape[1] == 1:
            out = 1.0 / (1.0 + np.exp(-out))
        else:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
    if out.shape[1] == 1:
        out = np.concatenate([1.0 - out, out], axis=1)
    return out


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, prefix: str) -> dict[str, float]:
    """Accuracy, F1, precision, recall (binary for 2 classes, macro above) and log loss."""
    y_pred = proba.argmax(axis=1)
    average = "binary" if proba.shape[1] == 2 else "macro"
    labels = list(range(proba.shape[1]))
    kwargs = {"average": average, "zero_division": 0}
    clipped = np.clip(proba, 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    return {
        f"{prefix}_accuracy": float(accuracy_score(y_true, y_pred)),
        f"{prefix}_f1": float(f1_score(y_true, y_pred, **kwargs)),
        f"{prefix}_precision": float(precision_score(y_true, y_pred, **kwargs)),
        f"{prefix}_recall": float(recall_score(y_true, y_pred, **kwargs)),
        f"{prefix}_loss": float(log_loss(y_true, clipped, labels=labels)),
    }


def inference_time(model: keras.Model, x: np.ndarray, repeats: int = 7) -> Timing:
    """Time per sample of predicting one batch of up to 256 examples: the median of `repeats`
    warm calls, with the fastest and slowest (evaluation/timing.py says why)."""
    batch = x[: min(len(x), 256)]
    return time_per_sample(model.predict_on_batch, batch, len(batch), repeats)
