import keras
import numpy as np
import pytest

from lottery_engine.config.architectures import prunable_layers
from lottery_engine.config.load import TrainConfig
from lottery_engine.models import builders as models
from lottery_engine.pruning import prunable
from lottery_engine.pruning.masks import (MaskManager, magnitude_prune, random_masks_like,
                                          sparsity_report)
from lottery_engine.training import keras_fit


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(30, 20)), "b": rng.normal(size=(20, 10)) * 0.1,
            "c": rng.normal(size=(10, 3))}


def _ones(weights):
    return {k: np.ones(v.shape, np.float32) for k, v in weights.items()}


def test_global_prune_removes_exact_count_and_follows_the_schedule():
    weights, masks = _weights(), None
    masks = _ones(weights)
    total = sum(m.size for m in masks.values())
    for r in range(1, 8):
        alive = sum(int(m.sum()) for m in masks.values())
        new = magnitude_prune(weights, masks, 0.2, "global")
        assert alive - sum(int(m.sum()) for m in new.values()) == round(0.2 * alive)
        for name in masks:
            assert set(np.unique(new[name])) <= {0.0, 1.0}
            assert np.all(new[name] <= masks[name])
        masks = new
        assert abs(sparsity_report(masks)["global_sparsity"] - (1 - 0.8 ** r)) < 1e-3
    assert sparsity_report(masks)["total_prunable"] == total


def test_global_prune_takes_the_smallest_magnitudes_across_layers():
    weights = _weights()
    new = magnitude_prune(weights, _ones(weights), 0.3, "global")
    pruned = np.concatenate([np.abs(weights[k])[new[k] == 0] for k in weights])
    kept = np.concatenate([np.abs(weights[k])[new[k] == 1] for k in weights])
    assert pruned.max() <= kept.min()
    assert new["b"].mean() < new["a"].mean()  # layer b is scaled down, so it loses most


def test_layerwise_prune_and_overrides():
    weights = _weights()
    new = magnitude_prune(weights, _ones(weights), 0.2, "layerwise", {"c": 0.1})
    assert int(new["a"].sum()) == 600 - 120
    assert int(new["b"].sum()) == 200 - 40
    assert int(new["c"].sum()) == 30 - 3


def test_global_with_override_prunes_that_layer_apart():
    weights = _weights()
    new = magnitude_prune(weights, _ones(weights), 0.2, "global", {"c": 0.5})
    assert int(new["c"].sum()) == 15
    assert int(new["a"].sum() + new["b"].sum()) == 800 - 160


def test_ties_are_broken_deterministically_and_exactly():
    weights = {"a": np.ones((10, 10))}
    new = magnitude_prune(weights, {"a": np.ones((10, 10), np.float32)}, 0.25)
    assert int(new["a"].sum()) == 75  # a `<=` percentile threshold would prune all 100
    again = magnitude_prune(weights, {"a": np.ones((10, 10), np.float32)}, 0.25)
    np.testing.assert_array_equal(new["a"], again["a"])


def test_random_masks_keep_per_layer_counts():
    weights = _weights()
    masks = magnitude_prune(weights, _ones(weights), 0.6, "global")
    rand = random_masks_like(masks, seed=3)
    for name in masks:
        assert rand[name].sum() == masks[name].sum()
    assert any(not np.array_equal(rand[n], masks[n]) for n in masks)


@pytest.fixture
def lenet():
    keras.utils.set_random_seed(1)
    model = models.build(TrainConfig(arch="lenet"), (16, 16, 1), 10)
    kernels = prunable.select(model, None)
    assert list(kernels) == prunable_layers("lenet")
    return model, MaskManager(model, kernels)


def test_rewind_restores_theta0_under_the_mask_and_every_other_parameter(lenet):
    model, manager = lenet
    theta0 = [w.copy() for w in model.get_weights()]
    model.set_weights([w + 1.0 for w in theta0])  # as if trained
    manager.prune(0.5, "global", {})
    manager.rewind()
    kernels = {id(variable): n for n, variable in manager.kernel_variables.items()}
    for variable, w0 in zip(model.weights, theta0):
        now = variable.numpy()
        name = kernels.get(id(variable))
        if name is None:
            np.testing.assert_array_equal(now, w0)  # biases: back to θ0
        else:
            mask = manager.masks[name].astype(bool)
            np.testing.assert_array_equal(now[mask], w0[mask])
            assert np.all(now[~mask] == 0.0)


def test_pruned_weights_stay_exactly_zero_through_adam_training(lenet):
    model, manager = lenet
    manager.prune(0.7, "global", {})
    manager.rewind()
    keras_fit.compile_model(model, TrainConfig(learning_rate=0.01), False)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(128, 16, 16, 1)).astype("uint8")
    y = rng.integers(0, 10, size=128)
    before = manager.kernels()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    after = manager.kernels()
    for name, mask in manager.masks.items():
        assert np.all(after[name][mask == 0] == 0.0), name
        assert not np.array_equal(after[name][mask == 1], before[name][mask == 1]), name


def test_saved_masks_hold_mask_and_init_keys(lenet, tmp_path):
    model, manager = lenet
    manager.prune(0.2, "layerwise", {})
    manager.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as f:
        assert sorted(f.files) == sorted([f"mask_{n}" for n in manager.kernel_variables]
                                         + [f"init_{n}" for n in manager.kernel_variables])
        np.testing.assert_array_equal(f["mask_dense_1"], manager.masks["dense_1"])
        np.testing.assert_array_equal(f["init_dense_1"], manager.rewind_kernels()["dense_1"])
