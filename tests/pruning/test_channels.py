"""Channel granularity: masks remove whole units and their coupled rows, compact export drops
exactly those units (logits equal to 1e-5), IMP-Refill keeps the unstructured round's count to
within half a channel, the random_prune control keeps the units per layer, a resumed channel run
equals an uninterrupted one, and the config refuses what cannot run, in one line each."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from lottery_engine import model_summary, preflight
from lottery_engine.config import load as config_lib
from lottery_engine.export import compact
from lottery_engine.export import exporter
from lottery_engine.export.exporter import logits_model
from lottery_engine.foundations import runfolder
from lottery_engine.lottery import imp
from lottery_engine.models import builders, literature_models
from lottery_engine.pruning import channels, prunable
from lottery_engine.pruning.masks import load_masks, magnitude_prune

from tests.conftest import tiny_config

TOLERANCE = 1e-5


def residual_model() -> keras.Model:
    """A user's functional model with a residual Add: conv -> [conv_a -> conv_b] + skip."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 1))
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="stem")(inputs)
    y = layers.Conv2D(5, 3, padding="same", name="conv_a")(x)
    y = layers.BatchNormalization(name="bn_a")(y)
    y = layers.ReLU(name="relu_a")(y)
    y = layers.Conv2D(6, 3, padding="same", name="conv_b")(y)
    x = layers.ReLU(name="out_relu")(layers.Add(name="add")([x, y]))
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(12, activation="relu", name="hidden")(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x), name="residual")


def depthwise_model() -> keras.Model:
    """Separable by hand: conv -> depthwise conv -> BatchNorm -> pointwise conv, then a head."""
    keras.utils.set_random_seed(4)
    return keras.Sequential([
        keras.Input((8, 8, 1)), layers.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
        layers.DepthwiseConv2D(3, padding="same", name="depthwise"),
        layers.BatchNormalization(name="bn"), layers.ReLU(name="relu"),
        layers.Conv2D(6, 1, activation="relu", name="pointwise"), layers.Flatten(name="flatten"),
        layers.Dense(10, name="logits")], name="depthwise_net")


MODELS = {
    "lenet": lambda: builders.lenet((16, 16, 1), 10),
    "conv2": lambda: literature_models.conv_net("conv2", (8, 8, 1), 10),
    "resnet20": lambda: literature_models.resnet20((8, 8, 3), 10),
    "residual": residual_model,
    "depthwise": depthwise_model,
}


def _nontrivial(model: keras.Model) -> None:
    """Nonzero biases and BatchNorm statistics, so a removed unit's constant output matters."""
    rng = np.random.default_rng(0)
    for variable in model.weights:
        if any(part in variable.path for part in ("bias", "beta", "moving_mean")):
            variable.assign(rng.normal(0, 0.3, variable.shape).astype("float32"))
        elif any(part in variable.path for part in ("gamma", "moving_variance")):
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))


def _manager(model: keras.Model, refilled: bool = False) -> channels.ChannelMaskManager:
    return channels.ChannelMaskManager(model, prunable.select(model, None), refilled)


def _whole_units_only(masks: dict[str, np.ndarray], plan: channels.ChannelPlan,
                      checked: list[str] | None = None) -> None:
    """Every zero of the `checked` masks (default all) is a removed unit's filter or one of its
    rows in a consumer."""
    expected = {name: np.ones_like(mask) for name, mask in masks.items()}
    for name in plan.layers:
        expected[name][..., ~channels.alive_units(masks[name])] = 0
    expected = channels.couple(expected, plan)
    for name in checked or masks:
        assert np.array_equal(masks[name], expected[name]), name


@pytest.mark.parametrize("arch", list(MODELS))
def test_channel_round_removes_whole_units_that_compact_export_drops_exactly(arch, tmp_path):
    model = MODELS[arch]()
    _nontrivial(model)
    manager = _manager(model)
    for _ in range(2):
        manager.prune(0.4, "global", {})
    manager.apply()
    _whole_units_only(manager.masks, manager.plan)
    alive = {n: int(channels.alive_units(manager.masks[n]).sum()) for n in manager.plan.layers}
    assert all(count >= 1 for count in alive.values())
    assert sum(alive.values()) < sum(layer.width for layer in manager.plan.layers.values())
    report = manager.report()
    assert report["remaining_units"] == sum(alive.values())
    assert set(report["layer_channel_sparsity"]) == set(manager.plan.layers)
    if arch == "resnet20":  # only each block's first conv; the Add keeps the rest whole
        assert all(name.endswith("_conv1") for name in manager.plan.layers)
        assert "'stage1_block1_add' (Add)" in manager.plan.kept["stage1_block1_conv2"]
    if arch == "residual":
        assert list(manager.plan.layers) == ["conv_a", "hidden"]
        assert "stem" in manager.plan.kept and "conv_b" in manager.plan.kept
    if arch == "depthwise":  # the removed channels' depthwise filters go with them
        dead = ~channels.alive_units(manager.masks["conv"])
        assert dead.any() and not manager.masks["depthwise"][..., dead, :].any()
        assert manager.masks["depthwise"][..., ~dead, :].all()

    result = compact.compact(model)
    for name, count in alive.items():
        assert result.layers[name]["units"][1] == count, name
    path = tmp_path / "compact.keras"
    result.model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(1).uniform(0, 255, (16, *model.input_shape[1:])).astype("float32")
    expected = logits_model(model).predict(x, verbose=0)
    assert np.abs(logits_model(loaded).predict(x, verbose=0) - expected).max() <= TOLERANCE
    assert loaded.count_params() < model.count_params()


def test_global_scope_normalises_per_layer_and_layerwise_counts_units():
    model = builders.lenet((16, 16, 1), 10)
    manager = _manager(model)
    widths = {n: layer.width for n, layer in manager.plan.layers.items()}
    manager.prune(0.5, "layerwise", {"dense_1": 0.25})
    alive = {n: int(channels.alive_units(manager.masks[n]).sum()) for n in widths}
    assert alive == {n: w - round((0.25 if n == "dense_1" else 0.5) * w)
                     for n, w in widths.items()}
    dense = {n: np.ones_like(m) for n, m in manager.masks.items()}
    kernels = manager.kernels()
    scaled = {name: kernel * (100.0 if name == "dense_1" else 1.0)
              for name, kernel in kernels.items()}  # one layer's norms far larger
    masks = channels.channel_prune(scaled, dense, manager.plan, 0.5, "global")
    assert channels.alive_units(masks["dense_1"]).sum() < widths["dense_1"]  # not spared
    unscaled = channels.channel_prune(kernels, dense, manager.plan, 0.5, "global")
    assert all(np.array_equal(masks[n], unscaled[n]) for n in masks)  # a layer's scale is moot
    units = sum(widths.values())
    assert sum(channels.alive_units(masks[n]).sum() for n in widths) == units - round(0.5 * units)


def test_refill_keeps_the_unstructured_count_to_within_half_a_channel():
    model = literature_models.conv_net("conv2", (8, 8, 1), 10)
    manager = _manager(model, refilled=True)
    plan = manager.plan
    for _ in range(2):  # the second round starts from refilled, coupled masks
        unstructured = magnitude_prune(manager.kernels(), manager.masks, 0.5, "global", {})
        refilled = channels.refill(unstructured, plan)
        for name in plan.layers:
            allowed = channels.allowed_entries(name, refilled, plan)
            per_channel = allowed[..., 0].sum()
            target = (unstructured[name] * allowed).sum()
            assert abs(refilled[name].sum() - target) <= per_channel / 2, name
        _whole_units_only(refilled, plan, list(plan.layers))
        manager.set_masks(refilled)
    assert manager.report()["global_sparsity"] > 0.5


def test_random_channel_masks_keep_units_per_layer():
    model = builders.lenet((16, 16, 1), 10)
    manager = _manager(model, refilled=True)
    manager.prune(0.5, "global", {})
    manager.prune(0.5, "global", {})
    ticket = manager.masks
    control = manager.random_like(ticket, seed=3)
    for name in manager.plan.layers:
        assert channels.alive_units(control[name]).sum() == \
            channels.alive_units(ticket[name]).sum(), name
    assert int(control["output"].sum()) == int(ticket["output"].sum())
    _whole_units_only(control, manager.plan, list(manager.plan.layers))
    assert any(not np.array_equal(control[n], ticket[n]) for n in manager.plan.layers)


def _channel_config(**overrides) -> config_lib.Config:
    return tiny_config(imp__granularity="channel", imp__controls=["random_prune"], **overrides)


def test_a_resumed_channel_run_equals_an_uninterrupted_one(tmp_path):
    whole = imp.run(_channel_config(imp__refill=True), tmp_path / "whole")
    imp.run(_channel_config(imp__refill=True, imp__num_rounds=1), tmp_path / "resumed")
    resumed = imp.run(_channel_config(imp__refill=True), tmp_path / "resumed")
    keys = ("val_accuracy", "layer_sparsity", "layer_channel_sparsity", "remaining_units")
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in whole]
    for r in (1, 2):
        a = load_masks(tmp_path / "whole" / runfolder.mask_file(r))
        b = load_masks(tmp_path / "resumed" / runfolder.mask_file(r))
        assert all(np.array_equal(a[n], b[n]) for n in a)
    control = runfolder.read_rounds(runfolder.control_dir(tmp_path / "whole", "random_prune"))
    assert control[-1]["remaining_units"] == whole[-1]["remaining_units"]
    assert whole[-1]["layer_channel_sparsity"]["conv_1"] > 0

    ticket, small = exporter.export(tmp_path / "whole", ["keras", "compact"], round_index=2,
                                    repeats=1)
    assert small["status"] == "ok" and small["flops"] < 0.8 * ticket["flops"]
    masks = load_masks(tmp_path / "whole" / runfolder.mask_file(2))
    for name, layer in small["compaction"]["layers"].items():
        assert layer["units"][1] == channels.alive_units(masks[name]).sum(), name


def test_weight_runs_keep_their_records():
    model = builders.lenet((16, 16, 1), 10)
    report = channels.mask_manager(model, prunable.select(model, None), tiny_config().imp).report()
    assert set(report) == {"global_sparsity", "layer_sparsity", "remaining_prunable",
                           "total_prunable"}


def test_refill_without_channel_granularity_is_refused_in_one_line():
    with pytest.raises(config_lib.ConfigError) as error:
        tiny_config(imp__refill=True)
    assert str(error.value).startswith("imp.refill:") and "granularity: channel" in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(config_lib.ConfigError) as error:
        tiny_config(imp__granularity="filters", imp__scope="everywhere")
    assert [e.key for e in error.value.errors] == ["imp.scope", "imp.granularity"]


def test_channel_granularity_without_prunable_units_is_refused_in_one_line(tmp_path):
    with pytest.raises(config_lib.ConfigError) as error:
        preflight.check(_channel_config(imp__prunable_layers=["output"]))
    message = str(error.value)
    assert message.startswith("imp.granularity:") and "conv_1" in message and "\n" not in message
    cfg = _channel_config(imp__prunable_layers=["out"], train__arch="factory",
                          train__factory="tests.user_models:factory", data__image_size=[8, 8])
    with pytest.raises(config_lib.ConfigError, match="imp.granularity: channel, but no pruned "
                                                     "layer of this model can lose whole units"):
        model_summary.summarize(cfg)
