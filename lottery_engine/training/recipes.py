"""Training recipes as TensorFlow ops: the learning-rate schedule and image augmentation.

The literature's recipes (OpenLTH's ResNet-20 and VGG-16 on CIFAR-10: SGD with a stepped rate,
warm-up, flips and crops) have to run inside the engine's compiled training step, so both are
pure functions of a config and counters given as tensors: no Python branching on a tensor, no
state, no Keras model code. That keeps them usable in a tf.function and under XLA
(jit_compile=True), and makes them reproducible by construction: the same counters give the same
learning rate and the same augmented batch, whichever series (ticket, random_reinit,
random_prune) or round asks.
"""

from __future__ import annotations

import math

import tensorflow as tf

from ..config.schema import AUGMENTATIONS, TrainConfig

CROP_PADDING = 4  # pixels of zeros on each side before a random crop, as torchvision's
# RandomCrop(32, padding=4) in OpenLTH's CIFAR-10 pipeline


def learning_rate(cfg: TrainConfig, step, steps_per_epoch: int) -> tf.Tensor:
    """The learning rate of the optimizer step `step`, counted from round 0's step 0.

    `step` is a Python int or an integer tensor (a scalar, or a 1-D tensor of steps, giving one
    rate each); the result is a float32 tensor of the same shape. Only the config is branched
    on in Python, so this traces once and compiles under XLA.

    The clock is round 0's: a round that late-rewinds to step k (imp.rewind step:k) resumes at
    step k and so continues the schedule from there, as OpenLTH's `train` does (it advances its
    LambdaLR scheduler start_step times before the first step).

    The rate is OpenLTH's (training/optimizers.py, get_lr_schedule): the product of

    - `learning_rate`, the base rate;
    - step schedule: gamma ** bisect_right(milestone_steps, step), milestone_steps being
      milestone epoch × steps_per_epoch, i.e. gamma to the number of milestones whose first step
      is ≤ `step` (the step that starts epoch 80 already has the lower rate);
    - cosine (not in OpenLTH): 0.5 (1 + cos(pi · step / total_steps)), total_steps = epochs ×
      steps_per_epoch, from 1 at step 0 down to 0 at total_steps (and 0 past it);
      constant: 1;
    - warm-up with warmup_steps > 0: min(1, step / warmup_steps), linear from 0, so the first
      step (step 0) has rate 0, exactly as in OpenLTH, and the full rate is reached at step
      warmup_steps.
    """
    step = tf.cast(step, tf.int64)
    rate = tf.fill(tf.shape(step), tf.constant(cfg.learning_rate, tf.float32))
    if cfg.lr_schedule == "step" and cfg.milestones:
        first_steps = tf.constant([m * steps_per_epoch for m in cfg.milestones], tf.int64)
        passed = tf.reduce_sum(tf.cast(step[..., None] >= first_steps, tf.float32), axis=-1)
        rate *= tf.pow(tf.constant(cfg.gamma, tf.float32), passed)
    elif cfg.lr_schedule == "cosine":
        total = cfg.epochs * steps_per_epoch
        done = tf.cast(tf.minimum(step, total), tf.float32) / tf.constant(total, tf.float32)
        # = 0.5 (1 + cos(pi·done)), without 1 + cos cancelling to a few correct bits near the end
        rate *= tf.square(tf.cos(tf.constant(math.pi / 2, tf.float32) * done))
    if cfg.warmup_steps:
        warm = tf.cast(step, tf.float32) / tf.constant(cfg.warmup_steps, tf.float32)
        rate *= tf.minimum(tf.constant(1, tf.float32), warm)
    return rate


def _fmix(h: tf.Tensor) -> tf.Tensor:
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 whose every output bit depends on
    every input bit (uint32 arithmetic wraps, in TensorFlow's kernels and in XLA alike)."""
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))
    h *= tf.constant(0x85EBCA6B, tf.uint32)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 13))
    h *= tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))


def _uint32(value) -> tf.Tensor:
    return tf.cast(tf.cast(value, tf.int64), tf.uint32)  # the low 32 bits


def uniform_draws(count, seed, epoch, step) -> tf.Tensor:
    """`count` × 3 numbers in [0, 1) (multiples of 2^-24), a function of (seed, epoch, step)
    alone, by hashing a counter with a key made of the three (each folded in by a bijection, so
    two steps of one epoch never share a key).

    Not tf.random.stateless_uniform: its numbers differ between TensorFlow's kernel and its XLA
    compilation (measured: the same key gives other numbers under jit_compile=True), so a batch's
    augmentation would depend on how the step was compiled. Integer hashing is exact everywhere:
    eager, tf.function, XLA, CPU or GPU give the same bits.
    """
    key = _fmix(_fmix(_fmix(_uint32(seed)) ^ _uint32(epoch)) ^ _uint32(step))
    counter = tf.reshape(_uint32(tf.range(tf.cast(count, tf.int64) * 3)), [-1, 3])
    bits = _fmix(key ^ _fmix(counter + tf.constant(0x9E3779B9, tf.uint32)))
    return tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * 2.0**-24


def augment(images: tf.Tensor, seed: int, epoch, step, kinds: tuple[str, ...]) -> tf.Tensor:
    """A batch of NHWC `images` with the augmentations `kinds` (a subset of flip, crop) applied,
    drawn from (seed, epoch, step) alone.

    - flip: each image mirrored left-right with probability 1/2;
    - crop: each image padded with CROP_PADDING zeros on every side, then a window of the
      original height and width cut out at a uniform offset (0..2·CROP_PADDING on each axis):
      the image shifted by up to 4 pixels, what is shifted in being 0. As OpenLTH (torchvision
      RandomCrop(32, 4) on the raw image, before normalisation): the engine feeds raw-range
      images, so the fill is black.

    Why no random state: the ticket and its controls, and a late-rewound round resuming at step
    k, must see the same augmented batch at the same (epoch, step); a stateful generator would
    depend on what ran before (see uniform_draws). Same key → identical output; another epoch → other flips and offsets. All
    random numbers of a batch come from one draw, so turning flip on or off leaves the crop
    offsets as they were.

    `seed`, `epoch` and `step` may be Python ints or scalar integer tensors (`step`: the step
    within the epoch or round 0's global step, the same one throughout a run); the dtype and the
    shape of `images` are kept (any dtype: uint8, or floats in 0..255). Pure tf ops (integer
    hashing, reverse, pad, gather): works eagerly, inside a tf.function and under
    jit_compile=True, with the same output in each (tested).
    """
    unknown = set(kinds) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentation {sorted(unknown)}; allowed: {AUGMENTATIONS}")
    if not kinds:
        return images
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    draws = uniform_draws(batch, seed, epoch, step)
    if "flip" in kinds:
        flipped = draws[:, 0] < 0.5
        images = tf.where(flipped[:, None, None, None], tf.reverse(images, axis=[2]), images)
    if "crop" in kinds:
        pad = CROP_PADDING
        offsets = tf.cast(tf.floor(draws[:, 1:] * (2 * pad + 1)), tf.int32)  # 0..2·pad each
        padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        rows = offsets[:, :1] + tf.range(height)[None, :]  # [batch, height]
        cols = offsets[:, 1:] + tf.range(width)[None, :]  # [batch, width]
        images = tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2,
                           batch_dims=1)
    return images
