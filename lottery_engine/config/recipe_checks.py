"""The optimizer's and the learning-rate schedule's keys (training/recipes.py computes the
schedule): each refused in one line, and a key the chosen optimizer or schedule would ignore is
refused rather than silently ignored.
"""

from __future__ import annotations

from typing import Any

from .schema import LR_SCHEDULES, MOMENTUM_FORMS, WEIGHT_DECAY_ON, Config, Problems, TrainConfig
from .values import MAX_STEP, check_bool, choice, fail, int_in, is_int, is_number

MAX_WEIGHT_DECAY = 1.0  # 1e-4..5e-4 for sgd, up to ~0.1 for adamw


def _momentum(train: TrainConfig) -> None:
    if not is_number(train.momentum) or not 0 <= train.momentum < 1:
        fail("train.momentum", train.momentum, "expected a number in [0, 1)")
    if train.optimizer != "sgd" and train.momentum != TrainConfig.momentum:
        fail("train.momentum", train.momentum, f"only sgd uses momentum ({train.optimizer} has "
             f"its own moment estimates); use optimizer: sgd, or leave momentum out")


def _nesterov(train: TrainConfig) -> None:
    if train.nesterov and train.optimizer != "sgd":
        fail("train.nesterov", train.nesterov, f"Nesterov momentum is sgd's; use optimizer: "
             f"sgd, or nesterov: false with {train.optimizer}")
    if train.nesterov and train.momentum == 0:
        fail("train.nesterov", train.nesterov, "Nesterov momentum needs train.momentum above 0")


def _momentum_form(train: TrainConfig) -> None:
    """The form is sgd's momentum's alone; with momentum 0 (plain SGD) both forms are one."""
    if train.momentum_form == TrainConfig.momentum_form:
        return
    if train.optimizer != "sgd" or train.momentum == 0:
        fail("train.momentum_form", train.momentum_form, "only sgd with momentum above 0 has a "
             "momentum form; use optimizer: sgd with momentum, or leave momentum_form out")


def _weight_decay(value: Any) -> None:
    if not is_number(value) or not 0 <= value <= MAX_WEIGHT_DECAY:
        fail("train.weight_decay", value, f"expected a number in [0, {MAX_WEIGHT_DECAY:g}] "
             f"(0: none; OpenLTH's ResNet-20 uses 1e-4)")


def _weight_decay_on(train: TrainConfig) -> None:
    if train.weight_decay_on != TrainConfig.weight_decay_on and train.weight_decay == 0:
        fail("train.weight_decay_on", train.weight_decay_on, "only a weight_decay above 0 "
             "decays anything; set train.weight_decay, or leave weight_decay_on out")


def _milestones(train: TrainConfig) -> None:
    """Epochs at which a step schedule multiplies the rate by gamma: only with lr_schedule
    step, which needs at least one; strictly increasing, each inside training (1..epochs-1)."""
    key, milestones = "train.milestones", train.milestones
    if not isinstance(milestones, list) or not all(map(is_int, milestones)):
        fail(key, milestones, "expected a list of epochs, e.g. [80, 120]")
    if train.lr_schedule != "step":
        if milestones:
            fail(key, milestones, f"only lr_schedule: step uses milestones (it is "
                 f"{train.lr_schedule}); set lr_schedule: step, or milestones: []")
        return
    if not milestones:
        fail(key, milestones, "lr_schedule step needs the epochs at which the rate drops, "
             "e.g. milestones: [80, 120]")
    if any(b <= a for a, b in zip(milestones, milestones[1:])):
        fail(key, milestones, "epochs in strictly increasing order")
    if not 1 <= milestones[0] or not milestones[-1] <= train.epochs - 1:
        fail(key, milestones, f"each epoch from 1 to train.epochs - 1 ({train.epochs - 1}): a "
             f"drop at 0 or after the last epoch changes nothing")


def _gamma(train: TrainConfig) -> None:
    if not is_number(train.gamma) or not 0 < train.gamma <= 1:
        fail("train.gamma", train.gamma, "expected a number in (0, 1], the factor at each "
             "milestone")
    if train.lr_schedule != "step" and train.gamma != TrainConfig.gamma:
        fail("train.gamma", train.gamma, f"only lr_schedule: step uses gamma (it is "
             f"{train.lr_schedule}); set lr_schedule: step, or leave gamma out")


def check_recipe(cfg: Config, problems: Problems) -> None:
    """The optimizer's and the schedule's keys (recipes.py computes the schedule); a key that
    the chosen optimizer or schedule would ignore is refused rather than silently ignored."""
    train = cfg.train
    problems.check(_momentum, train, needs=("train.optimizer",))
    problems.check(check_bool, "train.nesterov", train.nesterov)
    problems.check(_nesterov, train, needs=("train.optimizer", "train.nesterov"))
    problems.check(choice, "train.momentum_form", train.momentum_form, MOMENTUM_FORMS)
    problems.check(_momentum_form, train, needs=("train.optimizer", "train.momentum",
                                                 "train.momentum_form"))
    problems.check(_weight_decay, train.weight_decay)
    problems.check(choice, "train.weight_decay_on", train.weight_decay_on, WEIGHT_DECAY_ON)
    problems.check(_weight_decay_on, train, needs=("train.weight_decay", "train.weight_decay_on"))
    problems.check(choice, "train.lr_schedule", train.lr_schedule, LR_SCHEDULES)
    problems.check(_milestones, train, needs=("train.lr_schedule", "train.epochs"))
    problems.check(_gamma, train, needs=("train.lr_schedule",))
    problems.check(int_in, "train.warmup_steps", train.warmup_steps, 0, MAX_STEP)
