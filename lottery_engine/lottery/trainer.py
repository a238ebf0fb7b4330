"""One run's trainer: its model, masks and data, and the round-level operations on them.

It builds and checks the model, caches a frozen base's outputs, picks the training path (the fused
step, XLA timed against graph mode under jit_compile: auto; Keras' fit; a stack of series for a
round's ticket and controls), trains one round on its schedule and evaluates it into the round's
record. imp.py runs the rounds; controls.py trains a round's controls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ..config.architectures import ARCHITECTURES
from ..config.load import Config, ConfigError, step_clock
from ..data import dataset as data_lib
from ..data import feature_cache
from ..evaluation import flops, metrics
from ..evaluation.scoring import SplitScorer
from ..foundations.events import IMP, STACK, Listener
from ..foundations.round_record import RoundRecord
from ..models import builders as models
from ..pruning import prunable
from ..pruning.channels import mask_manager
from ..training import keras_fit
from ..training import round as training
from ..training.stacked_round import train_stacked_round
from ..training.stacked_step import StackedStep, refusal, unprofitable
from ..training.train_step import FusedStep, choose_jit

log = logging.getLogger("lottery")

# jit_compile: auto times XLA against graph mode only when a round is long enough to repay the
# probe (a few seconds of tracing and compiling both); shorter runs take graph mode.
PROBE_MIN_STEPS = 1000


def seed_for(seed: int, round_index: int, offset: int = 0) -> int:
    return seed + 1000 * round_index + offset


@dataclass
class Trainer:
    """One run's model, masks and data, and the round-level operations on them."""

    cfg: Config
    data: data_lib.Dataset
    run_dir: Path
    listener: Listener = field(default_factory=Listener)

    def __post_init__(self) -> None:
        keras.utils.set_random_seed(self.cfg.run.seed)
        self.clock = step_clock(self.cfg, len(self.data.y_train))
        self.model = self._build()
        models.check_input(self.model, self.data.input_shape)
        models.check_output(self.model, self.data.num_classes)
        self.logits = models.is_logits(self.model, self.cfg.train.loss)
        kernels = prunable.select(self.model, self.cfg.imp.prunable_layers)
        self.layer_rates = prunable.expand_rates(self.model, list(kernels),
                                                 self.cfg.imp.layer_rates)
        self.manager = mask_manager(self.model, kernels, self.cfg.imp)
        self.total_params = sum(int(np.prod(w.shape)) for w in self.model.weights)
        self._initial_optimizer: list[np.ndarray] | None = None
        self._step: FusedStep | None = None
        self._stacks: dict[int, StackedStep] = {}  # by series count: traced once per size
        self._scorers: dict[str, SplitScorer] = {}
        self.jit: bool | None = None  # the XLA choice of the run's earlier rounds, when resumed
        self.step_info: dict = {"train_step": self.cfg.train.step}
        self._train: tuple[tf.Tensor, tf.Tensor] | None = None
        self._warn_base_flops()
        self._prepare_inputs()

    def _warn_base_flops(self) -> None:
        """The plan's `vgg16_base_flops` replaces a computed figure: say so, once per run."""
        given = self.cfg.flops.vgg16_base_flops
        if given is None:
            return
        bases = [layer for layer in self.model.layers if isinstance(layer, keras.Model)]
        if not bases:
            log.warning("flops.vgg16_base_flops: ignored; %s has no VGG16 base",
                        self.cfg.train.arch)
            return
        log.warning("flops.vgg16_base_flops: counting the frozen base as %s FLOPs, as configured, "
                    "instead of the %s computed from its layers at this input size. The original "
                    "plan's 14,714,734,080 is about VGG16's parameter count (14,714,688) x 1,000, "
                    "not its FLOPs.", f"{given:,}", f"{flops.model_flops(bases[0]):,}")

    def _prepare_inputs(self) -> None:
        """What the trained model sees: images, or a frozen base's cached outputs (SPEC §8).

        With the cache, `fit_model` is the head alone (sharing the model's layers and masks), and
        inference time is the base's time, measured once, plus the head's, measured per round.
        """
        data = self.data
        # a user's graph need not be a chain of layers, which split_frozen assumes
        cacheable = self.cfg.train.feature_cache and not ARCHITECTURES[self.cfg.train.arch].own
        parts = models.split_frozen(self.model) if cacheable else None
        self.fit_model, self.base_ms = self.model, 0.0
        self.inputs = {"train": data.x_train, "val": data.x_val, "test": data.x_test}
        if parts is None:
            return
        extractor, self.fit_model = parts
        progress = self.listener.work_progress
        self.inputs = {name: feature_cache.cached(extractor, x, progress, f"base features ({name})")
                       for name, x in self.inputs.items()}
        self.base_ms = metrics.inference_time(extractor, data.x_val[:32]).median

    def _build(self, fresh: bool = False) -> keras.Model:
        return models.build(self.cfg.train, self.data.input_shape, self.data.num_classes, fresh)

    def fresh_init(self, seed: int) -> list[np.ndarray]:
        """Rewind weights with every trainable weight newly initialised (random_reinit); frozen
        weights (a pretrained base, fixed preprocessing) keep their values."""
        keras.utils.set_random_seed(seed)
        fresh = self._build(fresh=True).get_weights()
        trainable = {id(v) for v in self.model.trainable_weights}
        return [new if id(v) in trainable else old for v, new, old in
                zip(self.model.weights, fresh, self.manager.rewind_weights)]

    def _chunk(self) -> int:
        """Steps per call of the compiled step: every point the monitor must see is a boundary."""
        return training.steps_per_execution(self.clock.batches, self.cfg.train.eval_every,
                                            self.clock.rewind)

    def epoch_trainer(self) -> training.EpochTrainer:
        """The configured training path with a fresh optimizer: every round and series starts
        from one. The first call compiles; later ones reset the optimizer state and keep the
        traced step: no re-tracing per round (it cost 0.6-1.0 s each)."""
        train = self.cfg.train
        if train.step == "keras":
            self._fresh_optimizer()
            return keras_fit.keras_epochs(self.fit_model, self._train_tensors(), train.batch_size)
        if self._step is None:
            self.listener.phase_started("compiling the training step")
            _check_own_training(self.fit_model)
            self._step = self._make_step()
        else:
            self._step.reset()
        return training.fused_epochs(self._step, train.batch_size, self._chunk())

    def _make_step(self) -> FusedStep:
        """The fused step, with XLA as configured, as the run's earlier rounds had it, or as
        timing both on this run's shapes picks (jit_compile: auto); the record says which."""
        def make(jit: bool) -> FusedStep:
            return FusedStep(self.fit_model, self._train_tensors(), self.cfg.train, self.logits,
                             jit, self.clock.batches, tuple(self.cfg.data.augment),
                             self.cfg.run.seed)

        jit = self.cfg.train.jit_compile if self.jit is None else self.jit
        steps = self.clock.total
        full = len(self.data.y_train) // self.cfg.train.batch_size  # full batches per epoch
        if jit == "auto" and (steps < PROBE_MIN_STEPS or not full):
            jit = False
            log.info("jit_compile: auto: graph mode, a round of %d steps is too short to time "
                     "XLA against it", steps)
        if jit != "auto":
            self.step_info["jit_compile"] = bool(jit)
            return make(bool(jit))
        self.listener.phase_started("timing the training step with and without XLA")
        sample = training.epoch_order(self.cfg.run.seed, 0, len(self.data.y_train))
        rows = min(self._chunk(), full)
        step, probe = choose_jit(make, sample[:rows * self.cfg.train.batch_size].reshape(rows, -1),
                                 self.fit_model.variables)
        log.info("jit_compile: auto chose %s (ms per step: %s)",
                 "XLA" if probe["jit_compile"] else "graph mode",
                 ", ".join(f"{way} {ms:.2f}" if ms is not None else f"{way} refused"
                           for way, ms in probe["probe_ms_per_step"].items()))
        if "xla_refused" in probe:
            log.info("%s", probe["xla_refused"])
        self.step_info.update(probe)
        return step

    def stacking(self) -> bool:
        """Whether rounds >= 1 train their series as one stack: asked once per run, with
        controls, after round 0 chose XLA or not (`stack_refusal`, tried at every size the round
        may shrink to). Series s holds the rewind point and the masks each rolled by s: distinct
        series drawn without a random number, so the run goes on as if never checked. The log
        and the records (`stack_refused`) say why not."""
        train = self.cfg.train
        if not train.stack or not self.cfg.imp.controls or train.step != "fused":
            return False
        manager = self.manager
        trials = ([([np.roll(w, s) for w in manager.rewind_weights],
                    {name: np.roll(m, s) for name, m in manager.masks.items()})
                   for s in range(size)]
                  for size in range(1 + len(self.cfg.imp.controls), 0, -1))
        refused = self.stack_refusal(trials)
        self.step_info["stack_refused"] = refused
        if refused:
            log.info("train.stack: the series train one after another: %s", refused)
        return refused is None

    def stack_refusal(self, trials: Iterable[list[tuple[list[np.ndarray], dict]]],
                      own_batches: bool = False) -> str | None:
        """Why series would not train as one stack, or None: train.stack on the fused step, a
        model the stack can express (stacked_step.refusal), under stack: auto only where it pays
        (stacked_step.unprofitable), and for each trial's (weights, masks) of its series the
        stack's outputs and loss on the first training batch the model's
        (StackedStep.disagreement; `own_batches`: each series given the batch as its own). IMP
        rounds (`stacking`) and instability copies both ask here."""
        train = self.cfg.train
        if not train.stack or train.step != "fused":
            return "train.stack is off" if not train.stack else f"train.step is {train.step}"
        if self.fit_model is not self.model:
            return "a frozen base's head trains on cached features"
        jit = self.step_info.get("jit_compile", self.jit)
        xla = jit is True or jit is None and train.jit_compile is True
        if why := refusal(self.model):
            return why
        if train.stack == "auto" and (slower := unprofitable(self.model, xla)):
            return f"{slower} (stack: true stacks anyway)"
        self.listener.phase_started("checking the stacked step against the model")
        x, y = (tensor[:train.batch_size] for tensor in self._train_tensors())
        for starts in trials:
            stack = self._stack(len(starts))
            stack.load([weights for weights, _ in starts], [masks for _, masks in starts])
            if why := stack.disagreement(self.model, self.logits, x, y, own_batches=own_batches):
                return why
        return None

    def _stack(self, series: int) -> StackedStep:
        if series not in self._stacks:
            self.listener.phase_started(f"compiling the training step for {series} series")
            self._stacks[series] = StackedStep(
                self.model, self.manager.kernel_variables, series, self._train_tensors(),
                self.cfg.train, self.clock.batches, tuple(self.cfg.data.augment),
                self.cfg.run.seed)
        return self._stacks[series]

    def train_stacked(self, round_index: int, starts: list[tuple[list[np.ndarray], dict]],
                      schedule: training.Schedule | None = None,
                      orders: list[int] | None = None
                      ) -> list[tuple[training.RoundTraining, list[np.ndarray]]]:
        """A round >= 1's series trained together, each from its (weights, masks), on the
        round's schedule or `schedule`, in the run's data order or each in its own (`orders`:
        instability copies); returns each one's RoundTraining and the weights it ends with."""
        keras.utils.set_random_seed(seed_for(self.cfg.run.seed, round_index))
        schedule = schedule or self.schedule(round_index, "stack")
        self.listener.round_started(round_index, STACK,
                                    self.manager.report()["global_sparsity"])
        x_val, y_val = tf.constant(self.inputs["val"]), self.data.y_val
        return train_stacked_round(
            self._stack, starts, len(self.data.y_train), self.cfg.run.seed, schedule,
            self.listener, round_index, self._chunk(),
            lambda step: [training.loss_and_accuracy(p, y_val)
                          for p in step.probabilities(x_val)], orders)

    def _fresh_optimizer(self) -> None:
        """The Keras path's fresh optimizer: the first compiles; later ones reset the optimizer
        to its state before any step, which leaves the traced train and test steps in place."""
        if self._initial_optimizer is None:
            self.listener.phase_started("compiling the training step")
            keras_fit.compile_model(self.fit_model, self.cfg.train, self.logits, self._chunk())
            self._initial_optimizer = keras_fit.optimizer_state(self.fit_model)
        else:
            keras_fit.reset_optimizer(self.fit_model, self._initial_optimizer)

    def _train_tensors(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The training inputs as tensors, made once per run (each epoch gathers its batches)."""
        if self._train is None:
            self._train = (tf.constant(self.inputs["train"]), tf.constant(self.data.y_train))
        return self._train

    def schedule(self, round_index: int, series: str) -> training.Schedule:
        """Round 0 trains steps 0..T and keeps the rewind point; every later round and control
        starts at the rewind step k and trains k..T, continuing round 0's data order (OpenLTH)."""
        train, k = self.cfg.train, self.clock.rewind
        first = round_index == 0 and series == IMP
        return training.Schedule(train.batch_size, self.clock.batches, train.epochs,
                                 start_step=0 if round_index == 0 else k,
                                 eval_every=train.eval_every, snapshot_step=k if first else 0,
                                 early_stopping=train.early_stopping, patience=train.patience)

    def train(self, round_index: int, series: str) -> training.RoundTraining:
        """A fresh optimizer, then this round's schedule."""
        keras.utils.set_random_seed(seed_for(self.cfg.run.seed, round_index))
        train_epoch = self.epoch_trainer()
        schedule = self.schedule(round_index, series)
        self.listener.round_started(round_index, series, self.manager.report()["global_sparsity"])
        result = training.train_round(
            self.fit_model, train_epoch, len(self.data.y_train), self.cfg.run.seed, schedule,
            self.listener, round_index,
            lambda: self._loss_and_accuracy("val"))
        if schedule.snapshot_step and result.snapshot is None:
            ended = "stopped early after" if result.stopped_early else "ended after"
            raise ConfigError(f"imp.rewind: {self.cfg.imp.rewind} is past the end of round 0 "
                              f"({ended} {result.steps} steps); choose a smaller N.")
        return result

    def probabilities(self, split: str) -> np.ndarray:
        """The model's class probabilities on the val or test split, as it is now."""
        if split not in self._scorers:
            self._scorers[split] = SplitScorer(self.fit_model, self.inputs[split], self.logits)
        return self._scorers[split].probabilities()

    def _loss_and_accuracy(self, split: str) -> tuple[float, float]:
        labels = self.data.y_val if split == "val" else self.data.y_test
        return training.loss_and_accuracy(self.probabilities(split), labels)

    def _early_stop_point(self, result: training.RoundTraining, val: dict, test: dict) -> dict:
        """The round's numbers at its lowest validation loss (Frankle & Carbin's early stop)."""
        if result.best_weights is not None:
            final = self.fit_model.get_weights()
            self.fit_model.set_weights(result.best_weights)
            val = {"val_accuracy": self._loss_and_accuracy("val")[1]}
            test = {"test_accuracy": self._loss_and_accuracy("test")[1]}
            self.fit_model.set_weights(final)
        best = next(point for point in result.curve if point[0] == result.best_step)
        return {"early_stop_step": result.best_step, "early_stop_val_loss": best[1],
                "early_stop_val_accuracy": val["val_accuracy"],
                "early_stop_test_accuracy": test["test_accuracy"]}

    def evaluate(self, round_index: int, series: str, result: training.RoundTraining
                 ) -> RoundRecord:
        report = self.manager.report()
        val = metrics.classification_metrics(self.data.y_val, self.probabilities("val"), "val")
        test = metrics.classification_metrics(self.data.y_test, self.probabilities("test"),
                                              "test")
        densities = {n: 1.0 - s for n, s in report["layer_sparsity"].items()}
        per_layer_flops = flops.layer_flops(self.model, densities,
                                            self.cfg.flops.include_frozen_base,
                                            self.cfg.flops.vgg16_base_flops)
        pruned = report["total_prunable"] - report["remaining_prunable"]
        timing = metrics.inference_time(self.fit_model, self.inputs["val"]).plus(self.base_ms)
        return RoundRecord(
            round=round_index,
            series=series,
            **report,
            remaining_total=self.total_params - pruned,
            total_params=self.total_params,
            **val,
            **test,
            flops=sum(per_layer_flops.values()),
            layer_flops=per_layer_flops,
            inference_ms=timing.median,
            inference_ms_range=[timing.low, timing.high],
            train_seconds=result.seconds,
            epochs=len(result.history.get("loss", [])),
            start_step=result.start_step,
            steps=result.steps,
            stopped_early=result.stopped_early,
            kept_weights=result.kept_weights,  # what val_*/test_* are of; early_stop_*: measured
            **self.step_info,
            **self._early_stop_point(result, val, test),
            val_curve=result.curve,
            history=result.history,
        )


def _check_own_training(model: keras.Model) -> None:
    """A model class with its own train_step or compute_loss trains its way only under `fit`;
    the fused step would bypass that code and train something else without a word."""
    overridden = [name for name in ("train_step", "compute_loss")
                  if getattr(type(model), name) is not getattr(keras.Model, name)]
    if overridden:
        raise ConfigError(f"train.step: {type(model).__name__} overrides {' and '.join(overridden)}"
                          f", which the fused step would bypass; set train.step: keras")
