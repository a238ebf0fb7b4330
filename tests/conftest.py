"""Shared fixtures: tiny configs and real tiny runs, made once per test session."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from lottery_engine.config import load as config_lib  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


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
