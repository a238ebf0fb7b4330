"""The paper's protocol: early-stop point per round, late rewinding as OpenLTH does it, controls'
true starting points, paired significance and the verdicts built from it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lottery_engine.data import dataset as data_lib
from lottery_engine.evaluation import significance
from lottery_engine.foundations import runfolder
from lottery_engine.lottery import controls, imp
from lottery_engine.lottery.trainer import Trainer, seed_for
from lottery_engine.pruning.masks import load_masks
from lottery_engine.science import over_seeds, writeup

from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def stepped_run(tmp_path_factory):
    """Validation every 3 steps, no early stopping, late rewinding to step 5, one control."""
    cfg = tiny_config(train__epochs=3, train__eval_every=3, imp__rewind="step:5",
                      imp__controls=["random_reinit", "random_prune"])
    run_dir = tmp_path_factory.mktemp("stepped") / "run"
    imp.run(cfg, run_dir)
    batches = -(-len(data_lib.load(cfg.data, cfg.run.seed).y_train) // cfg.train.batch_size)
    return cfg, run_dir, batches


def test_early_stop_point_is_the_logged_minimum_of_validation_loss(stepped_run):
    cfg, run_dir, batches = stepped_run
    for name, records in runfolder.series(run_dir).items():
        for record in records:
            curve = record["val_curve"]
            steps = [point[0] for point in curve]
            assert steps == sorted(set(steps)) and steps[-1] == record["start_step"] + \
                record["steps"], name
            lowest = min(curve, key=lambda point: point[1])
            assert record["early_stop_step"] == lowest[0]
            assert record["early_stop_val_loss"] == pytest.approx(lowest[1])
            assert 0 <= record["early_stop_test_accuracy"] <= 1
            if record["early_stop_step"] == steps[-1]:  # the end is the best point
                assert record["early_stop_test_accuracy"] == record["test_accuracy"]
    # validation every 3 steps and at each epoch end
    total = cfg.train.epochs * batches
    first = runfolder.read_rounds(run_dir)[0]
    assert [p[0] for p in first["val_curve"]] == [
        s for s in range(1, total + 1) if s % 3 == 0 or s % batches == 0]
    assert len(first["history"]["val_loss"]) == cfg.train.epochs


def test_late_rewinding_trains_the_remaining_steps_in_round_zeros_order(stepped_run):
    cfg, run_dir, batches = stepped_run
    total = cfg.train.epochs * batches
    for name, records in runfolder.series(run_dir).items():
        for record in records:
            start = 0 if record["round"] == 0 else 5
            assert (record["start_step"], record["steps"]) == (start, total - start), name
    # the first epoch of a later round is the rest of round 0's first epoch
    assert runfolder.read_rounds(run_dir)[1]["val_curve"][0][0] == 6


def test_early_stopping_stops_after_patience_validations(tmp_path):
    cfg = tiny_config(train__epochs=6, train__eval_every=2, train__early_stopping=True,
                      train__patience=2, imp__num_rounds=0)
    record = imp.run(cfg, tmp_path / "run")[0]
    curve = record["val_curve"]
    if record["stopped_early"]:
        best = [p[0] for p in curve].index(record["early_stop_step"])
        assert len(curve) - 1 - best == 2  # exactly `patience` validations after the best
    # the model kept is the best point's: its val accuracy is the early-stop one
    assert record["kept_weights"] == "early_stop"
    assert record["val_accuracy"] == record["early_stop_val_accuracy"]
    assert record["test_accuracy"] == record["early_stop_test_accuracy"]


def test_measure_trains_every_step_prunes_the_final_weights_and_reports_the_early_stop_point(
        tmp_path):
    """Frankle & Carbin's protocol (early_stopping: measure) on the one-series path (round 0)
    and the stacked one (round 1, with a control): every round trains all its steps, even at
    patience 1; its record's accuracy is the final weights' and says so, its early-stop numbers
    are the lowest validation loss's; the next round prunes the final weights."""
    cfg = tiny_config(train__epochs=6, train__eval_every=2, train__early_stopping="measure",
                      train__patience=1, train__learning_rate=0.005, imp__num_rounds=1,
                      imp__controls=["random_reinit"])
    run_dir = tmp_path / "run"
    imp.run(cfg, run_dir)
    data = data_lib.load(cfg.data, cfg.run.seed)
    total = cfg.train.epochs * -(-len(data.y_train) // cfg.train.batch_size)
    series = runfolder.series(run_dir)
    assert series["imp"][1]["train_step"] == "stacked"
    for name, records in series.items():
        for record in records:
            curve, lowest = record["val_curve"], min(record["val_curve"], key=lambda p: p[1])
            assert record["start_step"] + record["steps"] == curve[-1][0] == total, name
            assert record["kept_weights"] == "final" and not record["stopped_early"]
            assert record["val_accuracy"] == pytest.approx(curve[-1][2], abs=0.02)
            assert (record["early_stop_step"], record["early_stop_val_accuracy"]) == (
                lowest[0], pytest.approx(lowest[2]))
            assert lowest[0] < curve[-1][0], (name, record["round"])  # the test means something
    trainer = Trainer(cfg, data, run_dir)
    trainer.model.load_weights(run_dir / runfolder.weights_file(0))
    final = trainer.manager.kernels()
    masks = load_masks(run_dir / runfolder.mask_file(1))
    pruned = max(np.abs(final[n][masks[n] == 0]).max() for n in masks)
    assert pruned <= min(np.abs(final[n][masks[n] == 1]).min() for n in masks)


def test_control_files_store_what_each_control_started_from(stepped_run):
    cfg, run_dir, _ = stepped_run
    trainer = Trainer(cfg, data_lib.load(cfg.data, cfg.run.seed), run_dir)
    trainer.model.load_weights(run_dir / runfolder.REWIND)
    rewind_point = trainer.model.get_layer("dense_1").kernel.numpy()
    fresh = trainer.fresh_init(seed_for(cfg.run.seed, 1, controls._REINIT_SEED_OFFSET))
    fresh_dense_1 = trainer.manager.rewind_kernels(fresh)["dense_1"]
    with np.load(run_dir / runfolder.mask_file(1)) as ticket, \
            np.load(runfolder.control_dir(run_dir, "random_reinit") / runfolder.mask_file(1)) \
            as reinit, \
            np.load(runfolder.control_dir(run_dir, "random_prune") / runfolder.mask_file(1)) \
            as prune:
        np.testing.assert_array_equal(ticket["init_dense_1"], rewind_point)
        np.testing.assert_array_equal(prune["init_dense_1"], rewind_point)
        np.testing.assert_array_equal(reinit["init_dense_1"], fresh_dense_1)
        assert not np.array_equal(reinit["init_dense_1"], rewind_point)


def test_confidence_interval_and_p_value_match_a_hand_computation():
    # differences 2, 1, 0.5, 2, 1 points: mean 1.3, sd sqrt(1.8 / 4) = 0.67082, sem 0.3;
    # t(0.975, 4) = 2.776445 -> half width 0.832934; t = 1.3 / 0.3 = 4.3333, p = 0.012318
    ticket = [0.90, 0.91, 0.89, 0.92, 0.90]
    control = [0.88, 0.90, 0.885, 0.90, 0.89]
    result = significance.paired(ticket, control)
    assert result.n == 5 and result.mean == pytest.approx(0.013)
    assert result.low == pytest.approx(0.013 - 0.00832934, abs=1e-7)
    assert result.high == pytest.approx(0.013 + 0.00832934, abs=1e-7)
    assert result.p == pytest.approx(0.012318, abs=2e-6)
    assert result.significant
    assert result.text() == "+1.30 points (95% CI +0.47 to +2.13, p = 0.012, n = 5)"
    spanning = significance.paired([0.90, 0.91, 0.89], [0.91, 0.89, 0.89])
    assert spanning.low < 0 < spanning.high and not spanning.significant
    single = significance.paired([0.9], [0.8])
    assert math.isnan(single.low) and not single.significant


def test_holm_adjustment_matches_a_hand_computation():
    # p sorted 0.01, 0.03, 0.04 of m = 3: 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; 1 x 0.04 = 0.04,
    # raised to the running maximum 0.06. A comparison without a p is no test: m stays 3.
    family = [significance.Paired(5, 0.01, 0.001, 0.02, p) for p in (0.04, 0.01, 0.03)]
    one_seed = significance.paired([0.9], [0.8])
    adjusted = significance.holm(family + [one_seed])
    assert [d.p_adjusted for d in adjusted] == pytest.approx([0.06, 0.03, 0.06] + [None])
    assert [d.significant for d in adjusted] == [False, True, False, False]
    assert "Holm-adjusted p = 0.030" in adjusted[1].text()


def test_verdicts_call_significant_only_what_survives_holm():
    # round 1 against either control: p = 0.033 alone (its 95% CI above 0), but one of the arm's
    # 4 tests, two of them with p < 0.001: Holm multiplies it by 2, 0.065 is no finding
    remaining = [1.0, 0.5, 0.1]
    ticket = [0.90, 0.91, 0.89, 0.92, 0.90]
    borderline = [0.88, 0.90, 0.885, 0.90, 0.897]
    far = [a - 0.05 - 0.001 * i for i, a in enumerate(ticket)]
    series = {"imp": _cells([ticket, ticket, ticket], remaining),
              "random_reinit": _cells([ticket, borderline, far], remaining),
              "random_prune": _cells([ticket, borderline, far], remaining)}
    diffs = over_seeds.comparisons(series)["random_reinit"]
    assert diffs[0].p == pytest.approx(0.032593, abs=2e-6) and diffs[0].low > 0
    assert diffs[0].p_adjusted == pytest.approx(2 * 0.032593, abs=5e-6)
    assert not diffs[0].significant and diffs[1].significant
    beat = next(line for line in writeup.verdicts(series)
                if line.startswith("Ticket beats random reinit"))
    assert ("significantly (Holm-adjusted p < 0.05 over the arm's 4 tests) at round 2 (10.00% "
            "left), of 2 pruning rounds; uncorrected, the 95% interval also excludes 0 at round "
            "1 (50.00% left), which the correction does not keep") in beat
    table = writeup._difference_table(series)
    assert "over the arm's 4 tests" in table
    assert "| 1 | 50.00% | +1.16 (n.s.) | +0.16 to +2.16 | 0.033 | 0.065 |" in table


def _cells(means: list[list[float]], remaining: list[float]) -> list[over_seeds.Cell]:
    return [over_seeds.Cell(r, remaining[r], accs, [100.0 * (r + 1)] * len(accs), 0, accs)
            for r, accs in enumerate(means)]


def test_verdicts_quote_the_paired_numbers_only():
    remaining = [1.0, 0.5, 0.1]
    series = {"imp": _cells([[0.90, 0.91, 0.90], [0.90, 0.91, 0.905], [0.87, 0.88, 0.875]],
                            remaining),
              "random_reinit": _cells([[0.90, 0.91, 0.90], [0.90, 0.905, 0.91],
                                       [0.80, 0.82, 0.81]], remaining)}
    lines = writeup.verdicts(series)
    assert lines[2].startswith("Tickets first fall more than 1 point below dense at round 2 "
                               "(10.00% of the weights left)")
    beat = next(line for line in lines if line.startswith("Ticket beats random reinit"))
    assert "at round 2 (10.00% left), of 2 pruning rounds" in beat
    spans = writeup._rounds_text(series["imp"] * 3, [1, 2, 3, 5])
    assert spans == ("rounds 1–3 (50.00% to 100.00% of the weights left) and round 5 "
                     "(10.00% left)")
    diff = over_seeds.comparisons(series)["random_reinit"][1]
    assert diff.p == significance.paired(series["imp"][2].accuracy,
                                         series["random_reinit"][2].accuracy).p
    assert diff.text() in beat and "Holm-adjusted p = 0.004" in beat
