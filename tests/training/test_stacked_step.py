"""A round's series trained as one stack (train.stack): each series trains as it would alone
(whatever recipe, whatever the other series hold, leaving the stack or not), pruned weights stay
0, each stops at its own early-stop point, and what the stack cannot express, by a setting or by
its arithmetic on one batch, trains one series after another, saying why."""

import dataclasses
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from lottery_engine import pipeline
from lottery_engine.config import load as config_lib
from lottery_engine.foundations import runfolder
from lottery_engine.config.schema import TrainConfig
from lottery_engine.lottery import trainer
from lottery_engine.models import builders as models
from lottery_engine.pruning import prunable
from lottery_engine.pruning.masks import MaskManager
from lottery_engine.training.stacked_step import StackedStep, refusal
from lottery_engine.training.train_step import FusedStep

from tests.conftest import tiny_config
from tests.user_models import functional_model, save_digits_npz, small_conv_net

NETWORKS = {"dense": (models.lenet_300_100, (8, 8, 1)), "conv": (models.lenet, (12, 12, 1))}
# (config, augmentation, first step): the plain default, and everything a late-rewound OpenLTH
# round has: Nesterov, weight decay, warm-up unfinished at the start (step 4 of 6) and the rate
# cut at epoch 2 midway (3 steps an epoch), flips and crops drawn from round 0's clock
RECIPES = {
    "adam": (TrainConfig(learning_rate=0.01), (), 0),
    "sgd late": (TrainConfig(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=5e-2,
                             learning_rate=0.05, lr_schedule="step", milestones=[2], gamma=0.1,
                             warmup_steps=6), ("flip", "crop"), 4),
}


def _three_series(network: str):
    """A network, its MaskManager, 96 training examples, and three series' (weights, masks)."""
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
    return model, manager, (x, y), starts, masks


def _stack(model, manager, train, recipe: str, series: int = 3) -> StackedStep:
    cfg, augment, _ = RECIPES[recipe]
    return StackedStep(model, manager.kernel_variables, series, train, cfg, 3, augment, seed=5)


@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("network", list(NETWORKS))
def test_a_stack_trains_each_series_as_the_fused_step_trains_it_alone(network, recipe):
    model, manager, train, starts, masks = _three_series(network)
    cfg, augment, first = RECIPES[recipe]
    stack = _stack(model, manager, train, recipe)
    stack.load(starts, masks)
    kernels = {name: [w is k for w in model.weights].index(True)
               for name, k in manager.kernel_variables.items()}
    for step in range(4):
        stack.run(np.arange(16 * step, 16 * step + 16)[None], first + step)
        for s in range(3):
            weights = stack.weights(s)
            for name, i in kernels.items():
                assert np.all(weights[i][masks[s][name] == 0] == 0), (s, name, step)
    for s in range(3):
        manager.set_masks(masks[s])
        manager.rewind(starts[s])
        FusedStep(model, train, cfg, False, False, 3, augment, seed=5).run(
            np.arange(64).reshape(4, 16), first)
        for alone, stacked in zip(model.get_weights(), stack.weights(s)):
            # the same update; only the order of a few sums differs (a wrong one moves ~1e-2)
            assert np.abs(alone - stacked).max() < 1e-5
        assert not np.allclose(stack.weights(s)[0], starts[s][0] * masks[s][list(masks[s])[0]])


@pytest.mark.parametrize("network", list(NETWORKS))
def test_series_with_their_own_batches_train_each_as_alone(network):
    """Each series in its own data order (instability copies): each as the fused step trains
    it alone on its batches, augmentation included, and the stack computes the model."""
    model, manager, train, starts, masks = _three_series(network)
    cfg, augment, first = RECIPES["sgd late"]
    stack = _stack(model, manager, train, "sgd late")
    stack.load(starts, masks)
    x, y = (tensor[:16] for tensor in train)
    assert stack.disagreement(model, False, x, y, own_batches=True) is None
    orders = [np.random.default_rng(s).permutation(96)[:64].reshape(4, 16) for s in range(3)]
    stack.run(np.stack(orders, axis=1), first)
    for s in range(3):
        manager.set_masks(masks[s])
        manager.rewind(starts[s])
        FusedStep(model, train, cfg, False, False, 3, augment, seed=5).run(orders[s], first)
        for alone, stacked in zip(model.get_weights(), stack.weights(s)):
            assert np.abs(alone - stacked).max() < 1e-5


@pytest.mark.parametrize("network", list(NETWORKS))
def test_a_series_trains_bit_for_bit_alike_whatever_the_other_series_hold(network):
    """Series 0 beside series A and B, then beside B and A: the same stack gives it the same
    weights, optimizer slots, training logs and probabilities to the last bit."""
    model, manager, train, starts, masks = _three_series(network)
    stack = _stack(model, manager, train, "sgd late")
    seen = []
    for others in ((1, 2), (2, 1)):
        stack.load([starts[0]] + [starts[i] for i in others],
                   [masks[0]] + [masks[i] for i in others])
        stack.run(np.arange(64).reshape(4, 16), RECIPES["sgd late"][2])
        state = stack.state(0)
        seen.append([*state["weights"], *state["slots"][0], state["sums"],
                     stack.probabilities(train[0])[0]])
    assert all(np.array_equal(a, b) for a, b in zip(*seen))


def test_a_series_leaving_the_stack_trains_on_as_if_it_had_stayed():
    """3 steps in a stack of three, then 3 in a stack of two (series 1 stopped): series 0 and 2
    end where 6 steps in the stack of three end them (Adam's step count carried over, the
    schedule and augmentation continued), up to the order of sums in a smaller stack."""
    model, manager, train, starts, masks = _three_series("conv")
    cfg, _, first = RECIPES["sgd late"]
    cfg = dataclasses.replace(cfg, optimizer="adam", learning_rate=0.01)
    stack, smaller = (StackedStep(model, manager.kernel_variables, n, train, cfg, 3,
                                  ("flip", "crop"), seed=5) for n in (3, 2))
    stack.load(starts, masks)
    rows = np.arange(96).reshape(6, 16)
    stack.run(rows[:3], first)
    smaller.load_state([stack.state(0), stack.state(2)], int(stack.optimizer.iterations))
    smaller.run(rows[3:], first + 3)
    stack.run(rows[3:], first + 3)
    for position, s in enumerate((0, 2)):
        for six, three_three in zip(stack.weights(s), smaller.weights(position)):
            assert np.abs(six - three_three).max() < 1e-5, s  # Adam from step 1 moves ~1e-2
        for key, value in stack.logs()[s].items():
            assert smaller.logs()[position][key] == pytest.approx(value, rel=1e-5), (s, key)


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
    assert refusal(small_conv_net()) is None


SETTINGS = {  # a setting the stack does not model: the reason refusal gives
    "dilation": ({"conv": {"dilation_rate": 2}}, "layer conv (Conv2D) has dilation_rate=(2, 2)"),
    "softmax conv": ({"conv": {"activation": "softmax"}}, "layer conv (Conv2D) has activation="
                                                          "'softmax'"),
    "regularizer": ({"head": {"kernel_regularizer": keras.regularizers.L2(0.5)}},
                    "layer out (Dense) has kernel_regularizer=L2(l2=0.5)"),
    "activity regularizer": ({"head": {"activity_regularizer": "l1"}},  # not in Dense's config
                             "layer out (Dense) has activity_regularizer=L1(l1=0.01)"),
    "bias constraint": ({"head": {"bias_constraint": keras.constraints.NonNeg()}},
                        "layer out (Dense) has bias_constraint=NonNeg()"),
    "unknown to the allow-list": ({"head": {"lora_rank": 2}}, "layer out (Dense) has lora_rank=2"),
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_a_setting_the_stack_does_not_model_is_refused_by_name(setting):
    options, reason = SETTINGS[setting]
    assert refusal(small_conv_net(**options)) == f"{reason}, which the stack does not model"


def test_a_variable_constraint_and_a_layer_on_the_wrong_form_are_refused():
    model = small_conv_net()
    model.get_layer("out").bias.constraint = keras.constraints.NonNeg()
    assert refusal(model) == ("layer out (Dense) has a constraint on its bias, which the stack "
                              "does not apply")
    on_images = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="conv"),
                                  keras.layers.Dense(10, name="dense"), keras.layers.Flatten(),
                                  keras.layers.Dense(10, activation="softmax", name="out")])
    assert refusal(on_images) == ("layer dense (Dense) has a rank-4 input, which the stack does "
                                  "not model")
    flattened_twice = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(16),
        keras.layers.Flatten(name="again"), keras.layers.Dense(10, activation="softmax")])
    assert refusal(flattened_twice) == ("layer again (Flatten) has a flat input, which the stack "
                                        "does not model")


# a model the stack computes otherwise, and the reason its proof gives
SERIES = r" \(series 1 of 2\)"
MISCOMPUTED = {
    "dilation": ({"conv": {"dilation_rate": 2}},
                 r"the stack's outputs differ from the model's by up to 0\.\d+" + SERIES),
    "dilation, valid padding": ({"conv": {"dilation_rate": 2, "padding": "valid"}},
                                r"the stack cannot compute small_conv: \S.*"),  # TF's words
    "regularizer": ({"head": {"kernel_regularizer": keras.regularizers.L2(0.5)}},
                    r"the stack's loss is [\d.]+, the model's [\d.]+ \(1 model.losses\)" + SERIES),
}


def _user_run(tmp_path, model: keras.Model, **train) -> list[dict]:
    """Round 0 and 1 of `model` on 300 digits with a random_prune control; each round's records
    of every series."""
    tmp_path.mkdir(exist_ok=True)
    model.save(tmp_path / "net.keras")
    cfg = config_lib.from_dict({
        "run": {"name": "user", "seed": 4, "device": "cpu"},
        "data": {"source": "arrays",
                 "path": str(save_digits_npz(tmp_path / "digits.npz", 300))},
        "train": {"arch": "file", "model_file": str(tmp_path / "net.keras"), "epochs": 1,
                  "batch_size": 32, **train},
        "imp": {"num_rounds": 1, "controls": ["random_prune"]}})
    pipeline.execute(cfg, tmp_path / "run")
    return _series(tmp_path / "run")


@pytest.mark.parametrize("case", list(MISCOMPUTED))
def test_a_stack_that_computes_another_model_trains_one_series_after_another(tmp_path,
                                                                             monkeypatch, case):
    """What the allow-list misses, the proof before the first stacked round catches: the same
    weights through stack and model disagree, so the round trains unstacked and says why."""
    options, reason = MISCOMPUTED[case]
    monkeypatch.setattr(trainer, "refusal", lambda model: None)  # as if the allow-list missed it
    records = _user_run(tmp_path, small_conv_net(**options), stack=True)
    for series in ("imp", "random_prune"):
        record = records[(series, 1)]
        assert record["train_step"] == "fused", series
        assert re.fullmatch(reason, record["stack_refused"]), record["stack_refused"]


def test_the_proof_changes_nothing_a_stacked_run_computes(tmp_path, monkeypatch):
    """Same config and seed, with and without the proof: the same masks, weights and numbers
    (it draws no random number and leaves no state behind)."""
    runs = {}
    for proved in (True, False):
        if not proved:
            monkeypatch.setattr(StackedStep, "disagreement", lambda *args, **kwargs: None)
        runs[proved] = _user_run(tmp_path / str(proved), small_conv_net(), stack=True)
    timed = {"train_seconds", "inference_ms", "inference_ms_range"}
    for key, record in runs[True].items():
        other = runs[False][key]
        assert {k: v for k, v in record.items() if k not in timed} == {
            k: v for k, v in other.items() if k not in timed}, key
    assert runs[True][("imp", 1)]["train_step"] == "stacked"
    for name in ("mask_round_1.npz", "controls/random_prune/mask_round_1.npz"):
        with np.load(tmp_path / "True" / "run" / name) as a, \
                np.load(tmp_path / "False" / "run" / name) as b:
            assert all(np.array_equal(a[k], b[k]) for k in a.files)


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
