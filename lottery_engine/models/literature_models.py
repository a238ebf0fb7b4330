"""The lottery-ticket literature's networks for small images, trained from scratch.

- `conv2`, `conv4`, `conv6`: Frankle & Carbin (2019) §4 and Figure 2: pairs of 3×3 `same` convs
  (64,64 | 64,64,128,128 | 64,64,128,128,256,256), a 2×2 max-pool after each pair, then dense 256,
  256 and the output; ReLU, Gaussian Glorot initialisation as in their table.
- `resnet20`: He et al. (2016)'s CIFAR ResNet as OpenLTH's `cifar_resnet_20`: a 3×3 conv of 16,
  three stages of three basic blocks (16, 32, 64 filters; the first block of stages 2 and 3 halves
  the resolution with stride 2 and takes a 1×1 strided conv + BatchNorm as its shortcut), global
  average pooling and the output. Convs have no bias, as OpenLTH's: 270,896 kernel weights. The
  strided 3×3 conv pads one pixel on every side as PyTorch's `padding=1` (`_conv3x3`).
- `vgg16_cifar`: OpenLTH's `cifar_vgg_16`: thirteen 3×3 convs (64,64,M,128,128,M,256×3,M,512×3,M,
  512×3) each with BatchNorm and ReLU, then global average pooling and the output.

The ResNet and the VGG are initialised as OpenLTH's defaults (`kaiming_normal` kernels, BatchNorm
scales uniform in [0, 1)), with PyTorch's BatchNorm momentum and epsilon, so a ticket found here
starts where OpenLTH's would. Like every built-in the input is uint8-range images rescaled by the
first layer, every conv and dense kernel is prunable by its layer name, BatchNorm never.
"""

from __future__ import annotations

from functools import partial
import keras
from keras import layers

from ..config.architectures import ARCHITECTURES
from ..config.schema import ConfigError

CONV_PLANS = {"conv2": [64, 64], "conv4": [64, 64, 128, 128],
              "conv6": [64, 64, 128, 128, 256, 256]}
VGG16_CIFAR_PLAN = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]
RESNET20_STAGES = [16, 32, 64]
RESNET20_BLOCKS = 3  # per stage: depth 20 = 2 + 6 × 3


def _kernel_init() -> keras.initializers.Initializer:
    """OpenLTH's kaiming_normal: a normal of std sqrt(2 / fan_in) (Keras truncates it at 2 std)."""
    return keras.initializers.HeNormal()


def _batch_norm(name: str) -> layers.BatchNormalization:
    """BatchNorm as PyTorch's (momentum 0.1 there is 0.9 here, epsilon 1e-5) with OpenLTH's
    `batchnorm_init: uniform` scales."""
    return layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name,
                                     gamma_initializer=keras.initializers.RandomUniform(0.0, 1.0))


def _check_size(arch: str, input_shape: tuple[int, ...]) -> None:
    """Images too small for the network's poolings, in one line instead of Keras's shape error
    deep in the build (a .npz's examples are only seen here; other sources' image_size is
    checked with the config)."""
    least = ARCHITECTURES[arch].min_side
    if len(input_shape) != 3 or min(input_shape[:2]) < least:
        raise ConfigError(f"train.arch: {arch} takes images of at least {least}×{least}×C (its "
                          f"poolings halve them); the data's examples have shape "
                          f"{tuple(input_shape)}. Use larger images or another network.")


def head(num_classes: int, initializer: keras.initializers.Initializer | str = "glorot_uniform"
         ) -> layers.Dense:
    """Every built-in's output layer: one sigmoid unit for two classes, softmax for more (the
    loss and the metrics read which from its shape)."""
    if num_classes == 2:
        return layers.Dense(1, activation="sigmoid", kernel_initializer=initializer,
                            name="output")
    return layers.Dense(num_classes, activation="softmax", kernel_initializer=initializer,
                        name="output")


def conv_net(arch: str, input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """Conv-2, Conv-4 or Conv-6 of Frankle & Carbin (2019), Figure 2."""
    plan = CONV_PLANS[arch]
    _check_size(arch, input_shape)
    init = keras.initializers.GlorotNormal()
    stack: list[layers.Layer] = [keras.Input(input_shape), layers.Rescaling(1.0 / 255,
                                                                            name="rescale")]
    for i, filters in enumerate(plan, start=1):
        stack.append(layers.Conv2D(filters, 3, padding="same", activation="relu",
                                   kernel_initializer=init, name=f"conv_{i}"))
        if i % 2 == 0:
            stack.append(layers.MaxPooling2D(2, name=f"pool_{i // 2}"))
    stack += [layers.Flatten(name="flatten"),
              layers.Dense(256, activation="relu", kernel_initializer=init, name="dense_1"),
              layers.Dense(256, activation="relu", kernel_initializer=init, name="dense_2"),
              head(num_classes, init)]
    return keras.Sequential(stack, name=arch)


def _conv3x3(x: keras.KerasTensor, filters: int, stride: int, name: str) -> keras.KerasTensor:
    """A bias-free 3×3 conv padded by one pixel on every side, as PyTorch's Conv2d(padding=1).

    Keras' `same` is that only at stride 1: at stride 2 on an even side it pads (0, 1), so
    output pixel i would see input pixels 2i..2i+2, centred one pixel off the 1×1 shortcut's
    2i; explicit (1, 1) padding then `valid` centres it on 2i, as OpenLTH's network does.
    """
    padding = "same"
    if stride != 1:
        x, padding = layers.ZeroPadding2D(1, name=f"{name}_pad")(x), "valid"
    return layers.Conv2D(filters, 3, strides=stride, padding=padding, use_bias=False,
                         kernel_initializer=_kernel_init(), name=name)(x)


def _basic_block(x: keras.KerasTensor, filters: int, stride: int, name: str) -> keras.KerasTensor:
    """relu(bn(conv(relu(bn(conv(x))))) + shortcut(x)); the shortcut is x itself, or a 1×1
    strided conv + BatchNorm where the block changes the shape."""
    y = _conv3x3(x, filters, stride, f"{name}_conv1")
    y = layers.ReLU(name=f"{name}_relu1")(_batch_norm(f"{name}_bn1")(y))
    y = _conv3x3(y, filters, 1, f"{name}_conv2")
    y = _batch_norm(f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        x = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                          kernel_initializer=_kernel_init(), name=f"{name}_shortcut")(x)
        x = _batch_norm(f"{name}_shortcut_bn")(x)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, x]))


def resnet20(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """OpenLTH's cifar_resnet_20; kernels `conv`, `stage{s}_block{b}_conv{1,2}`,
    `stage{s}_block1_shortcut` (s = 2, 3) and `output`."""
    _check_size("resnet20", input_shape)
    inputs = keras.Input(input_shape)
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    x = _conv3x3(x, RESNET20_STAGES[0], 1, "conv")
    x = layers.ReLU(name="relu")(_batch_norm("bn")(x))
    for s, filters in enumerate(RESNET20_STAGES, start=1):
        for b in range(1, RESNET20_BLOCKS + 1):
            stride = 2 if s > 1 and b == 1 else 1
            x = _basic_block(x, filters, stride, f"stage{s}_block{b}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, head(num_classes, _kernel_init())(x), name="resnet20")


def vgg16_cifar(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """OpenLTH's cifar_vgg_16; kernels named as Keras's VGG16 (`block{b}_conv{c}`) and `output`."""
    _check_size("vgg16_cifar", input_shape)
    stack: list[layers.Layer] = [keras.Input(input_shape), layers.Rescaling(1.0 / 255,
                                                                            name="rescale")]
    for b, block in enumerate(VGG16_CIFAR_PLAN, start=1):
        if b > 1:
            stack.append(layers.MaxPooling2D(2, name=f"block{b - 1}_pool"))
        for c, filters in enumerate(block, start=1):
            stack += [layers.Conv2D(filters, 3, padding="same", kernel_initializer=_kernel_init(),
                                    name=f"block{b}_conv{c}"),
                      _batch_norm(f"block{b}_bn{c}"),
                      layers.ReLU(name=f"block{b}_relu{c}")]
    stack += [layers.GlobalAveragePooling2D(name="pool"), head(num_classes, _kernel_init())]
    return keras.Sequential(stack, name="vgg16_cifar")


conv2, conv4, conv6 = (partial(conv_net, arch) for arch in CONV_PLANS)
