"""The user's own data: `data.source: arrays` (.npz) and `data.source: csv`, real files."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jobs.queue import _data_label
from lottery_engine import preflight
from lottery_engine.config import load as config_lib
from lottery_engine.config.load import ConfigError
from lottery_engine.data import dataset as data_lib
from lottery_engine.data import user_data

CLASSES, PER_CLASS = 3, 40


def labels(per_class: int = PER_CLASS) -> np.ndarray:
    return np.repeat(np.arange(CLASSES), per_class)


def features(n: int, shape: tuple[int, ...] = (7,), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape))


def npz(path: Path, compressed: bool = False, **arrays: np.ndarray) -> Path:
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def arrays_config(path: Path, **data: object) -> config_lib.Config:
    """The config with its file checked, as the Launch page, submit and run check it."""
    return preflight.from_dict({"run": {"seed": 3},
                                "data": {"source": "arrays", "path": str(path), **data}})


def csv_config(path: Path, label: str = "kind") -> config_lib.Config:
    return preflight.from_dict({"data": {"source": "csv", "path": str(path), "label": label}})


def unchecked(source: str, path: Path, **data: object) -> config_lib.Config:
    """A config as a run reads it back, its file not checked: the run's own load must refuse."""
    return config_lib.from_dict({"data": {"source": source, "path": str(path), **data}})


def refusal(make_config, match: str) -> str:
    with pytest.raises(ConfigError, match=match) as info:
        make_config()
    message = str(info.value)
    assert "\n" not in message
    return message


def every_class_in(*parts: np.ndarray) -> bool:
    return all(set(part.tolist()) == set(range(CLASSES)) for part in parts)


# --- .npz ---------------------------------------------------------------------------------------

def test_a_file_with_every_part_keeps_its_parts(tmp_path):
    x, x_val, x_test = features(120), features(30, seed=1), features(15, seed=2)
    path = npz(tmp_path / "d.npz", x_train=x, y_train=labels(), x_val=x_val,
               y_val=labels(10), x_test=x_test, y_test=labels(5))
    cfg = arrays_config(path)
    data = data_lib.load(cfg.data, cfg.run.seed)
    assert data.class_names == ["0", "1", "2"] and data.input_shape == (7,)
    np.testing.assert_array_equal(data.x_train, x.astype(np.float32))
    np.testing.assert_array_equal(data.x_val, x_val.astype(np.float32))
    np.testing.assert_array_equal(data.y_test, labels(5))
    assert data.split.val.tolist() == list(range(30)) and len(data.split.test) == 15


def test_train_only_is_split_stratified_and_fixed_by_the_seed(tmp_path):
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=labels())
    cfg = arrays_config(path)
    first, again = (data_lib.load(cfg.data, 3) for _ in range(2))
    assert (len(first.y_train), len(first.y_val), len(first.y_test)) == (84, 24, 12)
    assert every_class_in(first.y_train, first.y_val, first.y_test)
    assert np.array_equal(first.split.test, again.split.test)
    assert not np.array_equal(first.split.test, data_lib.load(cfg.data, 4).split.test)
    rows = np.concatenate([first.split.train, first.split.val, first.split.test])
    assert sorted(rows.tolist()) == list(range(120))


def test_a_given_test_part_stays_whole_and_val_comes_off_train(tmp_path):
    x_test = features(15, seed=2)
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=labels(), x_test=x_test,
               y_test=labels(5))
    cfg = arrays_config(path, train_split=0.75, val_split=0.25)  # may sum to 1: test is given
    data = data_lib.load(cfg.data, cfg.run.seed)
    np.testing.assert_array_equal(data.x_test, x_test.astype(np.float32))
    assert (len(data.y_train), len(data.y_val)) == (90, 30)
    assert every_class_in(data.y_train, data.y_val)


def test_a_given_val_part_stays_whole_and_test_comes_off_train(tmp_path):
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=labels(),
               x_val=features(30, seed=1), y_val=labels(10))
    cfg = arrays_config(path, train_split=0.6, val_split=0.2)  # train : test = 3 : 1
    data = data_lib.load(cfg.data, cfg.run.seed)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (90, 30, 30)
    assert every_class_in(data.y_test)


def test_a_saved_split_restores_the_same_parts(tmp_path):
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=labels(),
               x_test=features(15, seed=2), y_test=labels(5))
    cfg = arrays_config(path)
    data = data_lib.load(cfg.data, cfg.run.seed)
    data_lib.save_split(data.split, tmp_path / "split.npz")
    restored = data_lib.load(cfg.data, 99, data_lib.load_split(tmp_path / "split.npz"))
    for name in ("x_train", "x_val", "x_test", "y_train", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(restored, name), getattr(data, name))


def test_an_uncompressed_file_is_memory_mapped_and_a_compressed_one_read(tmp_path):
    x = np.arange(120 * 7, dtype=np.float32).reshape(120, 7)
    for compressed in (False, True):
        path = npz(tmp_path / f"{compressed}.npz", compressed, x_train=x, y_train=labels())
        pool = data_lib.load_pool(arrays_config(path).data)
        assert isinstance(pool.x, np.memmap) != compressed
        np.testing.assert_array_equal(pool.x, x)
        data = data_lib.load(arrays_config(path).data, 3)
        np.testing.assert_array_equal(data.x_val, x[data.split.val])
        assert not isinstance(data.x_val, np.memmap) or data.x_val._mmap is None


def test_a_fortran_ordered_array_is_read_with_its_values(tmp_path):
    x = np.asfortranarray(features(120))
    path = npz(tmp_path / "d.npz", x_train=x, y_train=labels())
    pool = data_lib.load_pool(arrays_config(path).data)
    np.testing.assert_array_equal(pool.x, x)


@pytest.mark.parametrize("shape", [(20, 3), (7,), (6, 6, 2)])
def test_rows_of_any_shape(tmp_path, shape):
    path = npz(tmp_path / "d.npz", x_train=features(120, shape), y_train=labels())
    cfg = arrays_config(path)
    assert data_lib.load(cfg.data, 3).input_shape == shape
    assert user_data.peek(cfg.data) == (shape, ["0", "1", "2"])


def test_uint8_and_float32_stay_other_numbers_become_float32(tmp_path):
    for dtype, model_dtype in ((np.uint8, np.uint8), (np.float32, np.float32),
                               (np.float64, np.float32), (np.int16, np.float32)):
        path = npz(tmp_path / "d.npz", x_train=(features(120) * 9).astype(dtype),
                   y_train=labels().astype(np.float64))  # whole floats are labels too
        data = data_lib.load(arrays_config(path).data, 3)
        assert data.x_train.dtype == model_dtype and data.y_train.dtype == np.int64


def test_integer_labels_with_shape_n_by_1_are_labels(tmp_path):
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=labels()[:, None])
    assert data_lib.load(arrays_config(path).data, 3).y_train.ndim == 1


# --- refusals -----------------------------------------------------------------------------------

def test_a_missing_file_is_refused(tmp_path):
    refusal(lambda: arrays_config(tmp_path / "nope.npz"), r"^data\.path: .*nope\.npz not found")


def test_a_file_without_y_train_is_refused_naming_what_it_holds(tmp_path):
    path = npz(tmp_path / "d.npz", x_train=features(120), labels=labels())
    message = refusal(lambda: arrays_config(path), r"^data\.path: .*d\.npz has no y_train array")
    assert "it holds x_train, labels" in message


def test_rows_and_labels_of_different_lengths_are_refused(tmp_path):
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=labels(),
               x_val=features(30), y_val=labels(10)[:29])
    refusal(lambda: arrays_config(path), r"^data\.path: x_val has 30 rows but y_val 29")


def test_parts_with_different_row_shapes_are_refused(tmp_path):
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=labels(),
               x_test=features(15, (6,)), y_test=labels(5))
    refusal(lambda: arrays_config(path), r"x_test of d\.npz has rows of shape \(6,\) but x_train")


@pytest.mark.parametrize("y, match", [
    (np.where(labels() == 2, 1.5, labels()), r"y_train of d\.npz holds non-integer labels "
                                             r"\(e\.g\. 1\.5\); give integer class labels"),
    (np.eye(CLASSES)[labels()], r"y_train of d\.npz has shape \(120, 3\); .*not one-hot"),
    (labels() + 1, r"no label of d\.npz is 0 though the labels go up to 3 \(in y_train\) "
                   r"with 3 distinct values; .*subtract 1"),
    (labels().astype(str), r"y_train of d\.npz holds <U21 values; give integer class labels"),
])
def test_labels_that_are_not_classes_are_refused(tmp_path, y, match):
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=y)
    refusal(lambda: arrays_config(path), match)


def _huge_uint64() -> np.ndarray:
    y = labels().astype(np.uint64)
    y[y == 2] = 2**63 + 5  # as int64: -9223372036854775803
    return y


@pytest.mark.parametrize("y, match", [
    (np.where(labels() == 2, 10**12, labels()),
     r"^data\.path: no label of d\.npz is 2 though the labels go up to 1,000,000,000,000 \(in "
     r"y_train\) with 3 distinct values; number the classes 0\.\.K-1 without gaps"),
    (_huge_uint64(), r"^data\.path: y_train of d\.npz holds the label 9223372036854775813, "
                     r"beyond the int64 range labels are read in; number the classes 0\.\.K-1\.$"),
], ids=["label_1e12", "uint64_above_2^63"])
def test_a_huge_label_is_refused_before_anything_is_sized_by_it(tmp_path, y, match):
    """10^12 once sized an array per class up to it (out of memory); 2^63 + 5 wrapped negative."""
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=y)
    refusal(lambda: arrays_config(path), match)  # the validator: Launch page, submit, run
    refusal(lambda: data_lib.load_pool(unchecked("arrays", path).data), match)  # a run's load


def test_an_array_cut_short_is_refused_naming_it(tmp_path):
    """A stored member whose npy header claims more bytes than it holds: once numpy's "mmap
    length is greater than file size", or the next member's bytes read as its values."""
    whole = io.BytesIO()
    np.save(whole, features(1000))
    y = io.BytesIO()
    np.save(y, np.repeat(np.arange(2), 500))
    path = tmp_path / "d.npz"
    with zipfile.ZipFile(path, "w") as z:  # stored, as numpy.savez writes it
        z.writestr("x_train.npy", whole.getvalue()[:4000])
        z.writestr("y_train.npy", y.getvalue())
    match = (r"^data\.path: x_train of d\.npz is cut short: its header says shape \(1000, 7\) "
             r"of float64 \(56,000 bytes\) but it holds 3,872; save the arrays again with "
             r"numpy\.savez\.$")
    refusal(lambda: arrays_config(path), match)
    refusal(lambda: data_lib.load_pool(unchecked("arrays", path).data), match)


@pytest.mark.parametrize("compressed", [False, True])
def test_nan_is_refused_with_its_row(tmp_path, compressed):
    x = features(120)
    x[57, 3] = np.nan
    path = npz(tmp_path / "d.npz", compressed, x_train=x, y_train=labels())
    refusal(lambda: arrays_config(path),
            r"^data\.path: x_train of d\.npz holds NaN or inf \(row 57\); clean the data first")
    with pytest.raises(ConfigError, match="row 57"):
        data_lib.load_pool(config_lib.from_dict(
            {"data": {"source": "arrays", "path": str(path)}}).data)


def test_a_damaged_compressed_member_is_refused_while_streamed(tmp_path):
    path = npz(tmp_path / "d.npz", True, x_train=features(2000, (20,)),
               y_train=np.repeat([0, 1], 1000))
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2:len(damaged) // 2 + 100] = bytes(100)
    path.write_bytes(damaged)
    refusal(lambda: arrays_config(path), r"^data\.path: x_train of d\.npz cannot be read")


def test_a_class_missing_from_the_given_val_part_is_refused(tmp_path):
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=labels(),
               x_val=features(20), y_val=np.repeat([0, 1], 10))
    refusal(lambda: arrays_config(path),
            r"^data\.path: y_val of d\.npz holds no example of class '2'")


def test_a_split_that_leaves_a_class_out_is_refused(tmp_path):
    y = np.concatenate([labels(), [3, 3]])
    path = npz(tmp_path / "d.npz", x_train=features(122), y_train=y)
    refusal(lambda: arrays_config(path), r"^data\.(train_split|val_split).*122 rows in 4 classes")


def test_train_and_val_may_take_everything_only_when_the_file_has_a_test_part(tmp_path):
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=labels())
    refusal(lambda: arrays_config(path, train_split=0.8, val_split=0.2),
            r"^data\.val_split: .*below 1 to leave a test split .*d\.npz has no x_test")


def test_a_source_without_its_path_or_label_is_refused():
    refusal(lambda: config_lib.from_dict({"data": {"source": "arrays"}}),
            r"^data\.path: .*source 'arrays' needs the path of a \.npz file")
    refusal(lambda: config_lib.from_dict({"data": {"source": "csv", "path": "d.csv"}}),
            r"^data\.label: .*source 'csv' needs the name of its label column")


# --- .csv ---------------------------------------------------------------------------------------

def write_csv(path: Path, kinds: list, **columns: list) -> Path:
    names = ["kind", *columns]
    rows = zip(kinds, *columns.values())
    path.write_text(",".join(names) + "\n" + "".join(",".join(map(str, row)) + "\n"
                                                     for row in rows))
    return path


def test_a_csv_with_text_labels_maps_them_to_sorted_classes(tmp_path):
    kinds = ["pear", "apple", "fig"] * PER_CLASS
    path = write_csv(tmp_path / "d.csv", kinds, a=list(range(120)), b=[0.5] * 120)
    cfg = csv_config(path)
    data = data_lib.load(cfg.data, 3)
    assert data.class_names == ["apple", "fig", "pear"] and data.input_shape == (2,)
    rows = data.split.train
    assert data.y_train.tolist() == [[2, 0, 1][row % 3] for row in rows]
    np.testing.assert_array_equal(data.x_train[:, 0], rows.astype(np.float32))
    assert user_data.peek(cfg.data) == ((2,), ["apple", "fig", "pear"])


def test_a_csv_with_integer_labels_sorts_them_as_numbers(tmp_path):
    path = write_csv(tmp_path / "d.csv", [10, 9, 2] * PER_CLASS, a=list(range(120)))
    assert data_lib.load(csv_config(path).data, 3).class_names == ["2", "9", "10"]


def test_a_csv_with_a_text_feature_is_refused_naming_the_column(tmp_path):
    path = write_csv(tmp_path / "d.csv", [0, 1, 2] * PER_CLASS, a=list(range(120)),
                     colour=["red", "blue", "3"] * PER_CLASS)
    refusal(lambda: csv_config(path),
            r"^data\.path: column 'colour' of d\.csv is not numeric \(e\.g\. 'red'\); "
            r"features must be numbers — encode it or drop it\.$")


def test_a_csv_without_the_label_column_is_refused_listing_its_columns(tmp_path):
    path = write_csv(tmp_path / "d.csv", [0, 1, 2] * PER_CLASS, a=list(range(120)))
    refusal(lambda: csv_config(path, label="kinds"),
            r"^data\.label: column 'kinds' not in .*d\.csv; columns: kind, a\. "
            r"Did you mean 'kind'\?$")


def test_a_csv_with_an_empty_cell_is_refused_with_its_line(tmp_path):
    a: list = list(range(120))
    a[10] = ""
    path = write_csv(tmp_path / "d.csv", [0, 1, 2] * PER_CLASS, a=a)
    refusal(lambda: csv_config(path), r"d\.csv holds an empty, NaN or inf value \(line 12, "
                                      r"column 'a'\)")


def test_a_csv_with_a_header_only_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("kind,a,b\n")
    match = r"^data\.path: d\.csv has a header line but no rows; add one row per example below"
    refusal(lambda: csv_config(path), match)  # the validator
    refusal(lambda: user_data.peek(unchecked("csv", path, label="kind").data), match)  # Launch
    refusal(lambda: data_lib.load_pool(unchecked("csv", path, label="kind").data), match)


def test_the_runs_table_names_the_source_and_file(tmp_path):
    path = npz(tmp_path / "d.npz", x_train=features(120), y_train=labels())
    assert _data_label(arrays_config(path).data) == "arrays d.npz"
    csv = write_csv(tmp_path / "t.csv", [0, 1, 2] * PER_CLASS, a=list(range(120)))
    assert _data_label(csv_config(csv).data) == "csv t.csv"
