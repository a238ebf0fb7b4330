"""An experiment arm's `instability:` (issue 31): refused in one line naming the key when it is
wrong."""

from __future__ import annotations

import pytest

from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError
from lottery_engine.science import experiment

from .conftest import tiny_config


def _experiment(tmp_path, setting: str) -> str:
    config = tmp_path / "tiny.yaml"
    config.write_text(config_lib.to_yaml(tiny_config(imp__controls=[])))
    path = tmp_path / "experiment.yaml"
    path.write_text(f"name: Stability\nruns:\n  - {{label: Tiny, config: {config}, "
                    f"seeds: [0, 1], instability: {setting}}}\n")
    return str(path)


@pytest.mark.parametrize("setting, says", [
    ("[0, 2]", "runs[0].instability: expected a mapping"),
    ("{rounds: [0, 2], rewinds: [0, 3]}", "runs[0].instability.rewinds: unknown key. Did you "
                                          "mean 'rewind'?"),
    ("{rewind: [0, 3]}", "runs[0].instability.rounds: None is not a non-empty list"),
    ("{rounds: [0, 2], rewind: [0, '3']}", "runs[0].instability.rewind: [0, '3'] is not"),
    ("{rounds: [0, 0], rewind: [3]}", "runs[0].instability.rounds: [0, 0] lists a value twice"),
    ("{rounds: [0], rewind: [-1]}", "runs[0].instability.rewind: [-1] is not"),
    ("{rounds: [0], rewind: [0], copies: 1}", "runs[0].instability.copies: 1 is not a whole "
                                              "number >= 2"),
    ("{rounds: [0], rewind: [0], points: true}", "runs[0].instability.points: True is not"),
])
def test_a_bad_setting_is_refused_in_one_line_naming_its_key(tmp_path, setting, says):
    with pytest.raises(ConfigError) as info:
        experiment.load(_experiment(tmp_path, setting))
    assert says in str(info.value) and "\n" not in str(info.value)


def test_a_round_the_arm_never_trains_is_refused_before_training(tmp_path):
    exp = experiment.load(_experiment(tmp_path, "{rounds: [0, 3], rewind: [0]}"))
    with pytest.raises(ConfigError, match=r"arm 'Tiny': instability\.rounds: round 3 is past the "
                                          r"arm's imp\.num_rounds = 2; choose rounds from 0 to 2"):
        experiment.plan(exp, [])
