"""Model builders. Each returns an uncompiled Keras model whose prunable layers are named.

Inputs are uint8-range images; the first layer rescales each batch, so datasets stay uint8 and a
saved ticket takes the same raw images the run was given.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from ..config.architectures import ARCHITECTURES
from ..config.schema import ConfigError, TrainConfig
from ..data.keras_cache import vgg16_weights_path
from ..foundations import dotted, keras_internals
from .literature_models import head


def lenet(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Rescaling(1.0 / 255, name="rescale"),
        layers.Conv2D(6, 3, activation="relu", name="conv_1"),
        layers.MaxPooling2D(2, name="pool_1"),
        layers.Conv2D(16, 3, activation="relu", name="conv_2"),
        layers.MaxPooling2D(2, name="pool_2"),
        layers.Flatten(name="flatten"),
        layers.Dense(120, activation="relu", name="dense_1"),
        layers.Dense(84, activation="relu", name="dense_2"),
        head(num_classes),
    ], name="lenet")


def lenet_300_100(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    """The fully connected network of Frankle & Carbin (2019), Figure 2."""
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Rescaling(1.0 / 255, name="rescale"),
        layers.Flatten(name="flatten"),
        layers.Dense(300, activation="relu", name="dense_1"),
        layers.Dense(100, activation="relu", name="dense_2"),
        head(num_classes),
    ], name="lenet_300_100")


def _caffe_preprocessing() -> layers.Conv2D:
    """VGG16's own input preprocessing (RGB -> BGR, minus the ImageNet mean) as a frozen 1x1
    convolution: a plain Keras layer, so the saved model loads with safe_mode and no custom code."""
    conv = layers.Conv2D(3, 1, name="vgg_preprocess", trainable=False)
    conv.build((None, None, None, 3))
    flip = np.zeros((1, 1, 3, 3), np.float32)
    for rgb, bgr in ((0, 2), (1, 1), (2, 0)):
        flip[0, 0, rgb, bgr] = 1.0
    conv.set_weights([flip, -np.array([103.939, 116.779, 123.68], np.float32)])
    return conv


def vgg16(input_shape: tuple[int, int, int], num_classes: int, weights: str = "none",
          freeze_base: bool = True) -> keras.Model:
    """VGG16's conv base under a prunable dense head fc1 -> fc2 -> output. The base is frozen
    (a fixed feature extractor, never pruned) unless `freeze_base` is false: then its 13 convs
    train and are pruned with the head, as a network trained from its pretrained weights."""
    base = keras.applications.VGG16(include_top=False, weights=vgg16_weights_path(weights),
                                    input_shape=input_shape)
    base.trainable = not freeze_base
    inputs = keras.Input(input_shape)
    x = layers.Rescaling(1.0, name="to_float")(inputs)
    x = _caffe_preprocessing()(x)
    x = base(x, training=False)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(256, activation="relu", name="fc1")(x)
    x = layers.Dense(256, activation="relu", name="fc2")(x)
    return keras.Model(inputs, head(num_classes)(x), name="vgg16_head")


def build(cfg: TrainConfig, input_shape: tuple[int, ...], num_classes: int,
          fresh: bool = False) -> keras.Model:
    """The configured network at θ0, made by its entry's builder (config/architectures.py);
    `fresh` redraws a user file's weights (built-ins and factories are always drawn under the
    caller's seed)."""
    arch = ARCHITECTURES[cfg.arch]
    builder = dotted.function(arch.builder)
    if arch.own:
        return builder(cfg, input_shape, num_classes, fresh)
    return builder(input_shape, num_classes, **{key: getattr(cfg, key) for key in arch.options})


# values a layer passes on unchanged at inference (noise and dropout act only in training)
PASS_THROUGH = (layers.Dropout, layers.GaussianDropout, layers.AlphaDropout, layers.GaussianNoise,
                layers.Identity, layers.Reshape, layers.Flatten, layers.ActivityRegularization)
PROBABILITIES = ("softmax", "sigmoid")


def _passes_through(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, PASS_THROUGH) or (
        isinstance(layer, layers.Activation) and _activation_name(layer) == "linear")


def _inputs(layer: keras.layers.Layer, node_index: int = -1) -> list:
    """The tensors a layer was called on (its last call unless `node_index` says which)."""
    return keras_internals.call_tensors(layer, "input", node_index)


def _source(tensor) -> keras.layers.Layer:
    """The layer whose output reaches `tensor` with its values unchanged: pass-through layers
    and the edges of nested models are stepped over, so Dense(softmax) -> Dropout is the Dense."""
    while True:
        layer, node_index, tensor_index = keras_internals.made_by(tensor)
        inputs = _inputs(layer, node_index)
        if isinstance(layer, keras.Model):
            inner = _source(layer.outputs[tensor_index])
            if not (isinstance(inner, layers.InputLayer) and len(inputs) == 1):
                return inner
        elif not (_passes_through(layer) and len(inputs) == 1):
            return layer
        tensor = inputs[0]


def _output_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer that makes the values of the model's (single) output, found through nested
    models and layers that pass values on unchanged."""
    if len(model.outputs) != 1:
        raise ConfigError(f"train.model_file: {model.name} has {len(model.outputs)} outputs; "
                          f"IMP here needs one classification output.")
    return _source(model.outputs[0])


def _activation_name(layer: keras.layers.Layer) -> str | None:
    """The activation a layer ends in; None for a layer with none of its own (a pooling, merging
    or rescaling layer), whose output is whatever its inputs were, changed."""
    if isinstance(layer, layers.Softmax):
        return "softmax"
    if not hasattr(layer, "activation"):
        return None
    activation = layer.activation
    return getattr(activation, "__name__", "linear") if activation is not None else "linear"


def _probabilities_behind(layer: keras.layers.Layer) -> keras.layers.Layer | None:
    """A softmax or sigmoid layer feeding `layer` through layers with no activation of their
    own: what they make of those probabilities may or may not still be probabilities."""
    seen, todo = {id(layer)}, [layer]
    while todo:
        for tensor in _inputs(todo.pop()):
            source = _source(tensor)
            if id(source) in seen:
                continue
            seen.add(id(source))
            name = _activation_name(source)
            if name in PROBABILITIES:
                return source
            if name is None:
                todo.append(source)
    return None


def is_logits(model: keras.Model, loss: str = "auto") -> bool:
    """Whether the model outputs logits: `train.loss` when it says so, else the activation of
    the layer that makes the output's values (softmax/sigmoid: probabilities; none or linear:
    logits). A softmax followed by a layer that changes its values (Rescaling, Average...) is
    refused: guessing either way could train on the wrong loss without a word."""
    if loss != "auto":
        return loss == "logits"
    layer = _output_layer(model)
    name = _activation_name(layer)
    if name in PROBABILITIES:
        return False
    if name is None:
        behind = _probabilities_behind(layer)
        if behind is not None:
            raise ConfigError(
                f"train.loss: the output layer '{layer.name}' ({type(layer).__name__}) comes "
                f"after the {_activation_name(behind)} of '{behind.name}', so whether the model "
                f"outputs logits or probabilities is not clear; set train.loss: logits or "
                f"probabilities.")
        return True
    if name == "linear":
        return True
    raise ConfigError(f"train.loss: the output layer '{layer.name}' ends in {name}, neither "
                      f"logits nor probabilities; set train.loss: logits or probabilities.")


def check_input(model: keras.Model, example_shape: tuple[int, ...]) -> None:
    """The data's examples must have the shape the model takes (None in the model: any size)."""
    wanted = tuple(model.inputs[0].shape[1:])
    fits = len(wanted) == len(example_shape) and all(
        w is None or w == s for w, s in zip(wanted, example_shape))
    if len(model.inputs) != 1 or not fits:
        raise ConfigError(
            f"data.path: each example has shape {tuple(example_shape)}, but the model "
            f"{model.name} takes {'several inputs' if len(model.inputs) != 1 else wanted}; "
            f"reshape the data or change the model's Input.")


def check_output(model: keras.Model, num_classes: int) -> None:
    """One unit for two classes (binary) or one unit per class; anything else cannot be scored."""
    units = model.outputs[0].shape[-1]
    if units != num_classes and not (units == 1 and num_classes == 2) or \
            len(model.outputs[0].shape) != 2:
        raise ConfigError(
            f"train.model_file: the model's output has shape {tuple(model.outputs[0].shape)}, "
            f"but the data has {num_classes} classes; end the model in Dense({num_classes})"
            f"{' or Dense(1) (binary)' if num_classes == 2 else ''}.")


def split_frozen(model: keras.Model) -> tuple[keras.Model, keras.Model] | None:
    """(feature extractor up to the frozen base, head after it), sharing the model's layers.

    IMP never changes a frozen base, so its output per image can be computed once and the head
    trained on it; the head's layers are the model's own, so masks and weights stay in one place.
    """
    chain = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    bases = [i for i, layer in enumerate(chain)
             if isinstance(layer, keras.Model) and not layer.trainable]
    if not bases:
        return None
    cut = bases[0] + 1
    x = inputs = keras.Input(model.input_shape[1:])
    for layer in chain[:cut]:
        x = layer(x)
    extractor = keras.Model(inputs, x, name="frozen_features")
    x = head_inputs = keras.Input(x.shape[1:])
    for layer in chain[cut:]:
        x = layer(x)
    return extractor, keras.Model(head_inputs, x, name="head")
