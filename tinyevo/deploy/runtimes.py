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

import atexit
import os
import re
import struct
import subprocess
import sys
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
    """``print_allocations``' total after one invoke: the head and tail TFLM keeps once the model is
    planned. The arena it must be given can be larger (``tflm_required_arena_bytes``)."""
    interpreter = _tflm().Interpreter.from_bytes(bytes(model_bytes), arena_size=arena_bytes)
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
    interpreter.invoke()
    return arena_total(_capture_stderr(interpreter.print_allocations))


# --- the smallest arena TFLM allocates a model in --------------------------------------------------
ARENA_ALIGNMENT = 16  # TFLM aligns the arena's head and tail to 16 bytes
MAX_ARENA_BYTES = 1 << 30
#: The child process that tries arenas: TFLM crashes (SIGSEGV) in some arenas that are too small, so
#: no arena that may be too small is ever offered to the interpreter in this process.
_PROBE_SOURCE = """
import os, struct, sys, tempfile
from tflite_micro.python.tflite_micro import runtime
read, write, model = sys.stdin.buffer.read, sys.stdout.buffer.write, b""
while True:
    head = read(9)
    if len(head) < 9:
        break
    value = struct.unpack("<Q", head[1:])[0]
    if head[:1] == b"M":
        model = read(value)
        continue
    total = 0
    try:
        interpreter = runtime.Interpreter.from_bytes(model, arena_size=value)
    except RuntimeError:
        interpreter = None
    if interpreter is not None:
        with tempfile.TemporaryFile() as sink:
            saved = os.dup(2)
            os.dup2(sink.fileno(), 2)
            try:
                interpreter.print_allocations()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            sink.seek(0)
            report = sink.read().decode(errors="replace")
        interpreter = None
        total = int(report.split("Arena allocation total ")[1].split()[0])
    write(struct.pack("<Q", total))
    sys.stdout.buffer.flush()
"""


class _ArenaProbe:
    """Offers a .tflite to TFLM in arenas of given sizes, in a child process that is restarted when
    the interpreter crashes (a crash counts as 'does not fit')."""

    def __init__(self):
        self._child = None
        self._model = None

    def _send(self, kind: bytes, value: int, payload: bytes = b"") -> None:
        self._child.stdin.write(kind + struct.pack("<Q", value) + payload)
        self._child.stdin.flush()

    def total(self, model: bytes, arena: int) -> int | None:
        """``print_allocations``' total when TFLM allocates ``model`` in ``arena`` bytes, else None."""
        try:
            if self._child is None or self._child.poll() is not None:
                _tflm()  # one clear line when TFLM is not installed
                self._child = subprocess.Popen([sys.executable, "-c", _PROBE_SOURCE],
                                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                               stderr=subprocess.DEVNULL)
                self._model = None
            if self._model is not model:
                self._send(b"M", len(model), model)
                self._model = model
            self._send(b"P", arena)
            reply = self._child.stdout.read(8)
        except OSError:  # a broken pipe: the child crashed before the reply
            reply = b""
        if len(reply) < 8:  # the interpreter crashed: this arena does not hold the model
            self._child.wait()
            self._child = None
            return None
        return struct.unpack("<Q", reply)[0] or None

    def close(self) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.stdin.close()
            self._child.wait()
        self._child = None


_PROBE = _ArenaProbe()
atexit.register(_PROBE.close)


def _aligned(size: int) -> int:
    return -(-int(size) // ARENA_ALIGNMENT) * ARENA_ALIGNMENT


def tflm_required_arena_bytes(model_bytes: bytes, start_bytes: int = DEFAULT_ARENA_BYTES) -> int:
    """The smallest tensor arena, a multiple of 16 bytes, in which TFLM allocates the model (it
    allocates everything before the first invoke): what ``alignas(16) uint8_t tensor_arena[N]``
    must hold. At least ``print_allocations``' total (head + tail once planned), and more when
    the kernels' preparation needs temporary memory between head and tail (e.g. the per-channel
    quantization of a wide conv as a temporary TfLiteTensor). Found by offering arenas to the
    interpreter in a child process: from ``start_bytes`` (doubled while too small), the total,
    then doubling steps above it and bisection to 16 bytes; it assumes an arena that holds the
    model is never held by a larger one."""
    model = bytes(model_bytes)
    size = _aligned(start_bytes)
    total = _PROBE.total(model, size)
    while total is None:
        if size >= MAX_ARENA_BYTES:
            raise TinyevoError(f"TFLM cannot allocate the model in {size:,} bytes")
        size = min(2 * size, MAX_ARENA_BYTES)
        total = _PROBE.total(model, size)
    low, high = _aligned(total) - ARENA_ALIGNMENT, size  # low does not hold the model, high does
    step = ARENA_ALIGNMENT
    while low + ARENA_ALIGNMENT < high:  # doubling steps up from the total
        candidate = min(low + step, high)
        if candidate >= high:
            break
        if _PROBE.total(model, candidate) is None:
            low, step = candidate, 2 * step if step > ARENA_ALIGNMENT else 256
        else:
            high = candidate
            break
    while low + ARENA_ALIGNMENT < high:  # bisection
        middle = _aligned((low + high) // 2)
        if middle >= high:
            middle = high - ARENA_ALIGNMENT
        if _PROBE.total(model, middle) is None:
            low = middle
        else:
            high = middle
    return high


def arena_total(report: str) -> int:
    """The arena total in what ``print_allocations`` printed."""
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
