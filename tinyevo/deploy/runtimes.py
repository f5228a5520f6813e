"""Run a .tflite in the two interpreters it is written for: TFLite Micro and LiteRT.

Both are optional dependencies (``pip install tinyevo[deploy]``); they are imported on first use.
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
