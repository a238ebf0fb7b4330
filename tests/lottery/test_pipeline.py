"""End to end at tiny size: real TensorFlow training, real files."""

import json

import keras
import numpy as np
import pytest

from lottery_engine import pipeline
from lottery_engine.data import dataset as data_lib
from lottery_engine.foundations import runfolder
from lottery_engine.lottery import imp, ticket
from lottery_engine.lottery.trainer import Trainer
from lottery_engine.pruning.masks import load_masks

from tests.conftest import round_record, tiny_config


def _check_run_folder(run_dir, rounds):
    records = runfolder.read_rounds(run_dir)
    assert [r["round"] for r in records] == list(range(rounds + 1))
    previous = None
    for r in records:
        assert abs(r["global_sparsity"] - (1 - 0.8 ** r["round"])) < 1e-3
        masks = load_masks(run_dir / runfolder.mask_file(r["round"]))
        for name, mask in masks.items():
            assert set(np.unique(mask)) <= {0.0, 1.0}
            if previous is not None:
                assert np.all(mask <= previous[name])
        previous = masks
    return records


def test_tiny_run_leaves_the_files_of_spec_section_4(tiny_run):
    for name in [runfolder.CONFIG, runfolder.ROUNDS, runfolder.FINISHED, runfolder.LOG,
                 runfolder.TICKET_MODEL, runfolder.TICKET_MASK, runfolder.REPORT_HTML,
                 runfolder.REPORT_MD, "mask_round_2.npz", "model_round_2.weights.h5"]:
        assert (tiny_run / name).is_file(), name
    records = _check_run_folder(tiny_run, 2)
    assert records[1]["remaining_prunable"] < records[0]["remaining_prunable"]
    assert set(records[0]["layer_sparsity"]) == {"conv_1", "conv_2", "dense_1", "dense_2", "output"}
    assert records[2]["flops"] < records[0]["flops"]
    assert len(records[0]["history"]["loss"]) == 1
    assert "<html" in (tiny_run / runfolder.REPORT_HTML).read_text()[:200].lower()


def test_pruned_weights_are_exactly_zero_in_every_saved_round(tiny_run):
    cfg = tiny_config()
    dataset = data_lib.load(cfg.data, cfg.run.seed)
    trainer = Trainer(cfg, dataset, tiny_run)
    for r in range(3):
        trainer.model.load_weights(tiny_run / runfolder.weights_file(r))
        masks = load_masks(tiny_run / runfolder.mask_file(r))
        for name, mask in masks.items():
            kernel = trainer.model.get_layer(name).kernel.numpy()
            assert np.all(kernel[mask == 0] == 0.0)
            assert np.count_nonzero(kernel) == int(mask.sum())


def test_winning_ticket_reloads_and_reproduces_its_val_accuracy(tiny_run):
    summary = json.loads((tiny_run / runfolder.TICKET_JSON).read_text())
    assert summary["round"] >= 1
    assert abs(summary["reloaded_val_accuracy"] - summary["logged_val_accuracy"]) <= 1e-6
    assert summary["compressed_bytes"] < summary["dense_bytes"]
    model = keras.saving.load_model(tiny_run / runfolder.TICKET_MODEL, safe_mode=True)
    masks = load_masks(tiny_run / runfolder.TICKET_MASK)
    for name, mask in masks.items():
        assert np.all(model.get_layer(name).kernel.numpy()[mask == 0] == 0.0)


def test_controls_are_series_of_their_own(tiny_run):
    series = runfolder.series(tiny_run)
    assert set(series) == {"imp", "random_reinit", "random_prune"}
    imp_records = series["imp"]
    for name in ("random_reinit", "random_prune"):
        records = series[name]
        assert [r["round"] for r in records] == [0, 1, 2]
        assert all(r["series"] == name for r in records)
        assert records[0]["val_accuracy"] == imp_records[0]["val_accuracy"]
        for r, ref in zip(records[1:], imp_records[1:]):
            assert r["layer_sparsity"] == pytest.approx(ref["layer_sparsity"])
    reinit = load_masks(tiny_run / "controls/random_reinit/mask_round_2.npz")
    rand = load_masks(tiny_run / "controls/random_prune/mask_round_2.npz")
    main = load_masks(tiny_run / "mask_round_2.npz")
    assert all(np.array_equal(reinit[n], main[n]) for n in main)
    assert not all(np.array_equal(rand[n], main[n]) for n in main)


def _deterministic(records):
    return [{k: v for k, v in r.items() if k not in ("inference_ms", "inference_ms_range", "train_seconds")}
            for r in records]


def test_same_seed_same_masks_and_metrics(tmp_path, tiny_run):
    cfg = tiny_config(imp__controls=["random_reinit", "random_prune"])
    pipeline.execute(cfg, tmp_path / "again")
    assert _deterministic(runfolder.read_rounds(tmp_path / "again")) == \
        _deterministic(runfolder.read_rounds(tiny_run))
    for r in range(3):
        a = load_masks(tmp_path / "again" / runfolder.mask_file(r))
        b = load_masks(tiny_run / runfolder.mask_file(r))
        assert all(np.array_equal(a[n], b[n]) for n in a)


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, tiny_run):
    """Stop after round 1 (as a crash would), resume in the same folder: same result."""
    run_dir = tmp_path / "resumed"
    cfg = tiny_config(imp__controls=["random_reinit", "random_prune"])
    imp.run(tiny_config(imp__controls=["random_reinit", "random_prune"], imp__num_rounds=1),
            run_dir)
    pipeline.execute(cfg, run_dir)
    assert _deterministic(runfolder.read_rounds(run_dir)) == \
        _deterministic(runfolder.read_rounds(tiny_run))
    for name in ("random_reinit", "random_prune"):
        assert _deterministic(runfolder.read_rounds(runfolder.control_dir(run_dir, name))) == \
            _deterministic(runfolder.read_rounds(runfolder.control_dir(tiny_run, name)))


def test_layerwise_schedule_and_output_override(tmp_path):
    cfg = tiny_config(imp__scope="layerwise", imp__layer_rates={"output": 0.1},
                      imp__num_rounds=2)
    records = imp.run(cfg, tmp_path / "lw")
    masks = load_masks(tmp_path / "lw" / runfolder.mask_file(2))
    for name, mask in masks.items():
        rate = 0.1 if name == "output" else 0.2
        alive = mask.size
        for _ in range(2):
            alive -= round(rate * alive)
        assert int(mask.sum()) == alive, name
    assert records[2]["layer_sparsity"]["output"] < records[2]["layer_sparsity"]["dense_1"]


def test_target_sparsity_stops_early_and_rewind_to_an_epoch(tmp_path):
    cfg = tiny_config(imp__num_rounds=5, imp__target_sparsity=0.3, train__epochs=2,
                      imp__rewind="epoch:1")
    records = imp.run(cfg, tmp_path / "early")
    assert [r["round"] for r in records] == [0, 1, 2]  # 36% > 30% after round 2
    dataset = data_lib.load(cfg.data, cfg.run.seed)
    trainer = Trainer(cfg, dataset, tmp_path)
    theta0 = trainer.model.get_weights()
    trainer.model.load_weights(tmp_path / "early" / runfolder.REWIND)
    rewind = trainer.model.get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(theta0, rewind))
    with np.load(tmp_path / "early" / runfolder.mask_file(1)) as f:
        np.testing.assert_array_equal(f["init_dense_1"],
                                      trainer.model.get_layer("dense_1").kernel.numpy())


def test_select_round_ignores_round_zero_and_test_numbers():
    records = [round_record(0, val_accuracy=0.99, test_accuracy=0.5),
               round_record(1, val_accuracy=0.90, test_accuracy=0.1),
               round_record(2, val_accuracy=0.90, test_accuracy=0.9),
               round_record(3, val_accuracy=0.80, test_accuracy=0.99)]
    assert ticket.select_round(records, "val_accuracy").round == 1


def test_rewind_to_a_step_of_round_zero(tmp_path):
    """Late resetting by iteration: step:3 lies inside epoch 1, so it is neither θ0 nor epoch:1."""
    weights = {}
    for rewind in ("init", "step:3", "epoch:1"):
        cfg = tiny_config(imp__rewind=rewind, imp__num_rounds=1, train__epochs=2)
        imp.run(cfg, tmp_path / rewind.replace(":", "-"))
        with np.load(tmp_path / rewind.replace(":", "-") / runfolder.mask_file(1)) as f:
            weights[rewind] = f["init_dense_1"]
    assert not np.array_equal(weights["step:3"], weights["init"])
    assert not np.array_equal(weights["step:3"], weights["epoch:1"])
    with pytest.raises(ValueError, match=r"imp.rewind: step:999 is past the end of round 0 "
                                         r"\(ended after 14 steps\)"):
        imp.run(tiny_config(imp__rewind="step:999", imp__num_rounds=1, train__epochs=2),
                tmp_path / "too-far")


def _train_rounds_0_and_1(trainer, cfg):
    trainer.train(0, "imp")
    trainer.manager.prune(cfg.imp.prune_rate, cfg.imp.scope, cfg.imp.layer_rates)
    trainer.manager.rewind()
    trainer.train(1, "imp")


def test_rounds_reuse_the_traced_fused_step_with_a_fresh_optimizer(tmp_path):
    """Each round and control starts from a fresh optimizer, yet the step is traced once, not
    once per round."""
    cfg = tiny_config(imp__controls=["random_reinit"])
    trainer = Trainer(cfg, data_lib.load(cfg.data, cfg.run.seed), tmp_path)
    batches = -(-len(trainer.data.y_train) // 32)
    _train_rounds_0_and_1(trainer, cfg)
    step = trainer._step
    assert step.traces == 1 and step.iterations == batches  # counted from 0 again in round 1
    trainer.train(1, "random_reinit")
    assert trainer._step is step and step.traces == 1 and step.iterations == batches


def test_the_keras_path_reuses_its_traced_train_step_with_a_fresh_optimizer(tmp_path):
    """`train.step: keras` resets the optimizer to its state before any step rather than
    rebuilding it by compile(), which would trace the train step again."""
    cfg = tiny_config(train__step="keras")
    trainer = Trainer(cfg, data_lib.load(cfg.data, cfg.run.seed), tmp_path)
    traces = []  # Python in a train step runs only while TensorFlow traces it
    original = trainer.fit_model.train_step
    trainer.fit_model.train_step = lambda data: traces.append(1) or original(data)
    trainer.train(0, "imp")
    traced, optimizer = len(traces), trainer.fit_model.optimizer
    trainer.train(0, "imp")
    assert traced and len(traces) == traced and trainer.fit_model.optimizer is optimizer
    assert int(optimizer.iterations.numpy()) == -(-len(trainer.data.y_train) // 32)  # from 0
    assert trainer.step_info == {"train_step": "keras"}


def test_a_reset_step_trains_exactly_as_a_new_one(tmp_path, tiny_run, monkeypatch):
    new_step = Trainer.epoch_trainer

    def new_step_every_round(self):  # a new FusedStep, with new optimizer variables, per round
        self._step = None
        return new_step(self)

    monkeypatch.setattr(Trainer, "epoch_trainer", new_step_every_round)
    cfg = tiny_config(imp__controls=["random_reinit", "random_prune"])
    renewed = pipeline.execute(cfg, tmp_path / "renewed")
    for name, records in runfolder.series(tiny_run).items():
        again = runfolder.series(tmp_path / "renewed")[name]
        assert [r["val_accuracy"] for r in again] == [r["val_accuracy"] for r in records]
        assert [r["val_loss"] for r in again] == [r["val_loss"] for r in records]
    assert renewed["ticket"]["round"] == runfolder.read_json(
        tiny_run / runfolder.TICKET_JSON)["round"]
