"""A round's controls: random_reinit trains the ticket's masks from freshly drawn weights,
random_prune the ticket's rewind point under random masks of the same per-layer sparsity (of the
same units per layer, at channel granularity); each is
a series of its own in the run folder's controls/. They train after the ticket, one after another,
or with it as one stack (train.stack).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config.load import Config
from ..foundations import runfolder
from ..foundations.events import IMP
from ..foundations.round_record import STACKED, RoundRecord
from .trainer import Trainer, seed_for

_REINIT_SEED_OFFSET = 100_003
_RANDOM_PRUNE_SEED_OFFSET = 200_003


def _control_start(trainer: Trainer, name: str, round_index: int,
                   imp_masks: dict[str, np.ndarray]) -> tuple[list[np.ndarray], dict]:
    """Where control `name` of this round starts: random_reinit from freshly drawn weights on
    the ticket's masks, random_prune from the ticket's rewind point on random masks of the same
    per-layer sparsity."""
    seed = trainer.cfg.run.seed
    if name == "random_reinit":
        return trainer.fresh_init(seed_for(seed, round_index, _REINIT_SEED_OFFSET)), imp_masks
    return trainer.manager.rewind_weights, trainer.manager.random_like(
        imp_masks, seed_for(seed, round_index, _RANDOM_PRUNE_SEED_OFFSET))


def _finish_control(trainer: Trainer, name: str, round_index: int, run_dir: Path,
                    start: list[np.ndarray], record: RoundRecord) -> None:
    out = runfolder.control_dir(run_dir, name)
    trainer.manager.save(out / runfolder.mask_file(round_index), start)
    runfolder.append_round(out, record)
    trainer.listener.round_finished(record)


def run_controls(trainer: Trainer, round_index: int, run_dir: Path) -> None:
    """Train this round's controls on the IMP masks' sparsity; leave the IMP state as it was."""
    manager = trainer.manager
    imp_masks, imp_weights = dict(manager.masks), trainer.model.get_weights()
    for name in trainer.cfg.imp.controls:
        start, masks = _control_start(trainer, name, round_index, imp_masks)
        manager.set_masks(masks)
        manager.rewind(start)
        record = trainer.evaluate(round_index, name, trainer.train(round_index, name))
        _finish_control(trainer, name, round_index, run_dir, start, record)
        manager.set_masks(imp_masks)
    trainer.model.set_weights(imp_weights)


def stacked_round(trainer: Trainer, round_index: int, run_dir: Path) -> RoundRecord:
    """The ticket and its controls of round >= 1 trained as one stack (train.stack), then each
    evaluated, saved and recorded as when trained one after another (their records say
    `train_step: stacked`); the model ends with the ticket's weights and masks. Returns the
    ticket's record."""
    manager = trainer.manager
    imp_masks = dict(manager.masks)
    starts = {IMP: (manager.rewind_weights, imp_masks)}
    starts |= {name: _control_start(trainer, name, round_index, imp_masks)
               for name in trainer.cfg.imp.controls}
    trained = trainer.train_stacked(round_index, list(starts.values()))
    records = {}
    for (name, (start, masks)), (result, weights) in zip(starts.items(), trained):
        manager.set_masks(masks)
        trainer.model.set_weights(weights)
        records[name] = replace(trainer.evaluate(round_index, name, result),
                                train_step=STACKED, stacked_series=len(starts),
                                jit_compile=False)
        if name != IMP:
            _finish_control(trainer, name, round_index, run_dir, start, records[name])
    manager.set_masks(imp_masks)
    trainer.model.set_weights(trained[0][1])
    return records[IMP]


def prepare_controls(cfg: Config, run_dir: Path, next_round: int,
                     round0: RoundRecord | None) -> None:
    for name in cfg.imp.controls:
        out = runfolder.control_dir(run_dir, name)
        out.mkdir(parents=True, exist_ok=True)
        runfolder.keep_rounds_below(out / runfolder.ROUNDS, next_round)
        if round0 is not None and next_round == 1 and not runfolder.read_rounds(out):
            runfolder.append_round(out, replace(round0, series=name))
