"""Shared fixtures: tiny configs and real tiny runs, made once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from lottery_engine.config import load as config_lib  # noqa: E402
from lottery_engine.foundations.events import IMP  # noqa: E402
from lottery_engine.foundations.round_record import RoundRecord  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _main_module_restored():
    """Streamlit's script runner installs each page it runs (an AppTest's too) as `__main__` and
    leaves it there; a worker started in this process then spawns its jobs by re-running that
    page as their main module, and an AppTest.from_function page fails there (NameError: its
    arguments are injected), so a later test's job died with exit code 1."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


def tiny_config(**overrides) -> config_lib.Config:
    """LeNet on 300 digits at 16x16, one epoch, two rounds: seconds on a laptop core."""
    raw = {
        "run": {"name": "tiny", "seed": 7, "device": "cpu"},
        "data": {"source": "bundled", "name": "digits", "image_size": [16, 16], "channels": 1,
                 "limit_total": 300},
        "train": {"arch": "lenet", "epochs": 1, "batch_size": 32},
        "imp": {"prune_rate": 0.2, "num_rounds": 2, "target_sparsity": 0.99},
    }
    for dotted, value in overrides.items():
        section, key = dotted.split("__")
        raw.setdefault(section, {})[key] = value
    return config_lib.from_dict(raw)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished tiny run folder (IMP with both controls), shared by read-only tests."""
    from lottery_engine import pipeline

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    pipeline.execute(tiny_config(imp__controls=["random_reinit", "random_prune"]), run_dir)
    return run_dir


def round_record(round_index: int = 0, **fields) -> RoundRecord:
    """A round record of the IMP series without training: round r of a 1,000-weight network
    pruned 20% a round, every accuracy 0.5, two layers; `fields` replace any of it (by name)."""
    left = 0.8 ** round_index
    values = {
        "round": round_index, "series": IMP, "global_sparsity": 1 - left,
        "layer_sparsity": {"dense_1": 1 - left, "output": 1 - left},
        "remaining_prunable": round(1000 * left), "total_prunable": 1000,
        "remaining_total": round(1000 * left) + 10, "total_params": 1010,
        **{f"{split}_{name}": 0.5 for split in ("val", "test")
           for name in ("accuracy", "f1", "precision", "recall", "loss")},
        "flops": 2000, "layer_flops": {"dense_1": 1800, "output": 200}, "inference_ms": 0.01,
        "train_seconds": 1.0, "epochs": 1, "start_step": 0, "steps": 10, "stopped_early": False,
        "kept_weights": "final", "train_step": "fused", "jit_compile": False,
        "early_stop_step": 10, "early_stop_val_loss": 0.5, "early_stop_val_accuracy": 0.5,
        "early_stop_test_accuracy": 0.5, "val_curve": [[10, 0.5, 0.5]],
        "history": {"loss": [0.5], "val_loss": [0.5]}}
    return RoundRecord(**(values | fields))
