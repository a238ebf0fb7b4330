"""Bad input, as an attacker or a careless user gives it: one clear line naming the key or file,
exit code 2, no traceback, nothing written or queued."""

import os
import subprocess
import sys
import time

import pytest

from lottery_engine import preflight
from lottery_engine.config import load as config_lib
from lottery_engine.config import labels, validation
from lottery_engine.config.load import ConfigError
from lottery_engine.foundations import runfolder

from tests.conftest import ROOT, round_record

QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
BOMB = ("a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n"
                  for i in range(8))
        + "run: {name: *i}\n")


def lottery(*args, cwd=ROOT, env=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=600)


def assert_one_line_error(result, message: str, code: int = 2) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]


def jobs_in(home):
    return [p.name for p in home.iterdir() if not p.name.startswith(".")] if home.exists() else []


def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- the validator -----------------------------------------------------------------------------

REFUSED = [
    ({"train": {"epochs": 1_000_000_000}},
     "train.epochs: invalid value 1000000000; expected an integer from 1 to 10,000"),
    ({"imp": {"num_rounds": 1_000_000_000}},
     "imp.num_rounds: invalid value 1000000000; expected an integer from 0 to 1,000"),
    ({"run": {"seed": 10**20}}, "run.seed: invalid value 100000000000000000000; expected an "
                                "integer from 0 to 4,294,967,295"),
    ({"imp": {"rewind": "init\n"}}, "imp.rewind: invalid value 'init\\n'; allowed: init"),
    ({"run": {"device": "cpu\n"}}, "run.device: invalid value 'cpu\\n'; allowed: cpu, gpu"),
    ({"run": {"name": "x" * 5000}}, "run.name: invalid value 'xxxxxx"),
    ({"run": {"name": "two\nlines"}}, "run.name: invalid value 'two\\nlines'; no control"),
    ({"imp": {"layer_rates": {"dense_9": 0.1}}},
     "imp.layer_rates.dense_9: 'dense_9' matches no prunable layer of lenet. Did you mean"),
    ({"imp": {"prunable_layers": ["fc1"]}},
     "imp.prunable_layers: 'fc1' matches no prunable layer of lenet. Prunable: conv_1, conv_2, "
     "dense_1, dense_2"),
    ({"imp": {"prunable_layers": ["dense_1"], "layer_rates": {"conv_1": 0.1}}},
     "imp.layer_rates.conv_1: 'conv_1' matches no prunable layer of lenet"),
    ({"data": {"limit_total": 25}},
     "data.train_split / data.val_split: cannot split 1,797 images in 10 classes, limit_total 25"),
    ({"data": {"limit_total": 200, "train_split": 0.02}},
     "data.train_split / data.val_split: cannot split"),
    ({"data": {"source": "folder", "data_dir": "/no/such/folder"}},
     "data.data_dir: folder /no/such/folder not found"),
    ({"train": {"epochs": 2, "epochs_per_round": 3}},
     "train.epochs_per_round and train.epochs: both given"),
    ({"imp": {"prune_rate": 0.2, "prune_rate_per_round": 0.3}},
     "imp.prune_rate_per_round and imp.prune_rate: both given"),
    ({"report": {"compare_with_hybrid_pipeline": True}},
     "report.hybrid_pipeline_metrics_path: invalid value None; compare_with_hybrid_pipeline is"),
    ({"report": {"compare_with_hybrid_pipeline": True,
                 "hybrid_pipeline_metrics_path": "/no/metrics.json"}},
     "report.hybrid_pipeline_metrics_path: /no/metrics.json not found. Make it with `lottery "
     "hybrid"),
    ({"flops": {"vgg16_base_flops": -5}}, "flops.vgg16_base_flops: invalid value -5"),
    ({"train": {"early_stopping": "yes"}}, "train.early_stopping: invalid value 'yes'"),
    ({"imp": {"controls": ["random_prune", "random_prune"]}}, "each control at most once"),
    ({"train": {"arch": "vgg16", "weights": "/none/w.h5"}, "data": {"channels": 3}},
     "train.weights: VGG16 ImageNet weights not found at /none/w.h5"),
    ({"run": {"device": "gpu:99999"}}, "run.device: invalid value 'gpu:99999'"),
    ({}, "config: empty"),
    (None, "config: empty"),
]


@pytest.mark.parametrize("raw,message", REFUSED, ids=[m[:45] for _, m in REFUSED])
def test_the_validator_refuses_with_the_key_named(raw, message):
    with pytest.raises(ConfigError) as info:
        preflight.from_dict(raw)
    assert message in str(info.value)
    assert "\n" not in str(info.value).replace("\\n", "")


def test_train_split_that_keeps_every_class_everywhere_is_accepted():
    assert config_lib.from_dict({"data": {"train_split": 0.01}}).data.train_split == 0.01


def test_an_alias_bomb_is_refused_in_well_under_a_second():
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="expands to more than 10,000 values"):
        config_lib.loads(BOMB)
    assert time.perf_counter() - start < 0.5


def test_oversized_and_deeply_nested_yaml_are_refused():
    with pytest.raises(ConfigError, match="at most 1,000,000 bytes"):
        config_lib.loads("run: {name: x}\n" + "#" * 1_000_001)
    with pytest.raises(ConfigError, match="nested too deeply|malformed"):
        config_lib.loads("run: " + "[" * 5000 + "]" * 5000)


def test_error_messages_stay_short_whatever_the_value():
    with pytest.raises(ConfigError) as info:
        config_lib.from_dict({"run": {"name": list(range(100_000))}})
    assert len(str(info.value)) < 200


def test_overrides_replace_the_plan_spelling_in_place():
    cfg = config_lib.load(ROOT / "configs" / "plan_imp_lenet.yaml",
                          ["train.epochs=1", "imp.prune_rate=0.3"])
    assert cfg.train.epochs == 1 and cfg.imp.prune_rate == 0.3


# --- the command line: one line, exit 2, nothing written ---------------------------------------

@pytest.mark.parametrize("content,extra,message", [
    ("42\n", [], "expected a mapping with sections run, data, ..., got int"),
    ("", [], "config: empty"),
    (None, ["--set", "run.name=[unclosed"], "--set run.name: malformed YAML"),
    (None, ["--set", "run.name=!!python/object/apply:os.system [echo hacked]"],
     "--set run.name: malformed YAML: could not determine a constructor"),
    (None, ["--set", "run.name=" + "n" * 5000], "run.name: invalid value"),
    (None, ["--set", "imp.num_rounds=1000000000"], "imp.num_rounds: invalid value 1000000000"),
    (BOMB, [], "expands to more than 10,000 values"),
], ids=["int", "empty", "unclosed", "python-tag", "long-name", "rounds", "bomb"])
def test_run_and_submit_refuse_in_one_line(tmp_path, content, extra, message):
    config = QUICKSTART
    if content is not None:
        config = tmp_path / "config.yaml"
        config.write_text(content)
    home = tmp_path / "home"
    for command in (["run", "--out", str(tmp_path / "out")], ["submit", "--home", str(home)]):
        result = lottery(command[0], "--config", str(config), *command[1:], *extra,
                         cwd=tmp_path)
        assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()
    assert jobs_in(home) == [] and not list(tmp_path.glob("hacked*"))


def test_submit_refuses_bad_data_folders_before_queueing(tmp_path):
    home = tmp_path / "home"
    empty, single, file = tmp_path / "empty", tmp_path / "single" / "cat", tmp_path / "file"
    empty.mkdir()
    single.mkdir(parents=True)
    (single / "1.png").write_bytes(b"not read at submit")
    file.write_text("x")
    for folder, message in ((tmp_path / "missing", "not found"),
                            (empty, "holds no .jpg or .png images"),
                            (single.parent, "has a single class (cat)"),
                            (file, "is not a folder")):
        result = lottery("submit", "--config", QUICKSTART, "--home", str(home),
                         "--set", f"data.data_dir={folder}", "--set", "data.source=folder")
        assert_one_line_error(result, f"data.data_dir: ")
        assert message in result.stderr
    assert jobs_in(home) == []


def test_a_gpu_this_machine_lacks_is_refused_at_start_naming_the_gpus(tmp_path):
    out = tmp_path / "out"
    result = lottery("run", "--config", QUICKSTART, "--out", str(out), "--set",
                     "run.device=gpu:99")
    assert_one_line_error(result, "run.device: gpu:99 is not on this machine; GPUs found: ")
    assert not out.exists()


def test_unforeseen_errors_print_one_line_and_point_at_the_details(tmp_path):
    not_a_run = tmp_path / "plain"
    not_a_run.mkdir()
    # a record whose field has a type no writer gives it: what breaks is not foreseen
    runfolder.append_round(not_a_run, round_record(1, layer_sparsity=5))
    cache = tmp_path / "cache"
    result = lottery("report", str(not_a_run), env={"LOTTERY_CACHE": str(cache)})
    assert_one_line_error(result, "(details in ", code=1)
    assert "Traceback" in (cache / "last-error.txt").read_text()


# --- names are labels, never paths -------------------------------------------------------------

def test_run_names_never_become_paths(tmp_path):
    work = tmp_path / "work" / "inner"
    work.mkdir(parents=True)
    before = listing(tmp_path)
    for name in ("../../escaped", "/tmp/x/evil", "<img src=x onerror=alert(1)>"):
        folder = runfolder.new_run_dir(work / "runs", name)
        assert folder.parent == work / "runs" and "/" not in folder.name
        assert folder.name[0] not in ".-"
    result = lottery("run", "--config", QUICKSTART, "--set", "run.name=../../escaped",
                     "--set", "data.limit_total=200", "--set", "data.image_size=[16, 16]",
                     "--set", "train.epochs=1", "--set", "imp.num_rounds=1", cwd=work,
                     env={"LOTTERY_HOME": ""})
    assert result.returncode == 0, result.stderr
    added = sorted(set(listing(tmp_path)) - set(before))
    assert added[0] == "work/inner/runs", added[:5]
    assert all(path.startswith("work/inner/runs/escaped-") for path in added[1:]), added[:5]
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.glob("escaped*"))


def test_report_escapes_the_run_name(tmp_path, tiny_run):
    import shutil

    from lottery_engine.report import page as report

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    text = (run / runfolder.CONFIG).read_text().replace("name: tiny",
                                                        "name: <img src=x onerror=alert(1)>")
    (run / runfolder.CONFIG).write_text(text)
    report.write(run)
    page = (run / runfolder.REPORT_HTML).read_text()
    assert "<img src=x" not in page
    assert "<title>Lottery Lab report: &lt;img src=x onerror=alert(1)&gt;</title>" in page
    assert "<h1>&lt;img src=x onerror=alert(1)&gt;</h1>" in page


def test_bounds_in_the_validator_are_the_documented_ones():
    documented = (ROOT / "docs" / "configs.md").read_text()  # the validator's table of bounds
    for bound in (validation.MAX_EPOCHS, validation.MAX_ROUNDS, validation.MAX_BATCH,
                  labels.MAX_NAME, validation.MAX_SEED):
        assert f"{bound:,}" in documented, bound


# --- the user's model file: refused in one line naming the file, layer or weight ---------------

def model_config(model_file, tmp_path):
    """A config for `model_file` on digits, as the CLI and the Launch page check it."""
    from tests import user_models

    data = user_models.save_digits_npz(tmp_path / "digits.npz", limit=200)
    return {"data": {"source": "arrays", "path": str(data)},
            "train": {"arch": "file", "model_file": str(model_file), "epochs": 1}}


def refusal(raw) -> str:
    with pytest.raises(ConfigError) as info:
        preflight.from_dict(raw)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_nan_weights_in_a_model_file_are_refused_naming_the_weight(tmp_path, capsys,
                                                                   monkeypatch):
    import io
    import json

    import numpy as np

    from jobs import cli
    from lottery_engine import model_summary
    from tests import user_models

    model = user_models.softmax_then()
    kernel, bias = model.get_layer("probs").get_weights()
    kernel[3, 1] = np.nan
    model.get_layer("probs").set_weights([kernel, bias])
    model.save(tmp_path / "nan.keras")
    (tmp_path / "cfg.yaml").write_text(config_lib.to_yaml(config_lib.from_dict(
        model_config(tmp_path / "nan.keras", tmp_path))))
    expected = ("train.model_file: weight 'probs/kernel' of nan.keras holds 1 NaN or infinite "
                "value of 640; save the model again from finite weights (a training run that "
                "diverged leaves NaN), or set train.init: fresh to draw new ones.")
    home = tmp_path / "home"
    assert cli.main(["submit", "--config", str(tmp_path / "cfg.yaml"), "--home", str(home)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {expected}"
    assert jobs_in(home) == []
    monkeypatch.setattr("sys.stdin", io.StringIO((tmp_path / "cfg.yaml").read_text()))
    model_summary.main()  # what the Launch page asks before queueing
    assert json.loads(capsys.readouterr().out) == {"ok": False, "error": expected}


def keras_file_with_config(path, config: bytes, claimed_size: int | None = None):
    """A .keras file whose config.json is `config`, compressed as model.save writes it; its
    directory entry claims `claimed_size` bytes where given (a lying header)."""
    import struct
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", config)
    if claimed_size is not None:
        data = bytearray(path.read_bytes())
        entry = data.rindex(b"PK\x01\x02")  # the central directory's entry
        data[entry + 24:entry + 28] = struct.pack("<I", claimed_size)
        path.write_bytes(bytes(data))
    return path


def test_an_oversized_or_too_deeply_nested_model_config_is_refused_naming_the_file(tmp_path):
    import tracemalloc
    import zipfile

    from lottery_engine.models import keras_file
    from tests import user_models

    user_models.softmax_then().save(tmp_path / "net.keras")
    real = zipfile.ZipFile(tmp_path / "net.keras").read("config.json")
    padded = model_config(keras_file_with_config(tmp_path / "padded.keras",
                                                 real + b" " * 60_000_000), tmp_path)
    lying = model_config(keras_file_with_config(tmp_path / "lying.keras",
                                                real + b" " * 60_000_000, 1000), tmp_path)
    assert (tmp_path / "padded.keras").stat().st_size < 100_000
    tracemalloc.start()
    messages = [refusal(padded), refusal(lying)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * keras_file.MAX_CONFIG_BYTES
    assert messages[0].startswith(f"train.model_file: config.json of padded.keras holds "
                                  f"{len(real) + 60_000_000:,} bytes, more than a model's config "
                                  f"needs ({keras_file.MAX_CONFIG_BYTES:,});"), messages[0]
    assert messages[1].startswith("train.model_file: ") and "lying.keras" in messages[1]
    deep = keras_file_with_config(tmp_path / "deep.keras", b"[" * 200_000 + b"]" * 200_000)
    assert (f"train.model_file: config.json of deep.keras is nested more than "
            f"{keras_file.MAX_CONFIG_DEPTH} levels deep") in refusal(model_config(deep, tmp_path))


FIX = ("use built-in Keras layers and activations, or register it with "
       "keras.saving.register_keras_serializable and use train.arch: factory with "
       "train.factory: package.module:function.")
CODE_OUTSIDE_KERAS = {  # a builder of tests.user_models' names, and the refusal
    "custom activation": (
        lambda m: m.keras.Sequential([m.keras.Input((8, 8, 1)), m.layers.Flatten(),
                                      m.layers.Dense(10, activation=m.wobble, name="out")]),
        f"layer 'out' of net.keras uses the function wobble, code from outside Keras that "
        f"loading needs; {FIX}"),
    "lambda in TimeDistributed": (
        lambda m: m.wrapped_model(m.layers.Lambda(lambda t: t * 2, name="double")),
        "layer 'steps/double' of net.keras is a Lambda layer (Python code), which safe loading "
        "refuses; rewrite it as a custom layer: register it with "),
    "custom layer in TimeDistributed": (
        lambda m: m.wrapped_model(m.Gain(name="gain")),
        f"layer 'steps/gain' of net.keras is a custom layer (lottery_tests>Gain from "
        f"tests.user_models), code from outside Keras that loading needs; {FIX}"),
    "custom activation in Bidirectional": (
        lambda m: m.wrapped_model(m.layers.LSTM(4, activation=m.registered_wobble,
                                                name="lstm"), m.layers.Bidirectional),
        f"layer 'steps/forward_lstm' of net.keras uses the function "
        f"lottery_tests>registered_wobble, code from outside Keras that loading needs; {FIX}"),
}


@pytest.mark.parametrize("build,message", CODE_OUTSIDE_KERAS.values(), ids=CODE_OUTSIDE_KERAS)
def test_code_from_outside_keras_is_refused_naming_the_layer_inside_wrappers_too(tmp_path, build,
                                                                                 message):
    from tests import user_models

    build(user_models).save(tmp_path / "net.keras")
    refused = refusal(model_config(tmp_path / "net.keras", tmp_path))
    assert refused.startswith(f"train.model_file: {message}"), refused
