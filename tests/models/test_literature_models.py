"""The literature's networks (Conv-2/4/6, ResNet-20, VGG-16 for 32×32) and vgg16 with a trained
base: their shapes and prunable kernels, an IMP round on generated data, FLOPs, compact export,
the config checks around them and CIFAR-10 offline. Nothing here downloads anything."""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from lottery_engine.config import granularity
from lottery_engine.config import load as config_lib
from lottery_engine.config.architectures import ARCHITECTURES, prunable_layers
from lottery_engine.config.load import ConfigError
from lottery_engine.data import dataset as data_lib
from lottery_engine.evaluation import flops
from lottery_engine.export import compact
from lottery_engine.foundations import runfolder
from lottery_engine.lottery import imp
from lottery_engine.lottery.trainer import Trainer
from lottery_engine.models import builders as models
from lottery_engine.pruning import channels, prunable
from lottery_engine.report import page as report
from lottery_engine.science import hybrid, writeup

CIFAR = (32, 32, 3)
EXPECTED = {  # written out by hand: the schema builds its lists, this must not
    "conv2": ["conv_1", "conv_2", "dense_1", "dense_2", "output"],
    "conv4": ["conv_1", "conv_2", "conv_3", "conv_4", "dense_1", "dense_2", "output"],
    "conv6": ["conv_1", "conv_2", "conv_3", "conv_4", "conv_5", "conv_6", "dense_1", "dense_2",
              "output"],
    "resnet20": ["conv",
                 "stage1_block1_conv1", "stage1_block1_conv2", "stage1_block2_conv1",
                 "stage1_block2_conv2", "stage1_block3_conv1", "stage1_block3_conv2",
                 "stage2_block1_conv1", "stage2_block1_conv2", "stage2_block1_shortcut",
                 "stage2_block2_conv1", "stage2_block2_conv2", "stage2_block3_conv1",
                 "stage2_block3_conv2",
                 "stage3_block1_conv1", "stage3_block1_conv2", "stage3_block1_shortcut",
                 "stage3_block2_conv1", "stage3_block2_conv2", "stage3_block3_conv1",
                 "stage3_block3_conv2", "output"],
    "vgg16_cifar": ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
                    "block3_conv1", "block3_conv2", "block3_conv3", "block4_conv1",
                    "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
                    "block5_conv3", "output"],
}
VGG16_CONVS = EXPECTED["vgg16_cifar"][:-1]


def build(arch: str, shape: tuple[int, ...] = CIFAR, classes: int = 10) -> keras.Model:
    keras.utils.set_random_seed(0)
    cfg = config_lib.from_dict({"train": {"arch": arch}})
    return models.build(cfg.train, shape, classes)


def kernel_weights(model: keras.Model) -> int:
    return sum(math.prod(v.shape) for v in prunable.select(model, None).values())


@pytest.mark.parametrize("arch", list(EXPECTED))
def test_each_network_builds_for_32x32x3_with_exactly_its_conv_and_dense_kernels(arch):
    model = build(arch)
    assert tuple(model.input_shape[1:]) == CIFAR and tuple(model.output_shape) == (None, 10)
    first = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)][0]
    assert isinstance(first, layers.Rescaling)  # uint8 images in, like every built-in
    kernels = prunable.candidates(model)
    assert [k.name for k in kernels] == EXPECTED[arch] == prunable_layers(arch)
    assert all(isinstance(k.layer, (layers.Conv2D, layers.Dense)) for k in kernels)
    convs_and_dense = [layer for layer in model.layers
                       if isinstance(layer, (layers.Conv2D, layers.Dense))]
    assert len(convs_and_dense) == len(kernels)  # every one of them prunable, and only those
    norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    assert len(norms) == {"resnet20": 21, "vgg16_cifar": 13}.get(arch, 0)
    assert not {id(v) for n in norms for v in n.weights} & {id(k.variable) for k in kernels}
    # the registry's layers that can lose whole units are those the unit graph finds
    units = channels.plan(model, prunable.select(model, None)).layers
    assert list(units) == granularity.builtin_unit_layers(arch)


def test_sizes_are_the_papers():
    """Frankle & Carbin's conv weights (38K, 260K, 1.1M) and totals (4.3M, 2.4M; their 1.7M
    for Conv-6 does not follow from its own layers, which give 2.26M), OpenLTH's ResNet-20
    (272,474 parameters, 270,896 of them in conv and dense kernels) and VGG-16 (14.7M)."""
    conv_weights = {"conv2": 38_592, "conv4": 259_776, "conv6": 1_144_512}
    totals = {"conv2": 4_300_992, "conv4": 2_425_024, "conv6": 2_261_184}
    for arch, convs in conv_weights.items():
        model = build(arch)
        assert sum(math.prod(v.shape) for n, v in prunable.select(model, ["conv_*"]).items()) \
            == convs
        assert kernel_weights(model) == totals[arch]
    resnet = build("resnet20")
    assert kernel_weights(resnet) == 270_896
    assert sum(math.prod(v.shape) for v in resnet.trainable_weights) == 272_474
    assert not any(layer.use_bias for layer in resnet.layers if isinstance(layer, layers.Conv2D))
    assert round(build("vgg16_cifar").count_params() / 1e6, 1) == 14.7


def test_two_classes_end_in_one_sigmoid_unit():
    model = build("resnet20", classes=2)
    assert model.output_shape == (None, 1) and models.is_logits(model) is False


def test_images_too_small_for_the_poolings_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^train.arch: vgg16_cifar takes images of at least "
                                          r"16×16×C") as info:
        build("vgg16_cifar", (8, 8, 3))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"^data.image_size: .*at least 16×16"):
        config_lib.from_dict({"data": {"image_size": [8, 8]}, "train": {"arch": "vgg16_cifar"}})
    config_lib.from_dict({"data": {"image_size": [8, 8]}, "train": {"arch": "conv6"}})


def test_conv2_flops_are_counted_by_hand():
    per_layer = flops.layer_flops(build("conv2"), {"dense_1": 0.5})
    assert per_layer == {
        "conv_1": 2 * 3 * 3 * 3 * 64 * 32 * 32,
        "conv_2": 2 * 3 * 3 * 64 * 64 * 32 * 32,  # 'same' padding: still 32×32
        "dense_1": 2 * (16 * 16 * 64) * 256 // 2,  # one pool, at half density
        "dense_2": 2 * 256 * 256,
        "output": 2 * 256 * 10,
    }


def test_resnet_flops_see_the_strided_stages():
    per_layer = flops.layer_flops(build("resnet20"), {})
    assert per_layer["conv"] == 2 * 3 * 3 * 3 * 16 * 32 * 32
    assert per_layer["stage2_block1_conv1"] == 2 * 3 * 3 * 16 * 32 * 16 * 16
    assert per_layer["stage3_block1_shortcut"] == 2 * 32 * 64 * 8 * 8
    assert per_layer["output"] == 2 * 64 * 10


def test_a_pruned_resnet_exports_compact_and_computes_what_it_computed():
    """Units feeding a residual Add keep their width; a block's inner conv loses its dead units,
    with their BatchNorm slice, and the compact model gives the same features and outputs."""
    model = build("resnet20")
    rng = np.random.default_rng(1)
    for kernel in prunable.candidates(model):
        w = kernel.variable.numpy()
        w[rng.random(w.shape) < 0.5] = 0
        if kernel.name.endswith("_conv2"):  # the inner conv1's units reach nothing: dead
            w[:, :, : w.shape[2] // 4, :] = 0
        kernel.variable.assign(w)
    for norm in (layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)):
        n = norm.gamma.shape[0]
        norm.moving_mean.assign(rng.normal(0, 0.1, n).astype("float32"))
        norm.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
        norm.beta.assign(rng.normal(0, 0.1, n).astype("float32"))
    result = compact.compact(model)
    assert result.layers["stage3_block2_conv1"]["units"] == [64, 48]
    assert result.model.get_layer("stage3_block2_bn1").gamma.shape == (48,)
    assert "Add" in result.kept["stage3_block2_conv2"] and "Add" in result.kept["conv"]
    x = rng.integers(0, 256, (4, *CIFAR)).astype("uint8")
    features = [keras.Model(m.inputs, m.get_layer("pool").output).predict(x, verbose=0)
                for m in (model, result.model)]
    assert np.abs(features[0]).max() > 0.1
    np.testing.assert_allclose(features[1], features[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.model.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-6)


def test_resnets_strided_convs_pad_one_pixel_on_every_side_as_pytorch():
    """OpenLTH's Conv2d(3, stride=2, padding=1), by hand: output pixel (i, j) sees input pixels
    2i-1..2i+1, centred on the 1×1 shortcut's 2i (Keras' `same` would pad (0, 1): 2i..2i+2)."""
    model = build("resnet20")
    x = np.random.default_rng(2).integers(0, 256, (2, *CIFAR)).astype("uint8")
    for stage in (2, 3):
        conv = model.get_layer(f"stage{stage}_block1_conv1")
        probe = keras.Model(model.inputs, [model.get_layer(f"stage{stage - 1}_block3_out").output,
                                           conv.output])
        block_input, got = probe.predict(x, verbose=0)
        padded = np.pad(block_input.astype(np.float64), [(0, 0), (1, 1), (1, 1), (0, 0)])
        windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
        want = np.einsum("nhwcij,ijco->nhwo", windows[:, ::2, ::2], conv.kernel.numpy())
        side = 32 // 2 ** (stage - 1)
        assert got.shape == want.shape == (2, side, side, conv.filters)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_compaction_drops_dead_channels_through_zero_padding_and_folds_none_across_it():
    """A ZeroPadding layer (ResNet-20's strided convs) passes whole channels, so a dead unit
    goes; a constant unit stays, since the padding puts zeros, not its constant, at the
    border."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="a")(inputs)
    x = layers.ZeroPadding2D(1, name="pad")(x)
    x = layers.Conv2D(4, 3, strides=2, padding="valid", activation="relu", name="b")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, layers.Dense(3, name="output")(x))
    rng = np.random.default_rng(3)
    kernel, bias = (w + rng.normal(0, 0.3, w.shape).astype("float32")
                    for w in model.get_layer("a").get_weights())
    kernel[..., 0] = 0  # unit 0: constant relu(bias) everywhere but the padded border
    bias[0] = 0.5
    model.get_layer("a").set_weights([kernel, bias])
    following = model.get_layer("b").kernel.numpy()
    following[:, :, 1, :] = 0  # unit 1: dead
    model.get_layer("b").kernel.assign(following)
    result = compact.compact(model)
    assert result.layers["a"] == {"units": [6, 5], "dropped": 1, "folded": 0}
    images = rng.integers(0, 256, (4, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(result.model.predict(images, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-5, atol=1e-5)


def test_the_hybrid_baseline_cuts_a_resnet_at_its_default_layer():
    """A ResNet is no chain of layers: its features come from its graph, up to the middle stage."""
    extractor = hybrid._up_to(build("resnet20"), ARCHITECTURES["resnet20"].hybrid_layer)
    assert extractor.output_shape == (None, 32)
    assert "stage3_block1_conv1" not in {layer.name for layer in extractor.layers}
    assert hybrid._up_to(build("conv4"), "conv_4").output_shape == (None, 128)


def _cifar_like(path: Path, n: int = 48, classes: int = 3) -> Path:
    """A tiny CIFAR-shaped .npz in the arrays format (what a user offline converts CIFAR to)."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % classes
    images = rng.integers(0, 256, (n, *CIFAR)).astype("uint8")
    images[..., 0] = (labels * 100)[:, None, None]  # a class signal in the red channel
    np.savez(path, x_train=images, y_train=labels, x_test=images[:12], y_test=labels[:12])
    return path


@pytest.mark.parametrize("arch", ["conv2", "resnet20"])
def test_an_imp_round_trains_on_generated_data(arch, tmp_path):
    cfg = config_lib.from_dict({
        "run": {"seed": 1},
        "data": {"source": "arrays", "path": str(_cifar_like(tmp_path / "cifar.npz"))},
        "train": {"arch": arch, "epochs": 1, "batch_size": 16},
        "imp": {"num_rounds": 1, "prune_rate": 0.2},
    })
    records = imp.run(cfg, tmp_path / "run")
    assert [r["round"] for r in records] == [0, 1]
    assert list(records[1]["layer_sparsity"]) == EXPECTED[arch]  # BatchNorm never masked
    assert records[1]["global_sparsity"] == pytest.approx(0.2, abs=0.01)
    assert all(math.isfinite(r["val_loss"]) for r in records)


def _trainer(tmp_path: Path, freeze_base: bool) -> Trainer:
    cfg = config_lib.from_dict({
        "data": {"source": "arrays", "path": str(_cifar_like(tmp_path / "cifar.npz", 24))},
        "train": {"arch": "vgg16", "weights": "none", "freeze_base": freeze_base},
    })
    dataset = data_lib.load(cfg.data, cfg.run.seed)
    return Trainer(cfg, dataset, tmp_path)


def test_an_unfrozen_vgg16_base_is_trained_and_its_13_convs_masked(tmp_path):
    trained = _trainer(tmp_path, freeze_base=False)
    assert list(trained.manager.masks) == [*VGG16_CONVS, "fc1", "fc2", "output"]
    assert trained.fit_model is trained.model  # no feature cache: the base changes each step
    per_layer = flops.layer_flops(trained.model, {"block5_conv3": 0.25})
    assert per_layer["block5_conv3"] == 2 * 3 * 3 * 512 * 512 * 2 * 2 // 4
    frozen = _trainer(tmp_path, freeze_base=True)
    assert list(frozen.manager.masks) == ["fc1", "fc2", "output"]
    assert frozen.fit_model is not frozen.model  # the head alone, on cached base outputs


def vgg16_config(**sections: dict) -> config_lib.Config:
    """vgg16 on 32×32 RGB, no pretrained weights, its base trained, with these sections."""
    return config_lib.from_dict({
        "data": {"image_size": [32, 32], "channels": 3},
        **sections,
        "train": {"arch": "vgg16", "weights": "none", "freeze_base": False,
                  **sections.get("train", {})}})


def test_freeze_base_is_vgg16s_alone_and_its_layers_are_checked():
    with pytest.raises(ConfigError, match=r"^train.freeze_base: invalid value False; only vgg16"):
        config_lib.from_dict({"train": {"arch": "resnet20", "freeze_base": False}})
    with pytest.raises(ConfigError, match=r"^train.freeze_base: .*expected true or false"):
        vgg16_config(train={"freeze_base": "no"})
    rates = {"layer_rates": {"block*_conv*": 0.1}}
    vgg16_config(imp=rates)
    with pytest.raises(ConfigError, match=r"^imp.layer_rates.block\*_conv\*: .*no prunable"):
        vgg16_config(imp=rates, train={"freeze_base": True})
    with pytest.raises(ConfigError, match=r"^flops.vgg16_base_flops: .*freeze_base: false"):
        vgg16_config(flops={"vgg16_base_flops": 10**9})


def test_the_report_and_write_up_say_whether_the_base_was_trained(tmp_path):
    cfg = vgg16_config()
    (tmp_path / runfolder.CONFIG).write_text(config_lib.to_yaml(cfg))
    trained = "vgg16 with its conv base trained and pruned with the dense head"
    assert writeup.protocol(tmp_path).startswith(trained)
    assert f"<p id='network'>Network: {trained}" in report.html_page(tmp_path)
    assert "conv base frozen" in report.network_text({"arch": "vgg16"})  # older folders: frozen
    assert report.network_text({"arch": "resnet20"}) == "resnet20"


def test_cifar10_offline_says_how_to_provide_it(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty-keras"))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    cfg = config_lib.from_dict({"data": {"source": "keras", "name": "cifar10",
                                         "image_size": [32, 32], "channels": 3}})
    with pytest.raises(FileNotFoundError) as info:
        data_lib.load(cfg.data, seed=0)
    message = str(info.value)
    assert message.startswith("data.name: could not load cifar10") and "\n" not in message
    assert "network" in message and "data.source: arrays" in message
    assert "x_train, y_train, x_test, y_test" in message and "fashion" not in message
