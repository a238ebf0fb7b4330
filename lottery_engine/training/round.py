"""One round of training: the step schedule, validation every few steps, the early-stop point.

Why not Keras' own epochs and EarlyStopping callback:
- The data order is fixed by the run's seed and the epoch alone, so a round that starts at step k
  (late rewinding, as OpenLTH does it) trains exactly the batches round 0 saw from step k on, and
  every series of a round (ticket and controls) sees the same batches: paired comparisons.
- Frankle & Carbin report the iteration of minimum validation loss (their Figure 4); per-epoch
  validation cannot resolve it. Validation here runs every `eval_every` steps and at each epoch end.
  They train every step and prune the final weights, only *measuring* that point
  (`early_stopping: measure`, or false); `early_stopping: true` instead stops `patience`
  validations after it and keeps its weights, which the next round then prunes.
The steps themselves run on the engine's own compiled step (train_step.py) or on Keras' `fit`
(`train.step: keras`, the reference: keras_fit.py); both report to the same Monitor at each call
boundary. `train_stacked_round` (stacked_round.py) trains a round's series together on a stack
(stacked_step.py), one Monitor per series.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import keras
import numpy as np

from ..foundations.events import Listener
from .train_step import FusedStep


@dataclass
class Schedule:
    """Which steps a round trains and when it validates. Steps count from round 0's step 0."""

    batch_size: int
    batches: int  # steps per epoch
    epochs: int  # T = epochs * batches
    start_step: int = 0  # k when rewound to step k of round 0 (late rewinding)
    eval_every: int | None = None  # None: once per epoch
    snapshot_step: int = 0  # keep the weights after this step (round 0's rewind point)
    early_stopping: bool | str = False  # train.early_stopping: true, false or measure
    patience: int = 3  # validations without a lower loss before early stopping stops

    @property
    def stops(self) -> bool:
        """Whether a round stops at its early-stop point and keeps its weights (true); false and
        measure train every step and keep the final weights, the point measured aside."""
        return self.early_stopping is True

    @property
    def kept_weights(self) -> str:
        """Which weights a round ends with, for its record: the ones its accuracy is of, that are
        saved and that the next round prunes."""
        return "early_stop" if self.stops else "final"

    @property
    def total_steps(self) -> int:
        return self.epochs * self.batches

    def validates_after(self, step: int) -> bool:
        every = self.eval_every or self.batches
        return step % every == 0 or step % self.batches == 0 or step == self.total_steps


@dataclass
class RoundTraining:
    """What one round's training produced; `best_*` is the point of lowest validation loss."""

    history: dict[str, list[float]]
    seconds: float
    start_step: int
    steps: int  # optimizer steps taken in this round
    curve: list[list[float]] = field(default_factory=list)  # [step, val_loss, val_accuracy]
    best_step: int = 0
    best_weights: list[np.ndarray] | None = None  # None: the final weights are the best
    stopped_early: bool = False
    snapshot: list[np.ndarray] | None = None
    kept_weights: str = "final"  # Schedule.kept_weights: final, or early_stop (the best point's)


def steps_per_execution(batches: int, eval_every: int | None, rewind_step: int,
                        most: int = 32) -> int:
    """How many steps one call of the compiled train function runs (Keras' steps_per_execution).

    Fewer Python round trips per step is most of a small network's speed-up; every point the
    monitor must see (epoch ends, validations, the rewind step) stays a call boundary because the
    chunk divides all of them.
    """
    common = math.gcd(batches, eval_every or batches, rewind_step)
    return max(d for d in range(1, min(most, common) + 1) if common % d == 0)


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The example order of an epoch: the same in every round and series of a run."""
    return np.random.default_rng([seed, epoch]).permutation(n).astype(np.int64)


def loss_and_accuracy(proba: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy: the two numbers a validation point needs, nothing more."""
    picked = np.clip(proba[np.arange(len(y)), y.astype(np.int64)], 1e-7, 1.0)
    return float(-np.log(picked).mean()), float((proba.argmax(axis=1) == y).mean())


class HasWeights(Protocol):
    """What a Monitor keeps the weights of: a Keras model, or one series of a stack
    (stacked_round.py)."""

    def get_weights(self) -> list[np.ndarray]: ...


class Monitor:
    """Follows a round's step clock: progress, the rewind snapshot, validation on schedule, the
    best point and early stopping. Every training path calls `reached` at each call boundary.
    `model` is anything with get_weights(): a Keras model, or one series of a stack."""

    def __init__(self, model: HasWeights, schedule: Schedule,
                 listener: Listener, round_index: int,
                 validate: Callable[[], tuple[float, float]]):
        self.model, self.s, self.listener, self.round_index, self.validate = (
            model, schedule, listener, round_index, validate)
        self.step = schedule.start_step
        self.best_loss, self.best_step, self.best_weights, self.waited = math.inf, 0, None, 0
        self.curve: list[list[float]] = []
        self.snapshot: list[np.ndarray] | None = None
        self.stop = False

    def reached(self, step: int) -> bool:
        """Training has reached `step` (round 0's clock); True when the round should stop."""
        self.step = step
        if step == self.s.snapshot_step:
            self.snapshot = self.model.get_weights()
        epoch, in_epoch = divmod(step - 1, self.s.batches)
        self.listener.batch_finished(self.round_index, epoch, in_epoch + 1, self.s.batches)
        if self.s.validates_after(step):
            self._check()
        return self.stop

    def _check(self) -> None:
        loss, accuracy = self.validate()
        self.curve.append([self.step, loss, accuracy])
        if loss < self.best_loss:
            self.best_loss, self.best_step, self.waited = loss, self.step, 0
            self.best_weights = self.model.get_weights()
        else:
            self.waited += 1
            if self.s.stops and self.waited >= self.s.patience:
                self.stop = True


# Trains one epoch's examples (`order`, cut into batches) from global step `first`, telling the
# monitor each call boundary it reaches and stopping when it says so; returns the epoch's mean
# training loss and accuracy.
EpochTrainer = Callable[[np.ndarray, int, Monitor], dict[str, float]]


def epoch_calls(order: np.ndarray, batch_size: int, chunk: int) -> list[np.ndarray]:
    """An epoch's examples cut into batches, `chunk` batches per call of a compiled step; the
    last, smaller batch gets a call of its own (a different shape, traced once)."""
    full = len(order) // batch_size
    rows = order[:full * batch_size].reshape(full, batch_size)
    calls = [rows[i:i + chunk] for i in range(0, full, chunk)]
    if len(order) > full * batch_size:
        calls.append(order[full * batch_size:][None])
    return calls


def fused_epochs(step: FusedStep, batch_size: int, chunk: int) -> EpochTrainer:
    """Epochs on the engine's own step, `chunk` steps per call. The epoch's logs carry the
    learning rate of its first step."""

    def train_epoch(order: np.ndarray, first: int, monitor: Monitor) -> dict[str, float]:
        done = first
        for batches in epoch_calls(order, batch_size, chunk):
            step.run(batches, done)
            done += len(batches)
            if monitor.reached(done):
                break
        return {**step.take_logs(), "learning_rate": step.learning_rate(first)}

    return train_epoch


def train_round(model: keras.Model, train_epoch: EpochTrainer, examples: int, seed: int,
                schedule: Schedule, listener: Listener, round_index: int,
                validate: Callable[[], tuple[float, float]]) -> RoundTraining:
    """Train steps start_step..T of the schedule (fewer if early stopping stops it).

    With early stopping (true) the model ends at its best point; with false or measure, it ends
    after step T and the best point's weights are returned alongside for measuring accuracy at
    early stop.
    """
    monitor = Monitor(model, schedule, listener, round_index, validate)
    history: dict[str, list[float]] = {}
    start = time.perf_counter()
    first_epoch, skip = divmod(schedule.start_step, schedule.batches)
    for epoch in range(first_epoch, schedule.epochs):
        skipped = skip if epoch == first_epoch else 0
        order = epoch_order(seed, epoch, examples)[skipped * schedule.batch_size:]
        logs = train_epoch(order, epoch * schedule.batches + skipped, monitor)
        logs["val_loss"], logs["val_accuracy"] = monitor.curve[-1][1:]
        for key, value in logs.items():
            history.setdefault(key, []).append(float(value))
        listener.epoch_finished(round_index, epoch, logs)
        if monitor.stop:
            break
    best_weights = monitor.best_weights if monitor.best_step != monitor.step else None
    if schedule.stops and best_weights is not None:
        model.set_weights(best_weights)
        best_weights = None
    return RoundTraining(history, time.perf_counter() - start, schedule.start_step,
                         monitor.step - schedule.start_step, monitor.curve, monitor.best_step,
                         best_weights, monitor.stop, monitor.snapshot, schedule.kept_weights)
