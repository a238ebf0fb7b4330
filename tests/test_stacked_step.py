"""A round's series trained as one stack (train.stack): each series trains as it would alone,
pruned weights stay 0, each stops at its own early-stop point, and what the stack cannot express
trains one series after another, saying why."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lottery_engine import config as config_lib
from lottery_engine import models, pipeline, prunable, runfolder
from lottery_engine.masks import MaskManager
from lottery_engine.schema import TrainConfig
from lottery_engine.stacked_step import StackedStep, refusal
from lottery_engine.train_step import FusedStep

from .conftest import tiny_config
from .user_models import functional_model, save_digits_npz

NETWORKS = {"dense": (models.lenet_300_100, (8, 8, 1)), "conv": (models.lenet, (12, 12, 1))}


@pytest.mark.parametrize("network", list(NETWORKS))
def test_a_stack_trains_each_series_as_the_fused_step_trains_it_alone(network):
    build, shape = NETWORKS[network]
    rng = np.random.default_rng(0)
    x = tf.constant(rng.integers(0, 255, (96, *shape)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, 96))
    model = build(shape, 10)
    manager = MaskManager(model, prunable.select(model, None))
    starts, masks = [], []
    for s in range(3):  # three series: own weights, own masks
        keras.utils.set_random_seed(10 + s)
        starts.append(build(shape, 10).get_weights())
        masks.append({name: (rng.random(m.shape) < 0.5).astype(np.float32)
                      for name, m in manager.masks.items()})
    cfg = TrainConfig(learning_rate=0.01)
    stack = StackedStep(model, manager.variables, 3, (x, y), cfg)
    stack.load(starts, masks)
    kernels = {name: [w is k for w in model.weights].index(True)
               for name, k in manager.variables.items()}
    for step in range(4):
        stack.run(np.arange(16 * step, 16 * step + 16)[None], step)
        for s in range(3):
            weights = stack.weights(s)
            for name, i in kernels.items():
                assert np.all(weights[i][masks[s][name] == 0] == 0), (s, name, step)
    for s in range(3):
        manager.set_masks(masks[s])
        manager.rewind(starts[s])
        FusedStep(model, (x, y), cfg, False, False).run(np.arange(64).reshape(4, 16), 0)
        for alone, stacked in zip(model.get_weights(), stack.weights(s)):
            # the same update; only the order of a few sums differs (a wrong one moves ~1e-2)
            assert np.abs(alone - stacked).max() < 1e-5
        assert not np.allclose(stack.weights(s)[0], starts[s][0] * masks[s][list(masks[s])[0]])


def test_what_the_stack_cannot_express_is_named():
    assert refusal(models.lenet((12, 12, 1), 10)) is None
    assert refusal(models.lenet_300_100((8, 8, 1), 10)) is None
    assert refusal(functional_model()) == "user_net is not a Sequential model"
    assert refusal(models.lenet((12, 12, 1), 2)) == (
        "one output unit (binary cross-entropy) has no stacked loss")
    dropout = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"),
                                keras.layers.Dropout(0.5, name="drop"),
                                keras.layers.Dense(3, activation="softmax", name="out")])
    assert refusal(dropout) == "layer drop (Dropout) has no stacked form"


def _series(run_dir):
    return {(series, r["round"]): r for series, rounds in runfolder.series(run_dir).items()
            for r in rounds}


def test_stacked_rounds_stop_each_series_where_it_stops_alone(tmp_path):
    """Early stopping per series: the stack drops a series at its own point and goes on with the
    rest, and every series' records match the same run trained one series at a time."""
    raw = dict(data__limit_total=600, train__epochs=12, train__batch_size=16,
               train__eval_every=9, train__early_stopping=True, train__patience=1,
               imp__prune_rate=0.3, imp__controls=["random_reinit", "random_prune"])
    for stack in (False, True):
        pipeline.execute(tiny_config(**raw, train__stack=stack), tmp_path / str(stack))
    alone, stacked = _series(tmp_path / "False"), _series(tmp_path / "True")
    assert alone.keys() == stacked.keys()
    for key, record in stacked.items():
        if key[1] == 0:
            assert record["train_step"] == "fused"  # round 0 has one series
            continue
        assert record["train_step"] == "stacked" and record["stacked_series"] == 3
        for field in ("early_stop_step", "steps", "stopped_early"):
            assert record[field] == alone[key][field], (key, field)
        assert len(record["history"]["loss"]) == len(alone[key]["history"]["loss"])
        assert abs(record["early_stop_test_accuracy"] - alone[key]["early_stop_test_accuracy"]) \
            <= 0.02
    # the series of a round stopped at different steps: the stack went on without some
    assert len({stacked[(series, 1)]["steps"] for series, _ in stacked if _ == 1}) > 1


def test_a_model_the_stack_cannot_express_trains_its_series_one_after_another(tmp_path):
    functional_model().save(tmp_path / "net.keras")
    cfg = config_lib.from_dict({
        "run": {"name": "user", "seed": 4},
        "data": {"source": "arrays",
                 "path": str(save_digits_npz(tmp_path / "digits.npz", 300))},
        "train": {"arch": "file", "model_file": str(tmp_path / "net.keras"), "epochs": 1,
                  "stack": True},
        "imp": {"num_rounds": 1, "controls": ["random_prune"]}})
    pipeline.execute(cfg, tmp_path / "run")
    record = runfolder.read_rounds(tmp_path / "run")[-1]
    assert record["train_step"] == "fused"
    assert record["stack_refused"] == "user_net is not a Sequential model"


def test_stacking_needs_the_fused_step_in_graph_mode():
    with pytest.raises(config_lib.ConfigError, match="train.stack: .*use step: fused"):
        tiny_config(train__stack=True, train__step="keras")
    with pytest.raises(config_lib.ConfigError, match="train.stack: .*runs in graph mode"):
        tiny_config(train__stack=True, train__jit_compile=True)
    with pytest.raises(config_lib.ConfigError, match="train.stack: invalid value 'yes'"):
        tiny_config(train__stack="yes")
    tiny_config(train__step="keras")  # the default, auto, asks nothing of the step


def test_by_default_only_a_conv_net_in_graph_mode_is_stacked(tmp_path):
    """train.stack: auto stacks where it pays: not a dense-only network, not under XLA (a conv
    net without pooling, which XLA compiles deterministically)."""
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                      keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
                     ).save(tmp_path / "conv.keras")
    data = save_digits_npz(tmp_path / "digits.npz", 300)
    conv = {"arch": "file", "model_file": str(tmp_path / "conv.keras")}
    runs = {"conv": conv, "conv_xla": {**conv, "jit_compile": True},
            "dense": {"arch": "lenet_300_100"}}
    for name, train in runs.items():
        cfg = config_lib.from_dict({
            "run": {"name": name, "seed": 4}, "data": {"source": "arrays", "path": str(data)},
            "train": {**train, "epochs": 1},
            "imp": {"num_rounds": 1, "controls": ["random_prune"]}})
        pipeline.execute(cfg, tmp_path / name)
    conv, xla, dense = (runfolder.read_rounds(tmp_path / name)[-1] for name in runs)
    assert conv["train_step"] == "stacked" and conv["stack_refused"] is None
    assert xla["train_step"] == "fused" and xla["jit_compile"] is True
    assert xla["stack_refused"].startswith("the step runs with XLA")
    assert dense["train_step"] == "fused"
    assert dense["stack_refused"].startswith("a network without convolutions")
