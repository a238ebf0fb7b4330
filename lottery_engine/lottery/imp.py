"""The Iterative Magnitude Pruning loop (Frankle & Carbin 2019; OpenLTH semantics).

Round 0 trains the dense network. Round r ≥ 1 prunes `prune_rate` of the surviving weights, rewinds
every weight to the rewind point (θ0, or the weights after step k of round 0), resets the optimizer
and trains again: steps k..T in round 0's data order (training/round.py). Every round records its
early-stop point (lowest validation loss) besides its end. Every round's randomness is seeded from
(seed, round), the data order from (seed, epoch), and a round's inputs (masks, rewind point,
previous weights, data split) are on disk before it starts, so a run resumed from its folder gives
the result of an uninterrupted one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..config.load import Config, to_yaml
from ..data import dataset as data_lib
from ..foundations import runfolder
from ..foundations.events import IMP, Listener
from ..foundations.round_record import RoundRecord
from ..models import keras_file
from ..pruning.masks import load_masks
from . import controls
from .runtime import setup_runtime
from .trainer import Trainer

log = logging.getLogger("lottery")


def _write_frozen_config(run_dir: Path, cfg: Config) -> None:
    """Freeze the run's config into its folder (runfolder.read_frozen_config reads it back)."""
    runfolder.atomic_write(run_dir / runfolder.CONFIG, to_yaml(cfg))


def _restore(trainer: Trainer, run_dir: Path, last_round: int) -> None:
    """Bring model and masks to the end of `last_round` (rewind point included) from the folder."""
    trainer.model.load_weights(run_dir / runfolder.REWIND)
    trainer.manager.rewind_weights = trainer.model.get_weights()
    trainer.manager.set_masks(load_masks(run_dir / runfolder.mask_file(last_round)))
    trainer.model.load_weights(run_dir / runfolder.weights_file(last_round))


def run(cfg: Config, run_dir: Path, listener: Listener | None = None) -> list[RoundRecord]:
    """Run (or resume) IMP into `run_dir`; returns every round's record of the IMP series.

    A folder that already holds rounds is resumed after its last finished round.
    """
    listener = listener or Listener()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    frozen = keras_file.pin(cfg, run_dir)  # the config as the folder keeps it
    cfg = keras_file.inside(frozen, run_dir)
    setup_runtime(cfg.run.device)
    listener.phase_started("loading data")
    records = runfolder.read_rounds(run_dir)
    split_path = run_dir / runfolder.SPLIT
    if records and split_path.is_file():
        dataset = data_lib.load(cfg.data, cfg.run.seed, data_lib.load_split(split_path),
                                listener.work_progress)
    else:
        records = []
        (run_dir / runfolder.ROUNDS).unlink(missing_ok=True)
        _write_frozen_config(run_dir, frozen)
        dataset = data_lib.load(cfg.data, cfg.run.seed, progress=listener.work_progress)
        data_lib.save_split(dataset.split, split_path)
        runfolder.write_json(run_dir / runfolder.CLASSES, dataset.class_names)
    listener.phase_started("building the model")
    trainer = Trainer(cfg, dataset, run_dir, listener)
    if records:
        _restore(trainer, run_dir, records[-1].round)
        trainer.jit = records[-1].jit_compile
        log.info("resuming %s after round %d", run_dir, records[-1].round)
    else:
        trainer.model.save_weights(run_dir / runfolder.REWIND)
    controls.prepare_controls(cfg, run_dir, len(records), records[0] if records else None)

    manager, imp = trainer.manager, cfg.imp
    stacked: bool | None = None  # asked at the first round >= 1, once round 0 chose XLA or not
    for round_index in range(len(records), imp.num_rounds + 1):
        if records and records[-1].global_sparsity >= imp.target_sparsity:
            break
        if round_index > 0:
            manager.prune(imp.prune_rate, imp.scope, trainer.layer_rates)
            manager.rewind()
            if stacked is None:
                stacked = trainer.stacking()
        if round_index > 0 and stacked:
            record = controls.stacked_round(trainer, round_index, run_dir)
        else:
            result = trainer.train(round_index, IMP)
            if result.snapshot is not None:
                manager.rewind_weights = result.snapshot
                _save_weights_list(trainer, result.snapshot, run_dir / runfolder.REWIND)
            record = trainer.evaluate(round_index, IMP, result)
        manager.save(run_dir / runfolder.mask_file(round_index))
        trainer.model.save_weights(run_dir / runfolder.weights_file(round_index))
        if round_index == 0:
            controls.prepare_controls(cfg, run_dir, 1, record)
        elif not stacked:
            controls.run_controls(trainer, round_index, run_dir)
        runfolder.append_round(run_dir, record)
        records.append(record)
        listener.round_finished(record)
    return records


def _save_weights_list(trainer: Trainer, weights: list[np.ndarray], path: Path) -> None:
    """Save a weight list in the model's .weights.h5 format without disturbing the model."""
    current = trainer.model.get_weights()
    trainer.model.set_weights(weights)
    trainer.model.save_weights(path)
    trainer.model.set_weights(current)
