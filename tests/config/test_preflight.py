"""Reading a config reads the config and nothing else; the files it names are the preflight's,
checked by the entry points, every refusal at once (issue 29, item 1)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from jobs import ray_worker
from lottery_engine import preflight
from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError

from tests.conftest import ROOT


@pytest.fixture
def run_without_its_data(tmp_path):
    """A run folder whose config was accepted with its .npz, which was deleted since."""
    data = tmp_path / "d.npz"
    np.savez(data, x_train=np.zeros((60, 4), np.float32), y_train=np.arange(60) % 3)
    run = tmp_path / "run"
    run.mkdir()
    cfg = preflight.from_dict({"data": {"source": "arrays", "path": str(data)}})
    (run / "config.yaml").write_text(config_lib.to_yaml(cfg))
    data.unlink()
    return run, data


def test_reading_a_runs_config_never_looks_at_its_data(run_without_its_data):
    run, data = run_without_its_data
    assert config_lib.load_run(run).data.path == str(data)
    assert ray_worker._device(run) == "cpu"  # the Ray dispatcher reads one key
    missing = r"^data\.path: .*d\.npz not found"
    with pytest.raises(ConfigError, match=missing):
        preflight.load_run(run)  # what the worker reads before its first batch
    with pytest.raises(ConfigError, match=missing):
        preflight.check(config_lib.load_run(run))


def test_bad_values_and_missing_files_are_refused_together():
    raw = {"train": {"epochs": 0}, "data": {"source": "arrays", "path": "/no/such/d.npz"},
           "report": {"compare_with_hybrid_pipeline": True,
                      "hybrid_pipeline_metrics_path": "/no/metrics.json"}}
    with pytest.raises(ConfigError) as info:
        preflight.from_dict(raw)
    assert [e.key for e in info.value.errors] == ["train.epochs", "data.path",
                                                  "report.hybrid_pipeline_metrics_path"]
    with pytest.raises(ConfigError) as info:
        config_lib.from_dict(raw)  # reading alone: the values only
    assert [e.key for e in info.value.errors] == ["train.epochs"]


def test_reading_a_config_imports_no_data_or_model_code(run_without_its_data):
    """config/ sits right on foundations/: reading a run's config loads neither data/, models/
    nor the preflight (nor numpy, which their checks need)."""
    run, _ = run_without_its_data
    code = ("import sys\n"
            "from lottery_engine.config import load\n"
            f"load.load_run({str(run)!r})\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('lottery_engine.data', "
            "'lottery_engine.models', 'lottery_engine.preflight', 'numpy')))\n"
            "assert not loaded, loaded\n"
            "print('clean')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0 and "clean" in result.stdout, result.stderr[-2000:]
