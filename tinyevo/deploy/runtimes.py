"""Run a .tflite in the two interpreters it is written for, TFLite Micro and LiteRT, and an .onnx
in onnxruntime the way that computes tinyevo's int8 (QDQ) models exactly.

All three are optional dependencies (``pip install tinyevo[deploy]``), imported on first use.
LiteRT runs with its reference kernels by default: its optimized int8 kernels differ from the
reference ones by one step at some outputs (tensorflow/tensorflow#99072), and TFLM runs the
reference arithmetic, so only LiteRT's reference kernels are bit-exact with TFLM. (Its reference
FULLY_CONNECTED requantizes in float, google-ai-edge/LiteRT#8567, which is why
``tinyevo.deploy.quantize`` writes dense layers as 1x1 CONV_2D by default.)
"""
from __future__ import annotations

import os
import re
import tempfile

import numpy as np

from tinyevo.errors import TinyevoError

DEFAULT_ARENA_BYTES = 4 << 20
# onnxruntime session settings for int8 QDQ models: exact uint8 x uint8 kernels on x86 CPUs without
# VNNI (see onnxruntime_session); the key is onnxruntime's kOrtSessionOptionsAvx2PrecisionMode
ONNXRUNTIME_CONFIG = {"session.x64quantprecision": "1"}
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


def _tflm():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:  # pragma: no cover - depends on the environment
        raise TinyevoError("TFLite Micro is not installed: pip install tflite-micro") from None
    return runtime


def run_tflm(model_bytes: bytes, inputs: np.ndarray, arena_bytes: int = DEFAULT_ARENA_BYTES) -> np.ndarray:
    """Outputs of the TFLM interpreter for a batch of int8 NHWC inputs, one invoke per sample."""
    interpreter = _tflm().Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_bytes)
    outputs = []
    for sample in np.asarray(inputs):
        interpreter.set_input(sample[None], 0)
        interpreter.invoke()
        outputs.append(np.array(interpreter.get_output(0)))
    return np.concatenate(outputs)


def tflm_arena_bytes(model_bytes: bytes, arena_bytes: int = DEFAULT_ARENA_BYTES) -> int:
    """The tensor arena TFLM actually uses for the model (``print_allocations``' total)."""
    interpreter = _tflm().Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_bytes)
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
    interpreter.invoke()
    report = _capture_stderr(interpreter.print_allocations)
    match = _ARENA_TOTAL.search(report)
    if match is None:  # pragma: no cover - depends on the TFLM build
        raise TinyevoError("TFLM printed no arena total; is this a recording interpreter build?")
    return int(match.group(1))


def _capture_stderr(function) -> str:
    """What ``function`` writes to file descriptor 2 (C++ code writes there, not to sys.stderr)."""
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            function()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        return sink.read().decode(errors="replace")


def run_litert(model_bytes: bytes, inputs: np.ndarray, reference_kernels: bool = True) -> np.ndarray:
    """Outputs of the LiteRT interpreter for a batch of int8 NHWC inputs, one invoke per sample."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - depends on the environment
        raise TinyevoError("LiteRT is not installed: pip install ai-edge-litert") from None
    resolver = (OpResolverType.BUILTIN_REF if reference_kernels
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter = Interpreter(model_content=bytes(model_bytes), experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    outputs = []
    for sample in np.asarray(inputs):
        interpreter.set_tensor(source, sample[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target).copy())
    return np.concatenate(outputs)


def onnxruntime_session(model, threads: int | None = None):
    """An onnxruntime CPU session for an ONNX model (a path, bytes or an ``onnx.ModelProto``) that
    runs int8 QDQ models (``tinyevo export --format onnx-qdq``) with exact integer products.

    On x86, onnxruntime turns the int8 activations of a QDQ model into uint8
    (``QDQS8ToU8Transformer``) and fuses DequantizeLinear -> Conv -> QuantizeLinear into a
    uint8 x int8 ``QLinearConv``. On CPUs without VNNI (AVX2, AVX-512 without VNNI) that kernel
    multiplies with ``VPMADDUBSW``, which adds adjacent products in int16 and saturates: two large
    activations times large weights of one sign (up to 2 * 255 * 127) lose what exceeds 32767.
    Outputs then miss the int8 model by tens of quantization steps. onnxruntime documents this and
    its remedy, ``session.x64quantprecision = 1``: the int8 weights are shifted to uint8 and the
    exact uint8 x uint8 kernels run. The setting changes nothing on CPUs with VNNI or on ARM, whose
    int8 kernels accumulate in int32. Set it in your own sessions too:
    ``options.add_session_config_entry("session.x64quantprecision", "1")``.
    """
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover - depends on the environment
        raise TinyevoError("onnxruntime is not installed: pip install onnxruntime") from None
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    for key, value in ONNXRUNTIME_CONFIG.items():
        options.add_session_config_entry(key, value)
    source = bytes(model) if isinstance(model, (bytes, bytearray)) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_onnxruntime(model, inputs: np.ndarray, threads: int | None = None) -> np.ndarray:
    """The first output of an ONNX model in onnxruntime (``onnxruntime_session``) for a batch of
    inputs (int8 NHWC for a QDQ model, float NCHW for a float one)."""
    session = onnxruntime_session(model, threads)
    return session.run(None, {session.get_inputs()[0].name: np.asarray(inputs)})[0]
