"""`lottery export`: the compact model computes what the ticket computes with fewer units, the
TFLite files run in the interpreter and agree with Keras, every export is recorded in exports.json,
and a format that cannot be made fails alone."""

from __future__ import annotations

import io
import json
import shutil
import warnings
import zipfile

import keras
import numpy as np
import pytest
from keras import layers

from lottery_engine import pipeline
from lottery_engine.config import load as config_lib
from lottery_engine.data import dataset as data_lib
from lottery_engine.export import compact, downloads, export_records, tflite_export
from lottery_engine.export import exporter as export
from lottery_engine.foundations import runfolder
from lottery_engine.models import builders as models

from tests.conftest import tiny_config

TOLERANCE = 1e-5


def _zero(model: keras.Model, name: str, index) -> None:
    """Prune part of a kernel by hand, as a mask of IMP would."""
    kernel = model.get_layer(name).kernel
    values = kernel.numpy()
    values[index] = 0.0
    kernel.assign(values)


def _random_biases(model: keras.Model, seed: int = 0) -> None:
    """Nonzero biases, so a constant unit's activation(bias) is something to fold."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if getattr(layer, "use_bias", False) and layer.trainable:
            layer.bias.assign(rng.normal(0, 0.2, layer.bias.shape).astype("float32"))


def _images(shape: tuple[int, ...], count: int = 64) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (count, *shape)).astype("float32")


def _compacted(model: keras.Model, x: np.ndarray, tmp_path) -> compact.Compaction:
    """Compact, save, reload with safe_mode and check the outputs against the ticket's."""
    result = compact.compact(model)
    result.model.save(tmp_path / "compact.keras")
    loaded = keras.saving.load_model(tmp_path / "compact.keras", safe_mode=True)
    expected = model.predict(x, verbose=0)
    assert np.abs(loaded.predict(x, verbose=0) - expected).max() <= TOLERANCE
    return result


def test_lenet_drops_dead_units_and_folds_constant_ones(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.lenet((16, 16, 1), 10)
    _random_biases(model)
    _zero(model, "conv_2", np.s_[:, :, 2])       # conv_1 channel 2: no outgoing weight
    _zero(model, "conv_2", np.s_[..., 3])        # conv_2 channel 3: no incoming weight
    _zero(model, "dense_2", np.s_[7])            # dense_1 unit 7: no outgoing weight
    _zero(model, "dense_1", np.s_[:, 5])         # dense_1 unit 5: no incoming weight
    _zero(model, "output", np.s_[9])             # dense_2 unit 9: no outgoing weight
    result = _compacted(model, _images((16, 16, 1)), tmp_path)
    assert result.layers == {
        "conv_1": {"units": [6, 5], "dropped": 1, "folded": 0},
        # the constant channel reaches dense_1 through a valid pool and the Flatten: folded
        "conv_2": {"units": [16, 15], "dropped": 0, "folded": 1},
        "dense_1": {"units": [120, 118], "dropped": 1, "folded": 1},
        "dense_2": {"units": [84, 83], "dropped": 1, "folded": 0},
    }
    assert result.kept == {"output": "its output is the model's output"}
    # conv_1 3*3*1*5+5, conv_2 3*3*5*15+15, dense_1 (2*2*15)*118+118, dense_2 118*83+83, output
    assert result.model.count_params() == 50 + 690 + 7198 + 9877 + 840 < model.count_params()


def test_lenet_300_100_compacts_and_a_constant_unit_is_folded(tmp_path):
    keras.utils.set_random_seed(1)
    model = models.lenet_300_100((8, 8, 1), 10)
    _random_biases(model)
    _zero(model, "dense_1", np.s_[:, 4])         # constant: folded into dense_2's bias
    _zero(model, "dense_2", np.s_[9])            # dense_1 unit 9 is dead
    _zero(model, "dense_2", np.s_[:, 7])         # constant relu(0.5): into the output's bias
    bias = model.get_layer("dense_2").bias
    bias.assign(np.where(np.arange(100) == 7, 0.5, bias.numpy()).astype("float32"))
    _zero(model, "output", np.s_[5])             # dense_2 unit 5 is dead
    before = model.get_layer("output").bias.numpy().copy()
    result = _compacted(model, _images((8, 8, 1)), tmp_path)
    assert result.layers == {"dense_1": {"units": [300, 298], "dropped": 1, "folded": 1},
                             "dense_2": {"units": [100, 98], "dropped": 1, "folded": 1}}
    assert not np.array_equal(result.model.get_layer("output").bias.numpy(), before)
    assert result.model.count_params() == (64 * 298 + 298) + (298 * 98 + 98) + (98 * 10 + 10)


def test_vgg16_head_is_compacted_and_its_frozen_base_kept_whole(tmp_path):
    keras.utils.set_random_seed(2)
    model = models.vgg16((32, 32, 3), 10, "none")
    _random_biases(model)
    _zero(model, "fc2", np.s_[3])                # fc1 unit 3 is dead
    _zero(model, "fc1", np.s_[:, 10])            # fc1 unit 10 is constant
    _zero(model, "output", np.s_[4])             # fc2 unit 4 is dead
    result = _compacted(model, _images((32, 32, 3), 8), tmp_path)
    assert result.layers == {"fc1": {"units": [256, 254], "dropped": 1, "folded": 1},
                             "fc2": {"units": [256, 255], "dropped": 1, "folded": 0}}
    assert result.kept == {"output": "its output is the model's output"}
    base, new_base = model.get_layer("vgg16"), result.model.get_layer("vgg16")
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), new_base.get_weights()))
    assert result.model.count_params() < model.count_params()


def _branchy_model() -> keras.Model:
    """Residual Add, Concatenate, a 'same' conv, BatchNorm in inference and in training mode,
    one unit feeding two consumers (one without a bias)."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Conv2D(8, 3, padding="same", name="c2")(x)
    x = layers.Activation("relu", name="act")(x)
    x = layers.Add(name="add")([x, layers.Conv2D(8, 1, name="c3")(x)])
    h = layers.Dense(16, activation="relu", name="h")(layers.GlobalAveragePooling2D(name="gap")(x))
    a = layers.Dense(4, use_bias=False, name="d_a")(h)
    b = layers.Dense(4, name="d_b")(layers.Dropout(0.5, name="drop")(h))
    t = layers.Dense(6, activation="tanh", name="t")(layers.Concatenate(name="cat")([a, b]))
    t = layers.BatchNormalization(name="bn_train")(t, training=True)
    model = keras.Model(inputs, layers.Dense(3, name="out")(t))
    bn = model.get_layer("bn")
    bn.set_weights([w + np.random.default_rng(4).random(w.shape).astype("float32") + 0.5
                    for w in bn.get_weights()])
    return model


def test_units_go_only_where_the_graph_lets_removal_be_exact(tmp_path):
    model = _branchy_model()
    _random_biases(model)
    _zero(model, "c1", np.s_[..., 0])            # constant, but c2 pads: kept, not folded
    _zero(model, "c2", np.s_[:, :, 1])           # c1 channel 1 is dead
    _zero(model, "h", np.s_[:, 2])               # constant: folded into d_a (given a bias) and d_b
    _zero(model, "d_a", np.s_[3])
    _zero(model, "d_b", np.s_[3])                # h unit 3 is dead
    result = _compacted(model, _images((8, 8, 3), 16) / 255, tmp_path)
    assert result.layers == {"c1": {"units": [6, 5], "dropped": 1, "folded": 0},
                             "h": {"units": [16, 14], "dropped": 1, "folded": 1}}
    assert result.model.get_layer("d_a").use_bias
    assert set(result.kept) == {"c2", "c3", "d_a", "d_b", "t", "out"}
    assert "'add'" in result.kept["c2"] and "'cat'" in result.kept["d_a"]
    assert "training=True" in result.kept["t"]


def test_constants_fold_through_convs_batchnorm_pooling_and_flatten(tmp_path):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((12, 12, 2))
    x = layers.Conv2D(4, 3, activation="relu", name="c0")(inputs)
    x = layers.Conv2D(5, 3, activation="relu", name="c")(x)
    x = layers.BatchNormalization(name="bn_c")(x)
    x = layers.MaxPooling2D(name="pool")(x)
    x = layers.Flatten(name="flat")(x)
    x = layers.BatchNormalization(name="bn_f")(x)  # one set of statistics per flat feature
    h = layers.Dense(6, activation="elu", name="h")(layers.Dropout(0.2, name="drop")(x))
    model = keras.Model(inputs, layers.Dense(3, name="out")(h))
    rng = np.random.default_rng(6)
    for name in ("bn_c", "bn_f"):
        bn = model.get_layer(name)
        bn.set_weights([rng.random(w.shape).astype("float32") + 0.5 for w in bn.get_weights()])
    _random_biases(model)
    for name in ("c0", "c"):  # relu(bias) > 0: a constant worth folding
        model.get_layer(name).bias.assign(np.abs(model.get_layer(name).bias.numpy()) + 0.1)
    _zero(model, "c0", np.s_[..., 2])            # constant, folded into c (valid padding)
    _zero(model, "c", np.s_[..., 1])             # constant, folded into h through BN, pool, flat
    _zero(model, "h", np.s_[3::5])               # every flat feature of c's channel 3: dead
    result = _compacted(model, _images((12, 12, 2), 16) / 255, tmp_path)
    assert result.layers == {"c0": {"units": [4, 3], "dropped": 0, "folded": 1},
                             "c": {"units": [5, 3], "dropped": 1, "folded": 1},
                             "h": {"units": [6, 6], "dropped": 0, "folded": 0}}
    assert result.model.get_layer("bn_f").moving_mean.shape == (4 * 4 * 3,)


def test_summary_line_compares_with_the_dense_ticket():
    record = {"format": "compact", "status": "ok", "bytes": 412_000, "test_accuracy": 0.8762,
              "test_accuracy_change": 0.0,
              "latency_ms_per_sample": {"batch_1": 0.21, "batch_256": 0.02},
              "reference": {"bytes": 1_060_000,
                            "latency_ms_per_sample": {"batch_1": 0.55, "batch_256": 0.05}}}
    assert export_records.summary(record) == (
        "compact: 412 KB (dense 1.06 MB, 0.39x), 0.21 ms/sample at batch 1 (dense 0.55, 2.6x "
        "faster), 0.02 at batch 256 (dense 0.05, 2.5x faster), test accuracy 87.62% (=)")
    failed = {"format": "tflite", "status": "failed", "error": "no converter"}
    assert export_records.summary(failed) == "tflite: failed: no converter"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny LeNet run pruned to 4% of its weights in two rounds, trained enough (80% test
    accuracy) that its class probabilities are not a near tie int8 could flip."""
    folder = tmp_path_factory.mktemp("export") / "run"
    pipeline.execute(tiny_config(data__limit_total=600, train__epochs=4, train__batch_size=16,
                                 train__learning_rate=0.005, imp__prune_rate=0.8,
                                 imp__num_rounds=2, report__html=False, report__markdown=False),
                     folder)
    return folder


@pytest.fixture(scope="module")
def exported(run_dir):
    return export.export(run_dir, round_index=2, repeats=2)


def _ticket_outputs(run_dir) -> tuple[np.ndarray, np.ndarray]:
    """The test split and the dense ticket's outputs on it, from the exported .keras file."""
    cfg = config_lib.load_run(run_dir)
    dataset = data_lib.load(cfg.data, cfg.run.seed, data_lib.load_split(run_dir / runfolder.SPLIT))
    ticket = keras.saving.load_model(export_records.default_path(run_dir, "keras"), safe_mode=True)
    x = dataset.x_test.astype("float32")
    return x, ticket.predict(x, verbose=0)


def test_every_format_is_written_and_recorded(run_dir, exported):
    assert [r["format"] for r in exported] == list(export.FORMATS)
    assert all(r["status"] == "ok" and r["round"] == 2 for r in exported), exported
    stored = json.loads((run_dir / export_records.EXPORTS_JSON).read_text())
    assert stored == {r["format"]: r for r in exported}
    for record in exported:
        path = export_records.default_path(run_dir, record["format"])
        assert record["file"] == str(path.relative_to(run_dir))
        assert record["bytes"] == path.stat().st_size > 0
        assert record["summary"].startswith(f"{record['format']}: ")
        assert set(record["latency_ms_per_sample"]) == {"batch_1", "batch_256"}
        assert record["reference"]["test_accuracy"] == exported[0]["test_accuracy"]
    keras_record = exported[0]
    # Both saved compiled from the same weights: the same size up to a byte or two of zip
    # metadata (CI once measured 282806 against 282805); that the export is compiled is
    # checked by the next test.
    assert keras_record["bytes"] == pytest.approx(keras_record["reference"]["bytes"], abs=64)
    assert keras_record["max_output_difference"] == 0.0
    assert keras_record["parameters"] == keras_record["reference"]["parameters"]


def test_the_ticket_and_exported_keras_files_evaluate_without_compiling(run_dir, exported):
    """Saved compiled with the run's loss and metric and a fresh optimizer of its kind, as a
    user's own `model.save` file is: `load_model(...).evaluate(x, y)` just works, and loading it
    says nothing (an unbuilt optimizer made Keras warn that the saved one had too few
    variables)."""
    cfg = config_lib.load_run(run_dir)
    dataset = data_lib.load(cfg.data, cfg.run.seed, data_lib.load_split(run_dir / runfolder.SPLIT))
    ticket = json.loads((run_dir / runfolder.TICKET_JSON).read_text())
    expected = {runfolder.TICKET_MODEL: ticket["test_accuracy"],
                exported[0]["file"]: exported[0]["test_accuracy"],
                exported[1]["file"]: exported[1]["test_accuracy"]}
    for name, accuracy in expected.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model = keras.saving.load_model(run_dir / name)
        assert type(model.optimizer).__name__ == "Adam"  # the run's kind, fresh
        assert int(model.optimizer.iterations.numpy()) == 0
        loss, measured = model.evaluate(dataset.x_test, dataset.y_test, verbose=0)
        assert loss > 0 and measured == pytest.approx(accuracy, abs=1e-6), name


def test_the_ticket_zip_has_a_readme_that_says_what_is_inside(run_dir, exported):
    with zipfile.ZipFile(io.BytesIO(downloads.ticket_zip(run_dir))) as archive:
        names = archive.namelist()
        readme = archive.read(downloads.README).decode()
    ticket = json.loads((run_dir / runfolder.TICKET_JSON).read_text())
    assert readme.startswith("# Winning ticket of tiny\n")
    assert f"Round {ticket['round']} of the run: " in readme
    assert all(f"- `{name}`: " in readme for name in names if name != downloads.README)
    assert "model.evaluate(x, y)" in readme and "fresh adam optimizer" in readme


def test_compact_export_is_smaller_and_equal_on_the_test_split(exported):
    record = exported[1]
    assert record["max_output_difference"] <= TOLERANCE
    assert record["test_accuracy_change"] == 0.0
    assert record["compaction"]["units_removed"] > 0
    assert 0 < record["flops"] < exported[0]["flops"]  # the model each file holds, computed dense
    assert exported[2]["flops"] == exported[3]["flops"] == record["flops"]  # made from compact
    assert record["parameters"]["stored"] < record["reference"]["parameters"]["stored"]
    assert record["parameters"]["nonzero"] <= record["reference"]["parameters"]["nonzero"]


def test_tflite_files_run_in_the_interpreter_and_agree_with_keras(run_dir, exported):
    x, expected = _ticket_outputs(run_dir)
    for fmt in ("tflite", "tflite-int8"):
        content = export_records.default_path(run_dir, fmt).read_bytes()
        runner = tflite_export.Runner(content, 1)
        outputs = np.concatenate([runner(row[None]) for row in x])
        agree = np.mean(outputs.argmax(1) == expected.argmax(1))
        if fmt == "tflite":
            assert np.abs(outputs - expected).max() <= 1e-4
            assert agree == 1.0
            assert exported[2]["sparse_tensors"] > 0 and exported[2]["sparse_encoding"] == "used"
        else:  # int8 rounds: argmax may flip where two classes are within a quantization step
            assert agree >= 0.9, agree
        assert exported[2 if fmt == "tflite" else 3]["runtime"] == tflite_export.RUNTIME


def test_a_failing_format_fails_alone(run_dir, exported, tmp_path, monkeypatch):
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    real = tflite_export.convert

    def int8_broken(model, calibration, sparse):
        if calibration is not None:
            raise RuntimeError("converter exploded\ntraceback lines")
        return real(model, calibration, sparse)

    def compact_broken(model):
        raise ValueError("no units today")

    monkeypatch.setattr(tflite_export, "convert", int8_broken)
    monkeypatch.setattr(compact, "compact", compact_broken)
    records = export.export(folder, ["tflite-int8", "compact", "tflite"], round_index=2,
                            repeats=1)
    assert [r["status"] for r in records] == ["failed", "failed", "ok"]
    assert records[0]["error"] == "converter exploded"
    assert records[0]["summary"] == "tflite-int8: failed: converter exploded"
    assert records[1]["summary"] == "compact: failed: no units today"
    # TFLite is made from the dense ticket when compaction fails, and says so
    assert records[2]["source"] == "keras (compaction failed: no units today)"
    stored = export_records.read(folder)
    assert [stored[f]["status"] for f in export.FORMATS] == ["ok", "failed", "ok", "failed"]
    assert stored["keras"] == exported[0]  # the record of a format not exported again is kept


def test_out_file_and_refusals(run_dir, tmp_path):
    folder, out = tmp_path / "run", tmp_path / "elsewhere" / "ticket.keras"
    shutil.copytree(run_dir, folder)
    record, = export.export(folder, ["keras"], round_index=1, out=out, repeats=1)
    assert record["file"] == str(out.resolve()) and out.is_file() and record["round"] == 1
    with pytest.raises(export.ExportError, match="one --format"):
        export.export(run_dir, ["keras", "compact"], out=out)
    with pytest.raises(export.ExportError, match="the formats are keras, compact"):
        export.export(run_dir, ["onnx"])
    with pytest.raises(export.ExportError, match="finished rounds: 0, 1, 2"):
        export.export(run_dir, ["keras"], round_index=7)


# --- where --out may write, and when there is no ticket yet (issue 28) ---------------------------

def _copy(run_dir, tmp_path):
    """A copy of the run to export from: a refusal that failed to refuse damages only it."""
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    return folder


def _lottery_export(capsys, *args: str) -> tuple[int, str]:
    """`lottery export ARGS` in this process (the real parser and error handling); exit code and
    stderr."""
    from jobs import cli

    code = cli.main(["export", *args])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("fmt, out, extra", [
    ("tflite", "rounds.jsonl", []),  # once: records replaced by a TFLite file, the run unreportable
    ("keras", "winning_ticket_model.keras", ["--round", "0"]),  # once: the dense model as ticket
    ("tflite", "export/../rounds.jsonl", []),  # `..` out of export/
    ("keras", "link/new.keras", []),  # a symlink into the run folder
], ids=["records", "ticket", "dotdot", "symlink"])
def test_an_out_inside_the_run_folder_is_refused(run_dir, tmp_path, capsys, fmt, out, extra):
    folder = _copy(run_dir, tmp_path)
    (tmp_path / "link").symlink_to(folder)
    before = {path: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    target = (tmp_path / out) if out.startswith("link") else folder / out
    code, error = _lottery_export(capsys, str(folder), "--format", fmt, "--out", str(target),
                                  *extra)
    assert code == 2 and "\n" not in error, error
    assert error.startswith(f"error: --out {target}") and "is inside the run folder" in error
    assert f"name a file in {folder.resolve() / 'export'} or outside the run folder" in error
    assert {path: path.read_bytes() for path in folder.iterdir() if path.is_file()} == before


def test_an_existing_out_file_is_replaced_only_with_force(run_dir, tmp_path, capsys):
    folder = _copy(run_dir, tmp_path)
    out = tmp_path / "elsewhere" / "ticket.keras"
    out.parent.mkdir()
    out.write_bytes(b"precious")
    args = (str(folder), "--format", "keras", "--round", "1", "--out", str(out))
    code, error = _lottery_export(capsys, *args)
    assert code == 2 and out.read_bytes() == b"precious"
    assert error == (f"error: --out {out}: already exists; add --force to replace it, or name "
                     f"another file.")
    code, error = _lottery_export(capsys, *args[:-1], str(out.parent))
    assert code == 2 and error == (f"error: --out {out.parent}: is a folder; name a file in it, "
                                   f"e.g. {out.parent / 'keras.keras'}.")
    assert _lottery_export(capsys, *args, "--force")[0] == 0
    assert export_records.read(folder)["keras"]["file"] == str(out.resolve())
    assert keras.saving.load_model(out, safe_mode=True).count_params() > 0


def test_a_run_without_a_finished_pruned_round_says_so(run_dir, tmp_path):
    folder = _copy(run_dir, tmp_path)
    runfolder.keep_rounds_below(folder / runfolder.ROUNDS, 1)  # only the dense round 0 finished
    with pytest.raises(export.ExportError) as info:
        export.export(folder, ["keras"])
    assert str(info.value) == (
        f"{folder}: has not finished a pruned round yet (1 of 3 rounds done, round 0 being the "
        f"dense network); export once round 1 has finished, or export the dense network with "
        f"--round 0.")
    config = folder / runfolder.CONFIG
    config.write_text(config.read_text().replace("num_rounds: 2", "num_rounds: 0"))
    with pytest.raises(export.ExportError, match=r"it ran with imp\.num_rounds 0 \(the dense "
                                                 r"network only\); run it again with "
                                                 r"imp\.num_rounds >= 1, or export the dense"):
        export.export(folder, ["keras"])


def test_the_compact_model_is_checked_on_logits_not_probabilities(run_dir, tmp_path,
                                                                   monkeypatch):
    """Every logit 0.01 higher: softmax gives the same probabilities, so a check on them passed
    a compact model that does not compute what the ticket computes."""
    real, shifted = compact.compact, []

    def shifting(model):
        result = real(model)
        bias = result.model.get_layer("output").bias
        bias.assign(bias.numpy() + 0.01)
        shifted.append(result.model)
        return result

    monkeypatch.setattr(compact, "compact", shifting)
    exporter = export.Exporter(_copy(run_dir, tmp_path), 2, repeats=1)
    record = exporter.run("compact", tmp_path / "compact.keras")
    probabilities = shifted[0].predict(exporter.x_test, verbose=0)
    assert np.abs(probabilities - exporter.dense.outputs).max() <= TOLERANCE  # hidden there
    assert record["status"] == "failed"
    assert record["error"].startswith("the compact model's logits differ from the ticket's by "
                                      "0.01 (more than 1e-05)")


def test_logits_model_is_the_output_layers_pre_activation():
    keras.utils.set_random_seed(8)
    lenet = models.lenet((16, 16, 1), 10)  # Dense(activation="softmax")
    inputs = keras.Input((5,))
    split = keras.Model(inputs, layers.Softmax()(layers.Dense(3)(inputs)))  # a Softmax layer
    outer = keras.Input((5,))
    nested = keras.Model(outer, split(outer))
    for model, x in ((lenet, _images((16, 16, 1), 8)), (split, _images((5,), 8) / 255),
                     (nested, _images((5,), 8) / 255)):
        logits = export.logits_model(model).predict(x, verbose=0)
        softmax = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
        assert np.abs(softmax - model.predict(x, verbose=0)).max() <= 1e-6
    linear = keras.Model(inputs, layers.Dense(3)(inputs))
    assert export.logits_model(linear) is linear
