"""Peak SRAM as the runtime the user deploys to needs it: the generated C's arena or TFLM's.

The runtimes (``RUNTIMES`` of ``tinyevo.hardware.execution``): ``"c"`` (default) is the cost model's
own count (``tinyevo.hardware.memory``): the activation buffers of the best execution order, the
arena ``tinyevo export --format c`` plans.
``"tflm"`` is the tensor arena TensorFlow Lite Micro needs for the .tflite that
``tinyevo export --format tflite`` writes: TFLM's memory planner places the activations (its own
order and offsets), and the arena also holds what the interpreter keeps per tensor and per op
(``TfLiteEvalTensor``s, node structs, the kernels' persistent data such as per-channel
multipliers and shifts, scratch buffers), all aligned to 16 bytes.

It is measured, not predicted: ``tflm_peak_sram_bytes(arch)`` writes the candidate's int8 .tflite
with stand-in weights (the freshly built network, seeded, calibrated on two seeded random inputs)
and finds the smallest arena, a multiple of 16 bytes, in which the TFLM interpreter allocates it
(``tinyevo.deploy.runtimes.tflm_required_arena_bytes``): the ``N`` of ``alignas(16) uint8_t
tensor_arena[N]``. That is at least ``print_allocations``' total (head and tail once planned) and
often more: while the kernels prepare, TFLM holds temporary tensors (a wide conv's per-channel
quantization, the planner's scratch) between head and tail. The arena depends on the graph, the
tensor shapes and the op options, not on weight values or quantization scales, so the stand-in
gets the arena of the trained export. The one exception is a concat whose inputs do not share its
quantization: the quantizer inserts a QUANTIZE op (a tensor more) for each such input, which
depends on the calibrated ranges. Of the built-in spaces only ``densenet`` has concats: its running
map, read by the next layer's batch norm too, is requantized unless the calibration gave it the
concat's range, so its figure can differ from the trained export's by the interpreter's structs of
those ops (0 to 480 bytes in 10 samples of the default space, about 100 KB each).

The figure is the host build of TFLM (the ``tflite-micro`` package: 64-bit, reference kernels).
A 32-bit microcontroller needs less for the interpreter's structs; optimized kernels (CMSIS-NN)
may ask for scratch buffers the reference kernels do not.

The interpreter and PyTorch are imported on first use, not with this module.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from collections import OrderedDict

from tinyevo.arch import Architecture
from tinyevo.errors import TinyevoError
from tinyevo.hardware.arena import peak_sram_bytes
from tinyevo.hardware.cost import estimate_cost

STAND_IN_SEED = 0
CALIBRATION_ROWS = 2
CACHE_SIZE = 4096


def check_tflm_installed() -> None:
    if importlib.util.find_spec("tflite_micro") is None:
        raise TinyevoError("runtime tflm measures the arena with the TFLite Micro interpreter, which "
                           "is not installed: pip install tflite-micro")


def stand_in_tflite(arch: Architecture) -> bytes:
    """The int8 .tflite of ``arch`` with seeded initial weights, calibrated on random inputs: the
    graph, shapes and op options of the trained export, other weights."""
    import numpy as np
    import torch

    from tinyevo.deploy.quantize import quantize
    from tinyevo.deploy.tflite_writer import to_tflite
    from tinyevo.nn import build

    with torch.random.fork_rng(devices=[]):  # the search's own random state is left alone
        torch.manual_seed(STAND_IN_SEED)
        module = build(arch).eval()
    h, w, c = arch.input_shape
    calibration = np.random.default_rng(STAND_IN_SEED).uniform(
        0.0, 1.0, size=(CALIBRATION_ROWS, c, h, w)).astype(np.float32)
    return to_tflite(quantize(arch, module, calibration))


def tflm_peak_sram_bytes(arch: Architecture, c_peak_bytes: int | None = None) -> int:
    """The tensor arena TFLM needs for ``arch``'s int8 .tflite, measured on a stand-in;
    ``c_peak_bytes`` (the cost model's own peak, computed if not given) sizes the first arena
    offered to the interpreter."""
    from tinyevo.deploy.runtimes import DEFAULT_ARENA_BYTES, tflm_required_arena_bytes

    if c_peak_bytes is None:
        c_peak_bytes = peak_sram_bytes(arch)
    try:
        model = stand_in_tflite(arch)
        return tflm_required_arena_bytes(model, max(DEFAULT_ARENA_BYTES, 4 * c_peak_bytes))
    except TinyevoError as error:  # a graph TFLM cannot take fails this candidate, not the run
        raise ValueError(f"TFLM arena: {error}") from None


class TflmCostModel:
    """``cost_model(arch, board)``: ``estimate_cost`` with ``peak_sram_bytes`` replaced by the TFLM
    arena (``tflm_peak_sram_bytes``), cached by architecture (the strategy's feasibility check and
    the runner ask for the same candidate)."""

    def __init__(self, cache_size: int = CACHE_SIZE):
        check_tflm_installed()
        self.cache_size = cache_size
        self._arenas: OrderedDict[str, int] = OrderedDict()

    def arena_bytes(self, arch: Architecture, c_peak_bytes: int | None = None) -> int:
        key = hashlib.sha1(arch.dumps().encode()).hexdigest()
        if key in self._arenas:
            self._arenas.move_to_end(key)
            return self._arenas[key]
        arena = self._arenas[key] = tflm_peak_sram_bytes(arch, c_peak_bytes)
        if len(self._arenas) > self.cache_size:
            self._arenas.popitem(last=False)
        return arena

    def __call__(self, arch: Architecture, board=None):
        cost = estimate_cost(arch, board)
        return dataclasses.replace(cost, peak_sram_bytes=self.arena_bytes(arch, cost.peak_sram_bytes))
