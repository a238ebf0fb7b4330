"""The engine's own compiled step: masks hold after every step, the fused updates are Keras'
arithmetic, XLA is chosen, refused and recorded as it should be."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lottery_engine import pipeline
from lottery_engine.foundations import runfolder
from lottery_engine.config.schema import OPTIMIZERS, ConfigError, TrainConfig
from lottery_engine.lottery import runtime, trainer
from lottery_engine.models import builders as models
from lottery_engine.pruning import prunable
from lottery_engine.pruning.masks import MaskManager
from lottery_engine.training import keras_fit
from lottery_engine.training.stacked_step import StackedStep
from lottery_engine.training.fused_updates import FUSED_UPDATES
from lottery_engine.training.train_step import FusedOptimizer, FusedStep, choose_jit

from tests.conftest import tiny_config
from tests.user_models import digits, functional_model


def _pruned(model: keras.Model) -> MaskManager:
    manager = MaskManager(model, prunable.select(model, None))
    manager.prune(0.5, "global", {})
    manager.apply()
    return manager


def _data(shape: tuple[int, ...], n: int = 96) -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(0)
    return (tf.constant(rng.integers(0, 255, (n, *shape)).astype(np.float32)),
            tf.constant(rng.integers(0, 10, n).astype(np.int64)))


NETWORKS = {
    "dense": lambda: models.lenet_300_100((8, 8, 1), 10),
    "conv": lambda: models.lenet((12, 12, 1), 10),
    "user functional": functional_model,  # BatchNorm, nested block, Dropout, max-norm, logits
}


@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_pruned_weight_is_exactly_zero_after_every_step(network, optimizer):
    keras.utils.set_random_seed(1)
    model = NETWORKS[network]()
    manager = _pruned(model)
    before = manager.kernels()
    step = FusedStep(model, _data(model.inputs[0].shape[1:]),
                     TrainConfig(optimizer=optimizer, learning_rate=0.05),
                     logits=network == "user functional", jit_compile=False)
    for i in range(4):
        step.run(np.arange(16 * i, 16 * i + 16)[None], i)  # one step per call
        for name, kernel in manager.kernels().items():
            assert np.all(kernel[manager.masks[name] == 0] == 0), (name, i)
    moved = [name for name, kernel in manager.kernels().items()
             if not np.allclose(kernel, before[name])]
    assert moved == list(before)  # every layer trained; not a step that does nothing
    if network == "user functional":  # the user's max-norm ran too, before the mask
        hidden = model.get_layer("hidden").kernel.numpy()
        assert np.sqrt((hidden ** 2).sum(axis=0)).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("optimizer", [
    {"optimizer": "adam"}, {"optimizer": "sgd"}, {"optimizer": "sgd", "momentum": 0.0},
    {"optimizer": "sgd", "nesterov": True}, {"optimizer": "adamw", "weight_decay": 0.1}],
    ids=["adam", "sgd", "sgd-plain", "sgd-nesterov", "adamw"])
@pytest.mark.parametrize("pruned", [False, True], ids=["dense", "pruned"])
def test_the_fused_update_is_keras_arithmetic(optimizer, pruned):
    """Three steps of the fused kernels land where Keras' own optimizer of the same settings
    (FusedUpdate.keras_optimizer, which tickets are saved with) lands, up to float rounding
    (the paths cannot be bit-identical; they must be the same update); on a pruned network, in
    a second round after the optimizer's reset too (the rounds where a lean of fused against
    fit was measured: benchmarks/train_step.py)."""
    x, y = _data((8, 8, 1), 48)
    trained = []
    for path in ("keras", "fused"):
        keras.utils.set_random_seed(2)
        model = models.lenet_300_100((8, 8, 1), 10)
        start = model.get_weights()
        manager = _pruned(model) if pruned else None
        cfg = TrainConfig(**optimizer, learning_rate=0.01)
        step = None if path == "keras" else FusedStep(model, (x, y), cfg, False, False)
        for round_index in range(2 if pruned else 1):
            if path == "keras":
                keras_fit.compile_model(model, cfg, logits=False)  # a fresh optimizer
                for i in range(3):
                    model.train_on_batch(x[16 * i:16 * i + 16], y[16 * i:16 * i + 16])
            else:
                step.reset()
                step.run(np.arange(48).reshape(3, 16), 0)
            if manager and round_index == 0:
                manager.rewind(start)  # round 1: the same masks from the start weights
        trained.append(model.get_weights())
    for keras_weight, fused_weight in zip(*trained):
        # A wrong formula moves nearly every weight by a share of lr = 1e-2. Adam divides by
        # sqrt(v), so a rounding difference in a near-zero gradient can move a few weights more
        off = np.abs(fused_weight - keras_weight)
        assert np.median(off) < 1e-6 and np.mean(off > 1e-4) < 1e-2


def test_reset_zeroes_the_optimizer_and_the_training_logs():
    model = models.lenet_300_100((8, 8, 1), 10)
    step = FusedStep(model, _data((8, 8, 1)), TrainConfig(), False, False)
    step.run(np.arange(32).reshape(2, 16), 0)
    logs = step.take_logs()
    assert step.iterations == 2 and 0 < logs["accuracy"] <= 1 and logs["loss"] > 0
    step.reset()
    assert step.iterations == 0 and step.take_logs() == {"loss": 0.0, "accuracy": 0.0}


def test_xla_keeps_the_masks_and_refuses_max_pooling_in_one_line():
    """Runs are deterministic (runtime.setup_runtime), and XLA has no deterministic max-pooling
    gradient: an explicit jit_compile: true on a pooling network is refused, not run."""
    runtime.setup_runtime("cpu")
    keras.utils.set_random_seed(1)
    dense = models.lenet_300_100((8, 8, 1), 10)
    manager = _pruned(dense)
    FusedStep(dense, _data((8, 8, 1)), TrainConfig(), False, True).run(
        np.arange(32).reshape(2, 16), 0)
    assert all(np.all(k[manager.masks[n] == 0] == 0) for n, k in manager.kernels().items())
    conv = models.lenet((12, 12, 1), 10)
    with pytest.raises(ConfigError, match=r"^train.jit_compile: XLA cannot compile this "
                                          r"model's step \(.*MaxPool.*\); use jit_compile: "
                                          r"false or auto$"):
        FusedStep(conv, _data((12, 12, 1)), TrainConfig(), False, True).run(
            np.arange(16)[None], 0)


def test_the_probe_leaves_the_model_as_it_found_it():
    """Timing both paths trains; every variable (BatchNorm statistics, dropout's seed state) is
    put back, so the run goes on as if the probe never happened."""
    model = functional_model()
    x, y = digits(96)
    before = [v.numpy().copy() for v in model.variables]
    step, probe = choose_jit(lambda jit: FusedStep(model, (tf.constant(x), tf.constant(y)),
                                                   TrainConfig(), True, jit),
                             np.arange(64).reshape(4, 16), model.variables, calls=1)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.variables))
    assert step.iterations == 0 and step.jit_compile == probe["jit_compile"]
    assert set(probe["probe_ms_per_step"]) == {"xla", "graph"}


def test_the_xla_choice_is_recorded_and_kept_on_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "PROBE_MIN_STEPS", 0)  # time XLA even on a tiny run
    cfg = tiny_config(train__arch="lenet_300_100", train__jit_compile="auto", imp__num_rounds=1)
    pipeline.execute(cfg, tmp_path / "run")
    first = runfolder.read_rounds(tmp_path / "run")
    assert {r["train_step"] for r in first} == {"fused"}
    chosen = first[0]["jit_compile"]
    assert isinstance(chosen, bool) and first[0]["probe_ms_per_step"]["graph"] > 0
    # a resumed run takes the recorded choice rather than timing again
    monkeypatch.setattr(trainer, "choose_jit", lambda *a, **k: pytest.fail("timed again"))
    pipeline.execute(tiny_config(train__arch="lenet_300_100", train__jit_compile="auto",
                                 imp__num_rounds=2), tmp_path / "run")
    assert runfolder.read_rounds(tmp_path / "run")[2]["jit_compile"] == chosen


def _with_biases(model: keras.Model) -> keras.Model:
    """`model` with random biases instead of zeros, so that what happens to them shows."""
    rng = np.random.default_rng(6)
    model.set_weights([w if v.name == "kernel" else rng.normal(0, 0.5, w.shape).astype(w.dtype)
                       for v, w in zip(model.weights, model.get_weights())])
    return model


def _one_sgd_step(augment: tuple[str, ...] = (), **recipe
                  ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The weights before and after one step of plain SGD (lr 0.1) with `recipe`."""
    keras.utils.set_random_seed(4)
    model = _with_biases(models.lenet((12, 12, 1), 10))
    before = [w.copy() for w in model.get_weights()]
    cfg = TrainConfig(**{"optimizer": "sgd", "momentum": 0.0, "learning_rate": 0.1, **recipe})
    FusedStep(model, _data((12, 12, 1)), cfg, False, False, 10, augment, seed=5).run(
        np.arange(16)[None], 0)
    return before, model.get_weights()


@pytest.mark.parametrize("on", ["all", "kernels"])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_weight_decay_shrinks_what_weight_decay_on_names_by_lr_times_decay(optimizer, on):
    """L2 (sgd: added to the gradient) and decoupled decay (adamw) both move a decayed variable
    by -lr·decay·w more than the same step without decay, in one step: by default every
    trainable variable, biases too (OpenLTH's torch.optim.SGD, Keras' AdamW); with
    weight_decay_on: kernels the kernels alone."""
    momentum = {"momentum": 0.0} if optimizer == "sgd" else {"momentum": 0.9}
    before, plain = _one_sgd_step(optimizer=optimizer, **momentum)
    _, decayed = _one_sgd_step(optimizer=optimizer, weight_decay=0.01, weight_decay_on=on,
                               **momentum)
    for w0, a, b, variable in zip(before, plain, decayed, models.lenet((12, 12, 1), 10).weights):
        reached = on == "all" or variable.name == "kernel"
        expected = -0.1 * 0.01 * w0 if reached else np.zeros_like(w0)
        np.testing.assert_allclose(b - a, expected, atol=1e-6)
        assert reached == bool(np.any(b != a)), variable.path


def _momentum_path(form: str, nesterov: bool, start: np.ndarray, gradients: np.ndarray,
                   rates: list[float]) -> np.ndarray:
    """The weights after each step of the fused SGD with momentum 0.9 in `form`, each step
    given its gradient and learning rate."""
    cfg = TrainConfig(optimizer="sgd", momentum=0.9, nesterov=nesterov, momentum_form=form)
    weight = tf.Variable(start)
    optimizer = FusedOptimizer(cfg, [weight], [True])
    path = []
    for gradient, rate in zip(gradients, rates):
        optimizer.apply([tf.constant(gradient)], tf.constant(rate, tf.float32))
        path.append(weight.numpy().copy())
    return np.array(path)


@pytest.mark.parametrize("nesterov", [False, True], ids=["heavy-ball", "nesterov"])
def test_momentum_forms_are_keras_and_pytorch_arithmetic_across_a_rate_drop(nesterov):
    """By hand, 8 steps whose rate drops x0.1 after 4. PyTorch (OpenLTH's torch.optim.SGD):
    v = μv + g, w -= lr·v (Nesterov: w -= lr·(g + μv)). Keras: v = μv - lr·g, w += v
    (Nesterov: w += μv - lr·g). Equal while the rate is constant; after the drop PyTorch's
    velocity is scaled by the new rate at once, Keras' keeps the old rate's steps in it."""
    rng = np.random.default_rng(0)
    start = rng.normal(size=5).astype(np.float32)
    gradients = rng.normal(size=(8, 5)).astype(np.float32)
    rates, mu = [0.1] * 4 + [0.01] * 4, 0.9
    torch, keras_form = [], []
    w, v = start.astype(np.float64), np.zeros(5)
    for g, lr in zip(gradients, rates):
        v = mu * v + g
        w = w - lr * (g + mu * v if nesterov else v)
        torch.append(w)
    w, v = start.astype(np.float64), np.zeros(5)
    for g, lr in zip(gradients, rates):
        v = mu * v - lr * g
        w = w + (mu * v - lr * g if nesterov else v)
        keras_form.append(w)
    pytorch = _momentum_path("pytorch", nesterov, start, gradients, rates)
    keras_path = _momentum_path("keras", nesterov, start, gradients, rates)
    np.testing.assert_allclose(pytorch, torch, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras_path, keras_form, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pytorch[:4], keras_path[:4], rtol=1e-5, atol=1e-6)
    assert np.abs(pytorch[4:] - keras_path[4:]).min() > 1e-3


@pytest.mark.parametrize("on", ["all", "kernels"])
def test_the_stack_decays_and_steps_as_the_fused_step(on):
    """The stack passes its own variables and kernel flags to the same FusedOptimizer: PyTorch's
    Nesterov momentum across a rate drop, with weight decay on what `on` names, trains a stacked
    series exactly as the fused step trains the network alone."""
    x, y = _data((8, 8, 1), 64)
    cfg = TrainConfig(optimizer="sgd", learning_rate=0.05, momentum=0.9, nesterov=True,
                      momentum_form="pytorch", weight_decay=0.1, weight_decay_on=on, epochs=2,
                      lr_schedule="step", milestones=[1])
    keras.utils.set_random_seed(3)
    model = _with_biases(models.lenet_300_100((8, 8, 1), 10))
    manager = MaskManager(model, prunable.select(model, None))
    stack = StackedStep(model, manager.kernel_variables, 1, (x, y), cfg, steps_per_epoch=2)
    stack.load([model.get_weights()], [dict(manager.masks)])
    stack.run(np.arange(64).reshape(4, 16), 0)
    FusedStep(model, (x, y), cfg, False, False, steps_per_epoch=2).run(
        np.arange(64).reshape(4, 16), 0)
    for alone, stacked in zip(model.get_weights(), stack.weights(0)):
        assert np.abs(alone - stacked).max() < 1e-5  # a bias decayed on one path only: ~1e-3


def test_augmentation_changes_the_batch_the_same_way_every_time():
    """Inside the step, flips and crops change what trains, and the same (seed, epoch, step)
    gives the same augmented batch: the ticket and its controls see the same images."""
    _, plain = _one_sgd_step()
    _, augmented = _one_sgd_step(("flip", "crop"))
    _, again = _one_sgd_step(("flip", "crop"))
    assert all(np.array_equal(a, b) for a, b in zip(augmented, again))
    assert not all(np.allclose(a, b) for a, b in zip(augmented, plain))


def test_the_schedule_is_in_the_record_and_continues_from_the_rewind_step(tmp_path):
    """Warm-up over 6 steps, the rate halved at epoch 1; round 1 is rewound to step 3, so its
    first epoch trains at half the warmed-up rate (step 3 of 6), as round 0 did at step 3."""
    cfg = tiny_config(train__optimizer="sgd", train__learning_rate=0.2, train__epochs=2,
                      train__lr_schedule="step", train__milestones=[1], train__gamma=0.5,
                      train__warmup_steps=6, imp__rewind="step:3", imp__num_rounds=1)
    records = pipeline.execute(cfg, tmp_path / "run") and runfolder.read_rounds(tmp_path / "run")
    assert records[0]["history"]["learning_rate"] == pytest.approx([0.0, 0.1])
    assert records[1]["history"]["learning_rate"] == pytest.approx([0.1, 0.1])


def test_a_model_with_its_own_train_step_needs_the_keras_path(tmp_path):
    """The fused step would bypass a user's train_step: refused in one line, and the Keras path
    runs it."""
    factory = {"train__arch": "factory", "train__factory": "tests.user_models:custom_step_factory"}
    with pytest.raises(ConfigError, match=r"^train.step: CountingModel overrides train_step, "
                                          r"which the fused step would bypass; set train.step: "
                                          r"keras$"):
        pipeline.execute(tiny_config(**factory, imp__num_rounds=1), tmp_path / "fused")
    pipeline.execute(tiny_config(**factory, train__step="keras", imp__num_rounds=1),
                     tmp_path / "keras")
    assert [r["train_step"] for r in runfolder.read_rounds(tmp_path / "keras")] == ["keras"] * 2


def test_the_probe_falls_back_to_graph_mode_where_xla_refuses(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(trainer, "PROBE_MIN_STEPS", 0)
    caplog.set_level("INFO", logger="lottery")
    pipeline.execute(tiny_config(train__jit_compile="auto", imp__num_rounds=0),  # max pooling
                     tmp_path / "run")
    record = runfolder.read_rounds(tmp_path / "run")[0]
    assert record["jit_compile"] is False and record["probe_ms_per_step"]["xla"] is None
    assert record["xla_refused"].startswith("train.jit_compile: XLA cannot compile")
    assert "auto chose graph mode (ms per step: xla refused, graph " in caplog.text


def test_each_optimizer_a_config_may_name_has_its_fused_update():
    """config's OPTIMIZERS (free of TensorFlow, read by the validator and the dashboard) and the
    fused updates are one list of names, in one order."""
    assert tuple(FUSED_UPDATES) == OPTIMIZERS
