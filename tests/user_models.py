"""Users' own networks and data for the tests: a functional model with a nested block saved as
.keras, a factory with a registered custom layer, and digits as an .npz (8x8, no resizing)."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers


def functional_model(seed: int = 3) -> keras.Model:
    """Conv + BatchNorm, a nested Sequential block, Dropout, a max-norm Dense and a logits head."""
    keras.utils.set_random_seed(seed)
    block = keras.Sequential([layers.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
                              layers.MaxPooling2D(2, name="pool")], name="block")
    inputs = keras.Input((8, 8, 1))
    x = layers.Rescaling(1 / 16, name="scale")(inputs)
    x = layers.Conv2D(4, 3, padding="same", name="conv")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = block(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.1, name="drop")(x)
    x = layers.Dense(32, activation="relu", kernel_constraint=keras.constraints.MaxNorm(0.5),
                     name="hidden")(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x), name="user_net")


def lambda_model() -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = layers.Lambda(lambda t: t / 16.0, name="halve")(inputs)
    return keras.Model(inputs, layers.Dense(10)(layers.Flatten()(x)))


def softmax_then(*after: layers.Layer) -> keras.Model:
    """Softmax probabilities through `after` (8x8x1 in, 10 classes out): what a model that adds a
    Dropout or Reshape behind its softmax head looks like."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 1))
    x = layers.Dense(10, activation="softmax", name="probs")(layers.Flatten()(inputs))
    for layer in after:
        x = layer(x)
    return keras.Model(inputs, x, name="softmax_net")


def wobble(x):
    """An activation of the user's own, not registered: Keras saves its name, not its code."""
    return x * keras.ops.tanh(x)


@keras.saving.register_keras_serializable(package="lottery_tests")
def registered_wobble(x):
    """The same activation registered, as a layer that clones its inner layer (Bidirectional)
    needs it to be."""
    return wobble(x)


def wrapped_model(inner: layers.Layer, wrapper: type = layers.TimeDistributed) -> keras.Model:
    """`inner` inside a wrapper layer named 'steps', on sequences of 8 rows of 8 features."""
    inputs = keras.Input((8, 8))
    x = wrapper(inner, name="steps")(inputs)
    return keras.Model(inputs, layers.Dense(10, name="out")(layers.Flatten()(x)))


@keras.saving.register_keras_serializable(package="lottery_tests")
class Gain(layers.Layer):
    """A custom layer with a weight of its own: one learned gain per feature."""

    def build(self, input_shape):
        self.gain = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="gain")

    def call(self, x):
        return x * self.gain

    def compute_output_shape(self, input_shape):
        return input_shape


def factory(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """`train.factory: tests.user_models:factory`."""
    return keras.Sequential([keras.Input(input_shape), layers.Flatten(), Gain(name="gain"),
                             layers.Dense(24, activation="relu", name="dense"),
                             layers.Dense(num_classes, activation="softmax", name="out")],
                            name="factory_net")


def digits(limit: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (N, 8, 8, 1) float32 in 0..16 and integer labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images[:limit, :, :, None].astype(np.float32), d.target[:limit].astype(np.int64)


def save_digits_npz(path: Path, limit: int = 400) -> Path:
    x, y = digits(limit)
    np.savez(path, x_train=x, y_train=y)
    return path


@keras.saving.register_keras_serializable(package="lottery_tests")
class CountingModel(keras.Model):
    """A user's model class with its own train_step."""

    def train_step(self, data):
        return super().train_step(data)


def custom_step_factory(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """`train.factory: tests.user_models:custom_step_factory`."""
    inputs = keras.Input(input_shape)
    x = layers.Dense(16, activation="relu", name="dense")(layers.Flatten()(inputs))
    return CountingModel(inputs, layers.Dense(num_classes, activation="softmax", name="out")(x))


def small_conv_net(conv: dict | None = None, head: dict | None = None) -> keras.Sequential:
    """A conv net of the layers the stack computes (8x8x1 in, 10 classes out); `conv` and `head`
    add Conv2D and output-Dense options, e.g. one the stack does not model."""
    keras.utils.set_random_seed(5)
    conv = {"padding": "same", "activation": "relu", **(conv or {})}
    head = {"activation": "softmax", **(head or {})}
    return keras.Sequential([
        keras.Input((8, 8, 1)), layers.Rescaling(1 / 16, name="scale"),
        layers.Conv2D(4, 3, name="conv", **conv), layers.MaxPooling2D(2, name="pool"),
        layers.Flatten(name="flatten"), layers.Dense(10, name="out", **head)], name="small_conv")
