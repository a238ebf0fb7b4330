"""TFLite files from a Keras model, run through LiteRT, and what they hold.

Both TFLite formats ask the converter for `EXPERIMENTAL_SPARSITY`: it stores a mostly-zero weight
tensor as its nonzero values plus an index, and its FULLY_CONNECTED kernel runs the float ones
sparse. A file is kept sparse only if the runtime a user gets by default (LiteRT with its XNNPACK
delegate) can run it: XNNPACK refuses sparse int8 FULLY_CONNECTED weights, and a shipped file that
fails where it lands is worse than a bigger one, so such a model is converted again dense and the
record says why and how big the sparse one was.

The int8 format is full-integer: every op runs in int8, input and output included (calibrated on
examples of the run's own training split); `Runner` quantizes inputs and dequantizes outputs with
the file's own scales, so its outputs compare with the ticket's.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
import warnings
from typing import Iterator

import keras
import numpy as np

try:
    from ai_edge_litert.interpreter import Interpreter

    RUNTIME = f"LiteRT {importlib.metadata.version('ai-edge-litert')} (ai_edge_litert.interpreter)"
except ImportError:  # LiteRT is optional: TensorFlow still ships its interpreter
    import tensorflow as _tf

    Interpreter = _tf.lite.Interpreter
    RUNTIME = f"tf.lite.Interpreter (TensorFlow {_tf.__version__})"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """File descriptors 1 and 2 to /dev/null: the converter and the interpreter print notes
    ('Saved artifact at ...', 'Created TensorFlow Lite XNNPACK delegate') straight to them."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def convert(model: keras.Model, calibration: np.ndarray | None, sparse: bool) -> bytes:
    """The model as TFLite: float32, or full-integer int8 calibrated on `calibration`."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    if calibration is not None:
        optimizations.insert(0, tf.lite.Optimize.DEFAULT)
        converter.representative_dataset = lambda: ([x[None]] for x in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    converter.optimizations = optimizations
    with quiet():
        return converter.convert()


class Runner:
    """One interpreter at one batch size, on one thread: float arrays in, float outputs out."""

    def __init__(self, content: bytes, batch: int):
        with quiet():
            self.interpreter = Interpreter(model_content=content, num_threads=1)
            shape = self.interpreter.get_input_details()[0]["shape"]
            self.interpreter.resize_tensor_input(
                self.interpreter.get_input_details()[0]["index"], [batch, *shape[1:]])
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = batch

    def _quantized(self, x: np.ndarray) -> np.ndarray:
        if self.input["dtype"] == np.float32:
            return x.astype(np.float32, copy=False)
        scale, zero = self.input["quantization"]
        info = np.iinfo(self.input["dtype"])
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(self.input["dtype"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Outputs for exactly `batch` examples (dequantized for an integer model)."""
        self.interpreter.set_tensor(self.input["index"], self._quantized(x))
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] == np.float32:
            return out.copy()
        scale, zero = self.output["quantization"]
        return (out.astype(np.float32) - zero) * scale

    def ops(self) -> list[str]:
        """The ops the interpreter runs (DELEGATE: XNNPACK took some; DENSIFY: sparse weights
        made dense when the model is prepared)."""
        return op_names(self.interpreter)


def op_names(interpreter: Interpreter) -> list[str]:
    """The names of the ops a prepared interpreter runs, sorted, each once. The one private
    LiteRT call of the engine: the interpreter has no public list of its ops after delegation
    (Interpreter._get_ops_details); tests/foundations/test_keras_internals.py pins it with the version."""
    return sorted({op["op_name"] for op in interpreter._get_ops_details()})


def runs_by_default(content: bytes, example: np.ndarray) -> str | None:
    """None if the default runtime prepares and runs the model, else its one-line complaint."""
    try:
        Runner(content, 1)(example[None])
    except (RuntimeError, ValueError) as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def shippable(model: keras.Model, calibration: np.ndarray | None, example: np.ndarray
              ) -> tuple[bytes, dict]:
    """The sparse-encoded file if the default runtime runs it, else the dense one and why."""
    content = convert(model, calibration, sparse=True)
    refused = runs_by_default(content, example)
    if refused is None:
        return content, {"sparse_encoding": "used"}
    dense = convert(model, calibration, sparse=False)
    return dense, {"sparse_encoding": f"dropped: {RUNTIME} cannot run the sparse-encoded file "
                                      f"({refused}); it was {len(content)} bytes"}


_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 7: np.int16,
           9: np.int8, 10: np.float64}
_WEIGHT_DTYPES = {0, 1, 3, 7, 9, 10}  # floats and small ints; int32 counts only as a bias


def contents(content: bytes) -> dict:
    """Parameters stored in the file (a sparse tensor stores its nonzero values only), how many
    are nonzero, and how many tensors are sparse-encoded. Constants that are not weights (shapes)
    are left out: an int32 tensor counts only as the bias of a FULLY_CONNECTED or CONV op."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(content, 0))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    weight_ops = {schema.BuiltinOperator.FULLY_CONNECTED, schema.BuiltinOperator.CONV_2D,
                  schema.BuiltinOperator.DEPTHWISE_CONV_2D, schema.BuiltinOperator.CONV_3D,
                  schema.BuiltinOperator.TRANSPOSE_CONV}
    stored = nonzero = sparse = 0
    for graph in model.subgraphs:
        biases = {op.inputs[2] for op in graph.operators
                  if codes[op.opcodeIndex] in weight_ops and len(op.inputs) > 2}
        for index, tensor in enumerate(graph.tensors):
            data = model.buffers[tensor.buffer].data
            counted = tensor.type in _WEIGHT_DTYPES or index in biases
            if data is None or not len(data) or not counted or tensor.type not in _DTYPES:
                continue
            values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), _DTYPES[tensor.type])
            stored += values.size
            nonzero += int(np.count_nonzero(values))
            sparse += tensor.sparsity is not None
    return {"stored": stored, "nonzero": nonzero, "sparse_tensors": sparse}
