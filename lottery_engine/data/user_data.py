"""The user's own data: a .npz of arrays (`data.source: arrays`) or a table (`data.source: csv`).

A .npz holds `x_train`, `y_train` and optionally `x_val`/`y_val` and `x_test`/`y_test`, rows of any
shape (images, sequences, table rows). An uncompressed .npz (numpy.savez) is memory-mapped, so a
file larger than RAM costs only the splits gathered from it; a compressed one (savez_compressed) is
read into memory. Features keep uint8 and float32 as they are; any other numbers reach the model as
float32 (see `feature_array`). Labels are integer classes 0..K-1, named "0".."K-1".

A .csv has a header line; `data.label` names the label column and every other column is a numeric
feature. Its labels (text or integers) are sorted, numbered 0..K-1 and named by their text.

Each refusal is one ConfigError naming the key, the file and the fix; the validator runs `check` so
a bad file is refused before a run starts, and a run reads the file through `load`. Nothing here
imports TensorFlow.
"""

from __future__ import annotations

import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..config.schema import ConfigError, DataConfig, did_you_mean

PARTS = ("train", "val", "test")
CHUNK_BYTES = 16 * 2**20  # NaN/inf scans read this much of x at a time
LOCAL_HEADER = struct.Struct("<4s22xHH")  # a zip member's local header: signature ... name, extra
MAX_LISTED = 20  # csv columns named in a refusal
UNREADABLE = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)  # a damaged member


@dataclass
class UserData:
    """Features and int64 labels per part: `train` always, `val` and `test` where the file has
    them (a csv has train only). Features may be a read-only np.memmap."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    class_names: list[str]


def feature_array(x: np.ndarray) -> np.ndarray:
    """`x` as the model gets it: uint8 (rescaled by an image model's first layer) and float32 as
    they are; any other numbers as float32, what Keras computes in (float64 would double the
    memory of every split for nothing)."""
    return x if x.dtype in (np.uint8, np.float32) else x.astype(np.float32)


def load(cfg: DataConfig) -> UserData:
    """The configured file, checked whole (see the module docstring)."""
    if cfg.source == "csv":
        return _read_csv(cfg)
    with _Npz(Path(cfg.path)) as npz:
        x = {part: npz.array(part) for part in npz.labels}
        for part, array in x.items():
            _check_finite(npz.where(part), _slices(array))
        return UserData(x, npz.labels, npz.class_names)


def check(cfg: DataConfig) -> tuple[dict[str, np.ndarray], list[str]]:
    """Labels per part and class names, after the checks `load` makes, without holding any x
    whole in memory: the validator's view of the file."""
    if cfg.source == "csv":
        data = _read_csv(cfg)
        return data.y, data.class_names
    with _Npz(Path(cfg.path)) as npz:
        for part in npz.labels:
            _check_finite(npz.where(part), npz.chunks(part))
        return npz.labels, npz.class_names


def peek(cfg: DataConfig) -> tuple[tuple[int, ...], list[str]]:
    """(shape of one example, class names), from the npy headers and the labels alone (a csv's
    header line and label column): cheap enough to check the data against a model's input
    before a run writes anything."""
    if cfg.source == "csv":
        path = Path(cfg.path)
        columns = _csv_frame(path, nrows=0).columns
        _label_column(cfg.label, columns, path)
        _, class_names = _csv_labels(_csv_frame(path, usecols=[cfg.label]), cfg.label, path)
        return (len(columns) - 1,), class_names
    with _Npz(Path(cfg.path)) as npz:
        return npz.headers["train"].shape[1:], npz.class_names


def outline(cfg: DataConfig) -> dict[str, Any]:
    """What a data file holds, for the Launch page the moment it is uploaded (no model needed):
    the shape of one example, the class names and the rows of each part it gives (train; val and
    test where the file has them, else the run splits them off train)."""
    shape, classes = peek(cfg)
    if cfg.source == "csv":
        rows = {"train": len(_csv_frame(Path(cfg.path), usecols=[cfg.label]))}
    else:
        with _Npz(Path(cfg.path)) as npz:
            rows = {part: header.shape[0] for part, header in npz.headers.items()}
    return {"shape": list(shape), "classes": classes, "rows": rows}


# --- .npz ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Header:
    """One npy member: its array's shape and dtype, and where its bytes start in the .npz file
    (None when they cannot be mapped: a compressed or Fortran-ordered member)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    header_bytes: int
    offset: int | None


class _Npz:
    """An open .npz, its x headers and its labels checked against each other on opening; x is
    read only when asked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise ConfigError(f"data.path: {path} not found; give the path of a .npz file "
                              f"(numpy.savez with x_train, y_train).") from None
        except (OSError, zipfile.BadZipFile) as exc:
            raise ConfigError(f"data.path: {path} is not a readable .npz file ({exc}); save the "
                              f"arrays with numpy.savez.") from None
        self.members = {info.filename.removesuffix(".npy"): info
                        for info in self.zip.infolist() if info.filename.endswith(".npy")}
        try:
            parts = self._parts()
            self.headers = {part: self._header(f"x_{part}") for part in parts}
            self._check_x()
            self.labels = {part: self._labels(part) for part in parts}
            self._check_rows()
            self.class_names = _class_names(self.labels, self.path.name)
        except ConfigError:
            self.zip.close()
            raise

    def __enter__(self) -> _Npz:
        return self

    def __exit__(self, *_: object) -> None:
        self.zip.close()

    def where(self, part: str, array: str = "x") -> str:
        return f"data.path: {array}_{part} of {self.path.name}"

    def _parts(self) -> list[str]:
        arrays = ", ".join(self.members) or "no arrays"
        if "x_train" not in self.members or "y_train" not in self.members:
            missing = "x_train" if "x_train" not in self.members else "y_train"
            raise ConfigError(f"data.path: {self.path} has no {missing} array (it holds "
                              f"{arrays}); save x_train, y_train and optionally x_val, y_val, "
                              f"x_test, y_test with numpy.savez.")
        for part in ("val", "test"):
            if (f"x_{part}" in self.members) != (f"y_{part}" in self.members):
                raise ConfigError(f"data.path: {self.path} has only one of x_{part} and "
                                  f"y_{part}; give both or neither.")
        return [part for part in PARTS if f"x_{part}" in self.members]

    def _header(self, name: str) -> _Header:
        """Parse the member's npy header (numpy.lib.format) without reading its data."""
        info = self.members[name]
        with self.zip.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read(f)
            except UNREADABLE as exc:
                raise ConfigError(f"data.path: {name} of {self.path.name} is not a numpy array "
                                  f"({exc}); save it with numpy.savez.") from None
            header_bytes = f.tell()
        mappable = info.compress_type == zipfile.ZIP_STORED and not fortran
        header = _Header(shape, dtype, fortran, header_bytes,
                         self._data_start(info) + header_bytes if mappable else None)
        self._check_length(name, header, info)
        return header

    def _check_length(self, name: str, header: _Header, info: zipfile.ZipInfo) -> None:
        """Refuse a member whose npy header claims more bytes than it holds (a file cut short,
        or a header written by hand): mapped, it would fail with numpy's "mmap length is greater
        than file size", or read the next member's bytes as this one's values."""
        if header.dtype.hasobject:  # pickled: no fixed size (and refused as labels or features)
            return
        needed = math.prod(header.shape) * header.dtype.itemsize
        held = info.file_size - header.header_bytes
        if header.offset is not None:
            held = min(held, self.path.stat().st_size - header.offset)
        if needed > held:
            raise ConfigError(f"data.path: {name} of {self.path.name} is cut short: its header "
                              f"says shape {header.shape} of {header.dtype} ({needed:,} bytes) "
                              f"but it holds {max(held, 0):,}; save the arrays again with "
                              f"numpy.savez.")

    def _data_start(self, info: zipfile.ZipInfo) -> int:
        """Where a stored member's bytes start: after its local header, whose name and extra
        fields may differ in length from the central directory's."""
        with open(self.path, "rb") as f:
            f.seek(info.header_offset)
            signature, name_length, extra_length = LOCAL_HEADER.unpack(f.read(LOCAL_HEADER.size))
        if signature != b"PK\x03\x04":
            raise ConfigError(f"data.path: {self.path} is a damaged zip file; save it again "
                              f"with numpy.savez.")
        return info.header_offset + LOCAL_HEADER.size + name_length + extra_length

    def _labels(self, part: str) -> np.ndarray:
        name, where = f"y_{part}", self.where(part, "y")
        if self._header(name).dtype.hasobject:
            raise ConfigError(f"{where} holds Python objects; give integer class labels.")
        return _class_labels(where, self._read(name))

    def _read(self, name: str) -> np.ndarray:
        with self.zip.open(self.members[name]) as f:
            try:
                return np.lib.format.read_array(f, allow_pickle=False)
            except UNREADABLE as exc:
                raise ConfigError(f"data.path: {name} of {self.path.name} cannot be read "
                                  f"({exc}); save it with numpy.savez.") from None

    def _check_x(self) -> None:
        """Every x part: numbers, one row per example, the row shape of x_train."""
        row = self.headers["train"].shape[1:]
        for part, header in self.headers.items():
            where = self.where(part)
            if header.dtype.kind not in "biuf":
                raise ConfigError(f"{where} holds {header.dtype} values; features must be "
                                  f"numbers.")
            if len(header.shape) < 2 or not header.shape[0] or not math.prod(header.shape[1:]):
                raise ConfigError(f"{where} has shape {header.shape}; give one row per example "
                                  f"with at least one value, e.g. shape (N, features).")
            if header.shape[1:] != row:
                raise ConfigError(f"{where} has rows of shape {header.shape[1:]} but x_train "
                                  f"{row}; every part needs the same row shape.")

    def _check_rows(self) -> None:
        for part, header in self.headers.items():
            if header.shape[0] != len(self.labels[part]):
                raise ConfigError(f"data.path: x_{part} has {header.shape[0]:,} rows but y_{part} "
                                  f"{len(self.labels[part]):,}; give one label per row.")

    def array(self, part: str) -> np.ndarray:
        """x of a part: a read-only memmap where the member is stored uncompressed, else read."""
        header = self.headers[part]
        if header.offset is None:
            return self._read(f"x_{part}")
        return np.memmap(self.path, dtype=header.dtype, mode="r", offset=header.offset,
                         shape=header.shape)

    def chunks(self, part: str) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) of x chunk by chunk: mapped, or streamed out of a compressed
        member, so a scan never holds the whole array."""
        header = self.headers[part]
        if header.offset is not None or header.fortran:
            yield from _slices(self.array(part))
            return
        rows = _chunk_rows(header.shape, header.dtype)
        row_bytes = math.prod(header.shape[1:]) * header.dtype.itemsize
        with self.zip.open(self.members[f"x_{part}"]) as f:
            f.read(header.header_bytes)
            for start in range(0, header.shape[0], rows):
                count = min(rows, header.shape[0] - start)
                try:
                    data = f.read(count * row_bytes)
                    if len(data) < count * row_bytes:
                        raise EOFError("cut short")
                except UNREADABLE as exc:
                    raise ConfigError(f"{self.where(part)} cannot be read ({exc}); save the "
                                      f"file again.") from None
                yield start, np.frombuffer(data, header.dtype).reshape(count, *header.shape[1:])


def _class_labels(where: str, y: np.ndarray) -> np.ndarray:
    """Labels as int64: an integer array, or floats that are all whole numbers; one per row.
    A uint64 or float label of 2^63 or more is refused here: as int64 it would wrap negative."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ConfigError(f"{where} has shape {y.shape}; give one integer class label per row "
                          f"(not one-hot).")
    if y.dtype.kind == "f":
        bad = y[~np.isfinite(y) | (y != np.round(y))]
        if bad.size:
            raise ConfigError(f"{where} holds non-integer labels (e.g. {bad[0]:g}); give "
                              f"integer class labels.")
    elif y.dtype.kind not in "biu":
        raise ConfigError(f"{where} holds {y.dtype} values; give integer class labels.")
    if y.size and y.dtype.kind in "uf" and y.max() >= 2**63:
        raise ConfigError(f"{where} holds the label {y.max()}, beyond the int64 range labels "
                          f"are read in; number the classes 0..K-1.")
    if y.size and y.min() < 0:
        raise ConfigError(f"{where} holds the negative label {y.min():g}; number the classes "
                          f"0..K-1.")
    return y.astype(np.int64)


def _class_names(labels: dict[str, np.ndarray], file: str) -> list[str]:
    """"0".."K-1" for labels whose K distinct values are 0..K-1, refusing a gap (labels numbered
    from 1, say, or one huge label) and a single class. Only the distinct values are counted, so
    a label of 10^12 costs nothing: sizing anything per class up to the largest label would not
    fit in memory."""
    classes = np.unique(np.concatenate(list(labels.values())))
    count, top = len(classes), int(classes[-1])
    if top != count - 1:  # sorted, distinct, not negative: classes[i] >= i, first gap below
        absent = int(np.argmax(classes != np.arange(count)))
        part = next(part for part, y in labels.items() if y.size and y.max() == top)
        raise ConfigError(f"data.path: no label of {file} is {absent} though the labels go up "
                          f"to {top:,} (in y_{part}) with {count:,} distinct values; number the "
                          f"classes 0..K-1 without gaps (subtract 1 from labels that start at "
                          f"1).")
    if count < 2:
        raise ConfigError(f"data.path: every label of {file} is 0; a classifier needs two or "
                          f"more classes.")
    return [str(c) for c in range(count)]


def _chunk_rows(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return max(1, CHUNK_BYTES // (math.prod(shape[1:]) * dtype.itemsize))


def _slices(x: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    rows = _chunk_rows(x.shape, x.dtype)
    for start in range(0, len(x), rows):
        yield start, x[start:start + rows]


def _check_finite(where: str, chunks: Iterator[tuple[int, np.ndarray]]) -> None:
    """Refuse NaN or inf in float features, naming the first row holding one."""
    for start, chunk in chunks:
        if chunk.dtype.kind != "f":
            return
        finite = np.isfinite(chunk).reshape(len(chunk), -1).all(axis=1)
        if not finite.all():
            row = start + int(np.argmin(finite))
            raise ConfigError(f"{where} holds NaN or inf (row {row:,}); clean the data first.")


# --- .csv ---------------------------------------------------------------------------------------

def _csv_frame(path: Path, **options: object) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **options)
    except FileNotFoundError:
        raise ConfigError(f"data.path: {path} not found; give the path of a .csv file with a "
                          f"header line.") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"data.path: {path} is not a readable csv file "
                          f"({' '.join(str(exc).split())}).") from None


def _label_column(label: str, columns: pd.Index, path: Path) -> None:
    names = [str(c) for c in columns]
    if label not in names:
        listed = ", ".join(names[:MAX_LISTED]) + (", ..." if len(names) > MAX_LISTED else "")
        raise ConfigError(f"data.label: column {label!r} not in {path}; columns: {listed}."
                          f"{did_you_mean(label, names)}")
    if len(names) < 2:
        raise ConfigError(f"data.path: {path} has no column besides the label {label!r}; "
                          f"give one or more feature columns.")


def _read_csv(cfg: DataConfig) -> UserData:
    path = Path(cfg.path)
    frame = _csv_frame(path)
    _label_column(cfg.label, frame.columns, path)
    y, class_names = _csv_labels(frame, cfg.label, path)
    features = frame.drop(columns=[cfg.label])
    for column in features.columns:
        if not pd.api.types.is_numeric_dtype(features[column]):
            values = features[column]
            bad = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
            raise ConfigError(f"data.path: column {column!r} of {path.name} is not numeric (e.g. "
                              f"{bad.iloc[0]!r}); features must be numbers — encode it or drop "
                              f"it.")
    x = features.to_numpy(np.float32)
    finite = np.isfinite(x)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        raise ConfigError(f"data.path: {path.name} holds an empty, NaN or inf value (line "
                          f"{row + 2:,}, column {features.columns[column]!r}); clean the data "
                          f"first.")
    return UserData({"train": x}, {"train": y}, class_names)


def _csv_labels(frame: pd.DataFrame, label: str, path: Path) -> tuple[np.ndarray, list[str]]:
    """Labels numbered by the sorted order of their values (numbers sort as numbers)."""
    values = frame[label]
    if values.empty:
        raise ConfigError(f"data.path: {path.name} has a header line but no rows; add one row "
                          f"per example below it.")
    empty = values.isna().to_numpy()
    if empty.any():
        raise ConfigError(f"data.label: column {label!r} of {path.name} is empty at line "
                          f"{int(np.argmax(empty)) + 2:,}; every row needs a label.")
    if pd.api.types.is_float_dtype(values):
        values = pd.Series(_class_labels(f"data.label: column {label!r} of {path.name}",
                                         values.to_numpy()))
    elif not pd.api.types.is_integer_dtype(values):
        values = values.astype(str)
    classes, y = np.unique(values.to_numpy(), return_inverse=True)
    if len(classes) < 2:
        raise ConfigError(f"data.label: column {label!r} of {path.name} holds one class only "
                          f"({str(classes[0])!r}); a classifier needs two or more.")
    return y.astype(np.int64), [str(c) for c in classes]
