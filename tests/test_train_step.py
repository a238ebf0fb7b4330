"""The engine's own compiled step: masks hold after every step, the fused updates are Keras'
arithmetic, XLA is chosen, refused and recorded as it should be."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from lottery_engine import imp, models, pipeline, prunable, runfolder
from lottery_engine.masks import MaskManager
from lottery_engine.schema import ConfigError, TrainConfig
from lottery_engine.train_step import FusedStep, choose_jit

from .conftest import tiny_config
from .user_models import digits, functional_model


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


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_fused_update_is_keras_arithmetic(optimizer):
    """Three steps of the fused kernels land where Keras' own optimizer lands, up to float
    rounding (the paths cannot be bit-identical; they must be the same update)."""
    x, y = _data((8, 8, 1), 48)
    trained = []
    for path in ("keras", "fused"):
        keras.utils.set_random_seed(2)
        model = models.lenet_300_100((8, 8, 1), 10)
        cfg = TrainConfig(optimizer=optimizer, learning_rate=0.01)
        if path == "keras":
            models.compile_model(model, cfg, logits=False)
            for i in range(3):
                model.train_on_batch(x[16 * i:16 * i + 16], y[16 * i:16 * i + 16])
        else:
            FusedStep(model, (x, y), cfg, False, False).run(np.arange(48).reshape(3, 16), 0)
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
    """Runs are deterministic (imp.setup_runtime), and XLA has no deterministic max-pooling
    gradient: an explicit jit_compile: true on a pooling network is refused, not run."""
    imp.setup_runtime("cpu")
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
    monkeypatch.setattr(imp, "PROBE_MIN_STEPS", 0)  # time XLA even on a tiny run
    cfg = tiny_config(train__arch="lenet_300_100", imp__num_rounds=1)
    pipeline.execute(cfg, tmp_path / "run")
    first = runfolder.read_rounds(tmp_path / "run")
    assert {r["train_step"] for r in first} == {"fused"}
    chosen = first[0]["jit_compile"]
    assert isinstance(chosen, bool) and first[0]["probe_ms_per_step"]["graph"] > 0
    # a resumed run takes the recorded choice rather than timing again
    monkeypatch.setattr(imp, "choose_jit", lambda *a, **k: pytest.fail("timed again"))
    pipeline.execute(tiny_config(train__arch="lenet_300_100", imp__num_rounds=2),
                     tmp_path / "run")
    assert runfolder.read_rounds(tmp_path / "run")[2]["jit_compile"] == chosen
