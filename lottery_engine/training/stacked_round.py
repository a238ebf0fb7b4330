"""A round's series (the ticket and its controls) trained together on one stack (stacked_step.py):
`train_round` (round.py) for several series at once, each with its own Monitor; a series that stops
leaves the stack, which goes on smaller without it.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..foundations.events import Listener
from . import recipes
from .round import Monitor, RoundTraining, Schedule, epoch_calls, epoch_order
from .stacked_step import StackedStep


def _finish(monitor: Monitor, schedule: Schedule, history: dict, seconds: float,
            final: Callable[[], list[np.ndarray]]) -> tuple[RoundTraining, list[np.ndarray]]:
    """A series' RoundTraining and the weights it ends with: with early stopping (true) its best
    point's, else its last step's (the best point's then ride along in `best_weights`)."""
    best_weights = monitor.best_weights if monitor.best_step != monitor.step else None
    weights = final()
    if schedule.stops and best_weights is not None:
        weights, best_weights = best_weights, None
    return RoundTraining(history, seconds, schedule.start_step,
                         monitor.step - schedule.start_step, monitor.curve, monitor.best_step,
                         best_weights, monitor.stop, monitor.snapshot,
                         schedule.kept_weights), weights


class _SeriesOfStack:
    """One series of a training stack, as a Monitor sees a model; the stack shrinks when series
    stop, so the series' position in it is looked up at each call."""

    def __init__(self, run: "_StackRun", index: int):
        self.run, self.index = run, index

    def get_weights(self) -> list[np.ndarray]:
        return self.run.step.weights(self.run.live.index(self.index))


class _StackRun:
    """The stack as it is now: its step, which series are still in it, and each live series'
    validation at the current step (one forward pass of the stack serves them all)."""

    def __init__(self, make: Callable[[int], StackedStep],
                 starts: list[tuple[list[np.ndarray], dict]],
                 validate: Callable[[StackedStep], list[tuple[float, float]]]):
        self.make, self.validate_all = make, validate
        self.live = list(range(len(starts)))
        self.step = make(len(starts))
        self.step.load([weights for weights, _ in starts], [masks for _, masks in starts])
        self.done = 0
        self._scores: tuple[int, list] | None = None

    def validate(self, index: int) -> tuple[float, float]:
        if self._scores is None or self._scores[0] != self.done:
            self._scores = (self.done, self.validate_all(self.step))
        return self._scores[1][self.live.index(index)]

    def drop(self, stopped: list[int]) -> None:
        """Go on with the live series but `stopped`, in a smaller stack (traced once per size)."""
        keep = [i for i in self.live if i not in stopped]
        if keep:
            states = [self.step.state(self.live.index(i)) for i in keep]
            iterations = int(self.step.optimizer.iterations.numpy())
            self.step = self.make(len(keep))
            self.step.load_state(states, iterations)
        self.live = keep


def train_stacked_round(make: Callable[[int], StackedStep],
                        starts: list[tuple[list[np.ndarray], dict]], examples: int, seed: int,
                        schedule: Schedule, listener: Listener, round_index: int, chunk: int,
                        validate: Callable[[StackedStep], list[tuple[float, float]]],
                        orders: list[int] | None = None
                        ) -> list[tuple[RoundTraining, list[np.ndarray]]]:
    """`train_round` for a round's series at once: series s starts from `starts[s]` (weights,
    masks); all take the same batches (the data order of `seed`), or with `orders` series s
    those of the data order of `orders[s]`; each has its own Monitor (validation, best point,
    early stop), and a series that stops leaves the stack, which goes on smaller without it.

    Progress and the epochs reported live are the first series' (the ticket) while it trains.
    Returns each series' RoundTraining and the weights it ends with, in `starts` order.
    """
    run = _StackRun(make, starts, validate)
    monitors = [Monitor(_SeriesOfStack(run, i), schedule, Listener(), round_index,
                        lambda i=i: run.validate(i)) for i in range(len(starts))]
    histories: list[dict[str, list[float]]] = [{} for _ in starts]
    finished: dict[int, tuple[RoundTraining, list[np.ndarray]]] = {}
    start = time.perf_counter()
    batch_size, batches = schedule.batch_size, schedule.batches
    first_epoch, skip = divmod(schedule.start_step, batches)

    def end_epoch(epoch: int, series: list[int], first: int) -> None:
        logs = run.step.logs()
        for i in series:
            position = run.live.index(i)
            entry = {**logs[position], "learning_rate": float(recipes.learning_rate(
                run.step.cfg, first, run.step.steps_per_epoch))}
            entry["val_loss"], entry["val_accuracy"] = monitors[i].curve[-1][1:]
            for key, value in entry.items():
                histories[i].setdefault(key, []).append(float(value))
            if i == 0:
                listener.epoch_finished(round_index, epoch, entry)

    for epoch in range(first_epoch, schedule.epochs):
        skipped = skip if epoch == first_epoch else 0
        first = run.done = epoch * batches + skipped
        calls = [epoch_calls(epoch_order(order, epoch, examples)[skipped * batch_size:],
                             batch_size, chunk) for order in (orders or [seed])]
        for j, call in enumerate(calls[0]):
            if orders:  # (steps, live series, B): each live series its own batches
                call = np.stack([calls[i][j] for i in run.live], axis=1)
            run.step.run(call, run.done)
            run.done += len(call)
            listener.batch_finished(round_index, epoch, run.done - epoch * batches, batches)
            stopped = [i for i in list(run.live) if monitors[i].reached(run.done)]
            if stopped:
                end_epoch(epoch, stopped, first)  # their last (partial) epoch
                for i in stopped:
                    finished[i] = _finish(monitors[i], schedule, histories[i],
                                          time.perf_counter() - start, monitors[i].model.get_weights)
                run.drop(stopped)
            if not run.live:
                break
        if not run.live:
            break
        end_epoch(epoch, list(run.live), first)
        run.step.clear_logs()
    for i in list(run.live):
        finished[i] = _finish(monitors[i], schedule, histories[i], time.perf_counter() - start,
                              monitors[i].model.get_weights)
    return [finished[i] for i in range(len(starts))]
