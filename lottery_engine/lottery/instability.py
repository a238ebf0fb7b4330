"""Instability analysis of a run (Frankle, Dziugaite, Roy & Carbin, ICML 2020, "Linear Mode
Connectivity and the Lottery Ticket Hypothesis"): is round r's subnetwork, rewound to step k of
round 0, stable to SGD noise?

For each round r (its mask; round 0 the dense network) and rewind step k, `copies` networks start
from the weights after step k of round 0 under r's mask and train steps k..T on the run's own
compiled step, recipe, schedule and early-stop logic (Trainer, training/round.py: no second loop),
each in its own data order (instability_plan.order_seed): nothing else differs. Along the line
between each pair of endpoints, test and validation error are measured at evenly spaced α, with
BatchNorm statistics recomputed at each α on a few training batches (the paper's protocol); the
pair's instability is the highest error minus the mean of the endpoints' (evaluation/barrier.py).

The copies of one (r, k) train as one stack (training/stacked_step.py, each series its own
batches) where the run's train.stack setting and the stack take the model, as for IMP rounds
(Trainer.stack_refusal); otherwise one after another. Each line says which (`stack_refused`).

Each (r, k, pair) is one line of the run's instability.jsonl, appended durably as it finishes; a
rerun skips the lines already there, and training is deterministic on the CPU, so a resumed
analysis writes what an uninterrupted one would.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np

from ..config.load import Config, rewind_step
from ..data import dataset as data_lib
from ..evaluation.barrier import alphas, barrier, interpolate
from ..foundations import runfolder
from ..foundations.events import Listener
from ..models import keras_file
from ..pruning.masks import load_masks
from ..training import round as training
from .instability_plan import InstabilityError, Request, check, done, line_key, order_seed
from .runtime import setup_runtime
from .trainer import Trainer, seed_for

BATCHNORM_BATCHES = 10  # training batches each α's BatchNorm statistics are recomputed on


class _Reached(Exception):
    """Round 0's replay has passed every rewind step asked for."""


class _Snapshots(Listener):
    """Keeps the model's weights after each wanted step of round 0's replay and stops it after
    the last one; the run's listener sees the replay's progress."""

    def __init__(self, model: keras.Model, steps: set[int], outer: Listener):
        self.model, self.wanted, self.outer = model, steps, outer
        self.taken: dict[int, list[np.ndarray]] = {}

    def batch_finished(self, round_index: int, epoch: int, batch: int, batches: int) -> None:
        self.outer.batch_finished(round_index, epoch, batch, batches)
        step = epoch * batches + batch
        if step in self.wanted:
            self.taken[step] = self.model.get_weights()
        if len(self.taken) == len(self.wanted):
            raise _Reached


@dataclass
class Analysis:
    """A run made ready for the analysis: its Trainer and round 0's weights after each step k."""

    run_dir: Path
    trainer: Trainer
    starts: dict[int, list[np.ndarray]]
    stack_refused: str | None  # why the copies train one after another (None: as one stack)


def prepare(run_dir: Path, request: Request, listener: Listener | None = None,
            steps: set[int] | None = None, device: str | None = None) -> Analysis:
    """Check the request, load the run's data split, build its Trainer (on `device` when given,
    a worker's, else the run's run.device) and reach round 0's weights after each rewind step
    in `steps` (default: every one of the request's)."""
    run_dir, listener = Path(run_dir), listener or Listener()
    cfg = keras_file.inside(check(run_dir, request), run_dir)
    cfg.run.device = device or cfg.run.device
    setup_runtime(cfg.run.device)
    listener.phase_started("loading data")
    data = data_lib.load(cfg.data, cfg.run.seed, data_lib.load_split(run_dir / runfolder.SPLIT),
                         listener.work_progress)
    listener.phase_started("building the model")
    own = rewind_step(cfg, -(-len(data.y_train) // cfg.train.batch_size))
    trainer = _trainer(cfg, data, run_dir, [own, *request.rewinds], listener)
    wanted = set(request.rewinds) if steps is None else steps
    starts = _starts(trainer, run_dir, wanted, own)
    copies = [(trainer.model.get_weights(), trainer.manager.masks)] * request.copies
    return Analysis(run_dir, trainer, starts, trainer.stack_refusal([copies], own_batches=True))


def analyse(run_dir: Path, request: Request, listener: Listener | None = None,
            device: str | None = None) -> list[dict]:
    """Run (or resume) the analysis into RUN_DIR/instability.jsonl; returns the lines it wrote.
    `device` replaces the run's run.device (a worker pinned to a device)."""
    run_dir, listener = Path(run_dir), listener or Listener()
    check(run_dir, request)
    finished = done(run_dir)
    todo = [(r, k) for r in request.rounds for k in request.rewinds
            if any(_key(r, k, pair, request) not in finished for pair in request.pairs())]
    if not todo:
        return []
    analysis = prepare(run_dir, request, listener, {k for _, k in todo}, device)
    seed = analysis.trainer.cfg.run.seed
    written = []
    for number, (r, k) in enumerate(todo):
        started = time.perf_counter()
        ends = train_copies(analysis, r, k, [order_seed(seed, c) for c in range(request.copies)])
        seconds = time.perf_counter() - started  # what the (r, k)'s copies took to train
        for pair in request.pairs():
            if _key(r, k, pair, request) in finished:
                continue
            record = {"round": r, "rewind_step": k, "pair": list(pair),
                      "points": request.points, "copies": request.copies,
                      "sparsity": analysis.trainer.manager.report()["global_sparsity"],
                      "order_seeds": [order_seed(seed, c) for c in pair],
                      "copies_seconds": seconds, "stack_refused": analysis.stack_refused,
                      **along_line(analysis.trainer, ends[pair[0]], ends[pair[1]],
                                   request.points)}
            runfolder.append_line(run_dir / runfolder.INSTABILITY, record)
            written.append(record)
        listener.work_progress("instability", number + 1, len(todo))
    return written


def train_copies(analysis: Analysis, r: int, k: int, seeds: list[int]) -> list[list[np.ndarray]]:
    """One copy per data-order seed in `seeds`, each from round 0's weights after step k under
    round r's masks; returns the weights each ends with. The masks stay r's afterwards."""
    trainer, start = analysis.trainer, analysis.starts[k]
    masks = load_masks(analysis.run_dir / runfolder.mask_file(r))
    if analysis.stack_refused is None:
        trainer.manager.set_masks(masks)
        trainer.manager.rewind(start)
        trained = trainer.train_stacked(r, [(start, masks)] * len(seeds), _schedule(trainer, k),
                                        seeds)
        return [weights for _, weights in trained]
    return [_train_copy(trainer, start, masks, r, k, copy, seeds) for copy in range(len(seeds))]


def _key(r: int, k: int, pair: tuple[int, int], request: Request) -> tuple:
    return line_key({"round": r, "rewind_step": k, "pair": pair, "points": request.points})


def _trainer(cfg: Config, data: data_lib.Dataset, run_dir: Path, steps: list[int],
             listener: Listener) -> Trainer:
    """The run's Trainer, on the compiled step its rounds chose (XLA or not), with every step of
    `steps` a boundary of the step's calls: its config sees imp.rewind as their greatest common
    divisor, which only sets the steps per call (Trainer._chunk)."""
    common = math.gcd(*steps)
    boundaries = replace(cfg, imp=replace(cfg.imp, rewind=f"step:{common}" if common else "init"))
    trainer = Trainer(boundaries, data, run_dir, listener)
    trainer.jit = runfolder.read_rounds(run_dir)[0].get("jit_compile")
    return trainer


def _starts(trainer: Trainer, run_dir: Path, steps: set[int], own: int
            ) -> dict[int, list[np.ndarray]]:
    """The weights after each step k of round 0: θ0 as the run drew it (a new Trainer draws it
    from the seed as the run did), the run's own rewind point `own` from its folder (late
    rewinding stored it), any other k by replaying round 0 from θ0 on its seed and data order
    up to the last k."""
    theta0 = trainer.model.get_weights()
    starts = {0: theta0} if 0 in steps else {}
    if own in steps and own:
        trainer.model.load_weights(run_dir / runfolder.REWIND)
        starts[own] = trainer.model.get_weights()
    replayed = steps - set(starts)
    if replayed:
        starts |= replay(trainer, theta0, replayed)
    return starts


def replay(trainer: Trainer, theta0: list[np.ndarray], steps: set[int]
           ) -> dict[int, list[np.ndarray]]:
    """Round 0 trained again from θ0 as the run trained it (dense, on its seed and data order),
    its weights kept after each step in `steps` and stopped after the last. The step may run
    more or fewer steps per call than the run's did: each step's arithmetic is the same."""
    cfg = trainer.cfg
    trainer.model.set_weights(theta0)
    keras.utils.set_random_seed(seed_for(cfg.run.seed, 0))
    snapshots = _Snapshots(trainer.model, steps, trainer.listener)
    trainer.listener.round_started(0, "replay to k", 0.0)
    try:
        result = training.train_round(
            trainer.fit_model, trainer.epoch_trainer(), len(trainer.data.y_train), cfg.run.seed,
            trainer.schedule(0, "replay"), snapshots, 0, lambda: _val(trainer))
    except _Reached:
        return snapshots.taken
    missing = sorted(steps - set(snapshots.taken))
    raise InstabilityError(f"--rewind {missing[0]}: round 0 stopped early after "
                           f"{result.steps} steps; choose steps it reached.")


def _val(trainer: Trainer) -> tuple[float, float]:
    return training.loss_and_accuracy(trainer.probabilities("val"), trainer.data.y_val)


def _train_copy(trainer: Trainer, start: list[np.ndarray], masks: dict[str, np.ndarray],
                r: int, k: int, copy: int, seeds: list[int]) -> list[np.ndarray]:
    """Copy `copy` of (r, k): `start` under r's masks, steps k..T as round r's schedule trains
    them (a fresh optimizer, the same seed for everything random), in the data order of
    `seeds[copy]`.
    Returns the weights it ends with: the ones the run's rounds keep (final or early stop)."""
    cfg, manager = trainer.cfg, trainer.manager
    manager.set_masks(masks)
    manager.rewind(start)
    keras.utils.set_random_seed(seed_for(cfg.run.seed, r))
    schedule = _schedule(trainer, k)
    trainer.listener.round_started(r, f"k={k} copy {copy + 1}/{len(seeds)}",
                                   manager.report()["global_sparsity"])
    training.train_round(trainer.fit_model, trainer.epoch_trainer(), len(trainer.data.y_train),
                         seeds[copy], schedule, trainer.listener, r,
                         lambda: _val(trainer))
    return trainer.model.get_weights()


def _schedule(trainer: Trainer, k: int) -> training.Schedule:
    """A round's schedule from step k (round 0's, which alone may start at 0)."""
    return replace(trainer.schedule(0, "copy"), start_step=k)


def along_line(trainer: Trainer, a: list[np.ndarray], b: list[np.ndarray],
                points: int) -> dict:
    """Test and validation error at `points` α from a to b, each pair's instability, and the
    seconds the evaluation took."""
    started = time.perf_counter()
    curves: dict[str, list[float]] = {"test": [], "val": []}
    labels = {"test": trainer.data.y_test, "val": trainer.data.y_val}
    batchnorm = batchnorm_layers(trainer.fit_model)
    for alpha in alphas(points):
        trainer.model.set_weights(interpolate(a, b, alpha))
        if batchnorm:
            recompute_batchnorm(batchnorm, trainer.fit_model, _batchnorm_batches(trainer))
        for split, curve in curves.items():
            accuracy = training.loss_and_accuracy(trainer.probabilities(split), labels[split])[1]
            curve.append(1.0 - accuracy)
    return {"alphas": alphas(points),
            **{f"{split}_error": curve for split, curve in curves.items()},
            **{f"endpoint_{split}_error": [curve[0], curve[-1]]
               for split, curve in curves.items()},
            **{f"{split}_instability": barrier(curve) for split, curve in curves.items()},
            "line_seconds": time.perf_counter() - started}


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's trainable BatchNormalization layers, nested models included (a frozen base's
    keep their statistics: they are the same at both endpoints)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += batchnorm_layers(layer)
        elif isinstance(layer, keras.layers.BatchNormalization) and layer.trainable:
            found.append(layer)
    return found


def _batchnorm_batches(trainer: Trainer) -> list[np.ndarray]:
    """The first BATCHNORM_BATCHES training batches of the run's epoch-0 order: the same at
    every α, and batches round 0 trained on."""
    size = trainer.cfg.train.batch_size
    order = training.epoch_order(trainer.cfg.run.seed, 0, len(trainer.data.y_train))
    x = trainer.inputs["train"]
    return [x[np.sort(order[i:i + size])]
            for i in range(0, min(len(order), BATCHNORM_BATCHES * size), size)]


def recompute_batchnorm(layers: list[keras.layers.BatchNormalization], model: keras.Model,
                        batches: list[np.ndarray]) -> None:
    """Each layer's moving mean and variance made the plain average of its batch statistics
    over `batches` (the model run in training mode): momentum (i − 1)/i on the i-th batch gives
    the running mean exactly, whatever the stored values were."""
    momenta = [layer.momentum for layer in layers]
    try:
        for i, x in enumerate(batches):
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(x, training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
