"""The training recipes (lottery_engine/training/recipes.py): OpenLTH's learning-rate schedule
with warm-up on round 0's step clock, flip and crop augmentation keyed by (seed, epoch, step), and
the config keys that choose them, each refused in one line naming the key."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import yaml

from lottery_engine import preflight
from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError, TrainConfig
from lottery_engine.training import recipes

from tests.conftest import ROOT

SPE = 4  # steps per epoch


def rates(cfg: TrainConfig, steps) -> np.ndarray:
    return recipes.learning_rate(cfg, tf.constant(steps, tf.int64), SPE).numpy()


def stepped(**kwargs) -> TrainConfig:
    values = dict(learning_rate=0.1, epochs=10, lr_schedule="step", milestones=[3, 6], gamma=0.1)
    return TrainConfig(**{**values, **kwargs})


# --- the learning rate --------------------------------------------------------------------------

def test_constant_is_the_default_and_the_base_rate_at_every_step():
    cfg = TrainConfig(learning_rate=0.003, epochs=5)
    assert cfg.lr_schedule == "constant" and cfg.warmup_steps == 0
    np.testing.assert_allclose(rates(cfg, range(20)), 0.003, rtol=1e-6)


def test_step_schedule_drops_by_gamma_at_the_first_step_of_each_milestone_epoch():
    got = rates(stepped(), [0, 11, 12, 13, 23, 24, 39, 1000])
    np.testing.assert_allclose(got, [0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001], rtol=1e-6)


def test_warmup_is_openlths_linear_ramp_from_zero():
    """OpenLTH: min(1, step / warmup_steps), so step 0 has rate 0 and step warmup_steps the full
    rate; the step schedule multiplies it."""
    cfg = stepped(warmup_steps=8)
    np.testing.assert_allclose(rates(cfg, [0, 1, 4, 7, 8, 11, 12]),
                               [0, 0.0125, 0.05, 0.0875, 0.1, 0.1, 0.01], rtol=1e-6, atol=1e-9)


def test_cosine_runs_from_the_base_rate_to_zero_over_training():
    cfg = TrainConfig(learning_rate=0.2, epochs=10, lr_schedule="cosine")
    total = 10 * SPE
    got = rates(cfg, [0, total // 4, total // 2, total, total + 7])
    want = [0.2, 0.1 * (1 + math.cos(math.pi / 4)), 0.1, 0, 0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_a_round_rewound_to_step_k_continues_round_0s_schedule():
    """The engine's step clock: a variable set to k at a late rewind and incremented by the
    compiled step; the rates it reads from k on are round 0's rates from k on."""
    cfg = stepped(lr_schedule="cosine", milestones=[], warmup_steps=5)
    round_0 = rates(cfg, range(10 * SPE))
    clock = tf.Variable(0, dtype=tf.int64)

    @tf.function(jit_compile=True)
    def step() -> tf.Tensor:
        rate = recipes.learning_rate(cfg, clock, SPE)
        clock.assign_add(1)
        return rate

    k = 13
    clock.assign(k)
    resumed = [step().numpy() for _ in range(10 * SPE - k)]
    np.testing.assert_allclose(resumed, round_0[k:], rtol=1e-5)  # XLA's cos on CPU: ~1e-6
    assert not np.isclose(resumed[0], round_0[0])


@pytest.mark.parametrize("cfg", [stepped(warmup_steps=6),
                                 TrainConfig(epochs=3, lr_schedule="cosine", warmup_steps=2),
                                 TrainConfig()], ids=["step", "cosine", "constant"])
def test_the_rate_is_the_same_eagerly_in_a_tf_function_and_under_xla(cfg):
    """Within float32 rounding: a graph's and XLA's cos on CPU differ from the eager kernel's by
    about 1e-6 (relative) near the end of a cosine schedule."""
    compiled = tf.function(lambda s: recipes.learning_rate(cfg, s, SPE), jit_compile=True)
    traced = tf.function(lambda s: recipes.learning_rate(cfg, s, SPE))
    for step in range(0, cfg.epochs * SPE + 3):
        eager = recipes.learning_rate(cfg, step, SPE).numpy()
        assert eager.shape == () and eager.dtype == np.float32
        for run in (traced, compiled):
            np.testing.assert_allclose(run(tf.constant(step)).numpy(), eager, rtol=1e-5)


# --- augmentation -------------------------------------------------------------------------------

def batch(n=32, height=12, width=10, channels=3, dtype=np.uint8) -> np.ndarray:
    """Images with no zero pixel (so a crop's fill shows) and no symmetry (so a flip shows)."""
    rng = np.random.default_rng(0)
    return rng.integers(1, 256, (n, height, width, channels)).astype(dtype)


def augmented(images, epoch=1, step=2, kinds=("flip", "crop"), seed=7) -> np.ndarray:
    return recipes.augment(tf.constant(images), seed, epoch, step, kinds).numpy()


def test_the_same_key_gives_the_same_batch_eagerly_traced_and_under_xla():
    images = batch()
    first = augmented(images)
    np.testing.assert_array_equal(first, augmented(images))
    for jit in (False, True):
        run = tf.function(lambda x, e, s: recipes.augment(x, 7, e, s, ("flip", "crop")),
                          jit_compile=jit)
        got = run(tf.constant(images), tf.constant(1, tf.int64), tf.constant(2, tf.int64))
        np.testing.assert_array_equal(got.numpy(), first)


def test_other_epochs_steps_and_seeds_give_other_batches():
    images = batch()
    first = augmented(images)
    for other in (augmented(images, epoch=2), augmented(images, step=3),
                  augmented(images, seed=8)):
        assert not np.array_equal(other, first)


def test_flip_mirrors_about_half_the_images_left_to_right():
    images = batch(n=64)
    out = augmented(images, kinds=("flip",))
    mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
    kept = [np.array_equal(o, i) for o, i in zip(out, images)]
    assert all(m != k for m, k in zip(mirrored, kept))  # each image one or the other
    assert 16 <= sum(mirrored) <= 48


def shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`image` moved down dy and right dx pixels, zeros shifted in."""
    height, width = image.shape[:2]
    padded = np.pad(image, [(4, 4), (4, 4), (0, 0)])
    return padded[4 - dy:4 - dy + height, 4 - dx:4 - dx + width]


def offsets(out: np.ndarray, images: np.ndarray) -> list[tuple[int, int]]:
    found = []
    for o, i in zip(out, images):
        moves = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                 if np.array_equal(o, shift(i, dy, dx))]
        assert len(moves) == 1, "each crop is exactly one shift of the image"
        found.append(moves[0])
    return found


def test_crop_shifts_each_image_by_up_to_4_pixels_with_zero_fill():
    images = batch(n=64)
    moves = offsets(augmented(images, kinds=("crop",)), images)
    assert len(set(moves)) > 20  # per image, not one offset for the batch
    assert {dy for dy, _ in moves} == set(range(-4, 5)) == {dx for _, dx in moves}


def test_crop_offsets_do_not_depend_on_whether_flip_is_on():
    images = batch()
    cropped = augmented(images, kinds=("crop",))
    cropped_mirror = augmented(images[:, :, ::-1], kinds=("crop",))
    both = augmented(images)
    for b, c, m in zip(both, cropped, cropped_mirror):
        assert np.array_equal(b, c) or np.array_equal(b, m)


@pytest.mark.parametrize("dtype,shape", [(np.uint8, (5, 32, 32, 3)), (np.float32, (3, 20, 28, 1)),
                                         (np.float16, (2, 9, 9, 2))])
def test_shape_and_dtype_are_kept(dtype, shape):
    images = batch(*shape, dtype=dtype)
    out = recipes.augment(tf.constant(images), 0, 0, 0, ("flip", "crop"))
    assert out.dtype == tf.as_dtype(dtype) and tuple(out.shape) == shape


def test_no_kinds_is_the_batch_itself_and_an_unknown_kind_is_refused():
    images = batch(n=3)
    np.testing.assert_array_equal(augmented(images, kinds=()), images)
    with pytest.raises(ValueError, match="rotate"):
        augmented(images, kinds=("flip", "rotate"))


# --- the config keys ----------------------------------------------------------------------------

def test_recipe_keys_round_trip_through_yaml():
    cfg = config_lib.from_dict({
        "data": {"augment": ["flip", "crop"]},
        "train": {"optimizer": "sgd", "momentum": 0.8, "nesterov": True, "weight_decay": 1e-4,
                  "momentum_form": "pytorch", "weight_decay_on": "kernels", "lr_schedule": "step",
                  "epochs": 10, "milestones": [4, 8], "gamma": 0.2,
                  "warmup_steps": 50}})
    again = config_lib.loads(config_lib.to_yaml(cfg))
    assert again == cfg and again.train.milestones == [4, 8] and again.data.augment == ["flip",
                                                                                       "crop"]
    assert (again.train.momentum_form, again.train.weight_decay_on) == ("pytorch", "kernels")


def test_defaults_keep_todays_runs_unchanged():
    cfg = config_lib.from_dict({"train": {"optimizer": "sgd"}})
    assert (cfg.train.momentum, cfg.train.nesterov, cfg.train.weight_decay) == (0.9, False, 0.0)
    assert (cfg.train.lr_schedule, cfg.train.warmup_steps, cfg.data.augment) == ("constant", 0, [])
    config_lib.from_dict({"train": {"optimizer": "adamw", "weight_decay": 0.05}})


SGD = {"optimizer": "sgd"}
REFUSED = [
    ({"train": {"optimizer": "adam", "momentum": 0.5}}, "train.momentum: invalid value 0.5; "
     "only sgd uses momentum"),
    ({"train": {**SGD, "momentum": 1.0}}, "train.momentum: invalid value 1.0; expected a number "
     "in [0, 1)"),
    ({"train": {"optimizer": "adam", "nesterov": True}}, "train.nesterov: invalid value True; "
     "Nesterov momentum is sgd's"),
    ({"train": {**SGD, "nesterov": True, "momentum": 0}}, "train.nesterov: invalid value True; "
     "Nesterov momentum needs train.momentum above 0"),
    ({"train": {"nesterov": "yes"}}, "train.nesterov: invalid value 'yes'; expected true or false"),
    ({"train": {"weight_decay": -1e-4}}, "train.weight_decay: invalid value -0.0001; expected a "
     "number in [0, 1]"),
    ({"train": {**SGD, "weight_decay": 1e-4, "weight_decay_on": "weights"}},
     "train.weight_decay_on: unknown value 'weights'; allowed: all, kernels"),
    ({"train": {**SGD, "weight_decay_on": "kernels"}}, "train.weight_decay_on: invalid value "
     "'kernels'; only a weight_decay above 0 decays anything; set train.weight_decay, or leave "
     "weight_decay_on out"),
    ({"train": {**SGD, "momentum_form": "torch"}}, "train.momentum_form: unknown value 'torch'; "
     "allowed: keras, pytorch"),
    ({"train": {"optimizer": "adam", "momentum_form": "pytorch"}}, "train.momentum_form: invalid "
     "value 'pytorch'; only sgd with momentum above 0 has a momentum form"),
    ({"train": {**SGD, "momentum": 0, "momentum_form": "pytorch"}}, "train.momentum_form: "
     "invalid value 'pytorch'; only sgd with momentum above 0 has a momentum form"),
    ({"train": {**SGD, "momentum_form": "pytorch", "step": "keras"}}, "train.step: invalid value "
     "'keras'; keras runs only constant-rate adam or sgd with Keras' momentum 0.9; for "
     "momentum_form use step: fused"),
    ({"train": {**SGD, "weight_decay": 1e-4, "weight_decay_on": "kernels", "step": "keras"}},
     "train.step: invalid value 'keras'; keras runs only constant-rate adam or sgd with Keras' "
     "momentum 0.9; for weight_decay, weight_decay_on use step: fused"),
    ({"train": {"early_stopping": "measured"}}, "train.early_stopping: invalid value 'measured'; "
     "expected true (stop and keep the early-stop point's weights), false or measure (train "
     "every step, keep the final weights)"),
    ({"train": {"lr_schedule": "cos"}}, "train.lr_schedule: unknown value 'cos'; allowed: "
     "constant, step, cosine. Did you mean 'cosine'?"),
    ({"train": {"lr_schedule": "step", "epochs": 10}}, "train.milestones: invalid value []; "
     "lr_schedule step needs the epochs"),
    ({"train": {"milestones": [3]}}, "train.milestones: invalid value [3]; only lr_schedule: "
     "step uses milestones"),
    ({"train": {"lr_schedule": "step", "epochs": 10, "milestones": [6, 3]}},
     "train.milestones: invalid value [6, 3]; epochs in strictly increasing order"),
    ({"train": {"lr_schedule": "step", "epochs": 10, "milestones": [3, 10]}},
     "train.milestones: invalid value [3, 10]; each epoch from 1 to train.epochs - 1 (9)"),
    ({"train": {"lr_schedule": "step", "epochs": 10, "milestones": [0, 5]}},
     "train.milestones: invalid value [0, 5]; each epoch from 1"),
    ({"train": {"lr_schedule": "step", "epochs": 10, "milestones": [2.5]}},
     "train.milestones: invalid value [2.5]; expected a list of epochs"),
    ({"train": {"lr_schedule": "step", "epochs": 10, "milestones": [5], "gamma": 0}},
     "train.gamma: invalid value 0; expected a number in (0, 1]"),
    ({"train": {"gamma": 0.5}}, "train.gamma: invalid value 0.5; only lr_schedule: step uses "
     "gamma"),
    ({"train": {"warmup_steps": -1}}, "train.warmup_steps: invalid value -1; expected an integer "
     "from 0 to"),
    ({"train": {"optimizer": "adamw2"}}, "train.optimizer: unknown value 'adamw2'; allowed: "
     "adam, sgd, adamw"),
    ({"data": {"augment": "flip"}}, "data.augment: invalid value 'flip'; expected a list drawn "
     "from flip, crop"),
    ({"data": {"augment": ["flip", "rotate"]}}, "data.augment: unknown value 'rotate'; allowed: "
     "flip, crop"),
    ({"data": {"augment": ["flip", "flip"]}}, "data.augment: invalid value ['flip', 'flip']; "
     "each augmentation at most once"),
    ({"data": {"source": "csv", "path": "t.csv", "label": "y", "augment": ["crop"]}},
     "data.augment: invalid value ['crop']; flip and crop apply to images, and a csv's rows are "
     "not"),
    ({"train": {"arch": "vgg16"}, "data": {"channels": 3, "augment": ["flip"]}},
     "data.augment: invalid value ['flip']; vgg16's head trains on base features cached once"),
]


@pytest.mark.parametrize("raw,message", REFUSED, ids=[m.split(";")[0] for _, m in REFUSED])
def test_each_recipe_key_is_refused_in_one_line_naming_it(raw, message):
    with pytest.raises(ConfigError) as info:
        config_lib.from_dict(raw)
    assert [str(e) for e in info.value.errors if message in str(e)], str(info.value)
    assert message.split(":")[0] in [e.key for e in info.value.errors]
    assert all("\n" not in str(e) for e in info.value.errors)


def test_augment_is_refused_for_a_npz_whose_rows_are_not_images(tmp_path):
    path = tmp_path / "rows.npz"
    np.savez(path, x_train=np.zeros((60, 12), np.float32), y_train=np.arange(60) % 2)
    raw = {"data": {"source": "arrays", "path": str(path), "augment": ["flip"]}}
    with pytest.raises(ConfigError, match=r"^data.augment: invalid value \['flip'\]; flip and crop "
                                          r"apply to images, and the rows of rows.npz have shape "
                                          r"\(12,\)"):
        preflight.from_dict(raw)
    np.savez(path, x_train=np.zeros((60, 8, 8, 1), np.float32), y_train=np.arange(60) % 2)
    assert preflight.from_dict(raw).data.augment == ["flip"]


LITERATURE = ROOT / "configs"


@pytest.mark.parametrize("name", ["resnet20_cifar10", "resnet20_fashion", "vgg16_cifar10"])
def test_openlths_recipes_run_pytorchs_sgd_and_decay_every_variable(name):
    """OpenLTH trains with torch.optim.SGD: PyTorch's momentum form, weight decay on every
    parameter; each config says both, not leaving them to defaults."""
    raw = yaml.safe_load((LITERATURE / f"{name}.yaml").read_text())["train"]
    assert (raw["momentum_form"], raw["weight_decay_on"]) == ("pytorch", "all")
    assert config_lib.load(LITERATURE / f"{name}.yaml").train.weight_decay > 0


@pytest.mark.parametrize("name", ["conv2_cifar10", "conv4_cifar10", "conv6_cifar10"])
def test_frankle_and_carbins_configs_train_the_whole_budget_and_measure_early_stop(name):
    """The paper trains every iteration, prunes the final weights and only measures the
    iteration of lowest validation loss."""
    cfg = config_lib.load(LITERATURE / f"{name}.yaml")
    assert cfg.train.early_stopping == "measure"


@pytest.mark.parametrize("path", sorted(LITERATURE.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_says_its_protocol_at_the_top(path):
    header = path.read_text().split("\n", 8)[:8]
    assert any(line.startswith("# Protocol: ") for line in header), path.name
