"""The hardware cost of an architecture: parameters, MACs, flash, peak SRAM, latency and energy.

All figures are for int8 inference with batch norms folded (``tinyevo.hardware.folding``):

- ``params``: conv2d/dense weights, plus one bias per output channel when the layer has a bias or
  a batch norm folds into it; a batch norm that cannot fold counts 2 per channel (scale, offset);
- ``macs``: multiply-accumulates of conv2d and dense (``OPS[op].macs``);
- ``flash_bytes``: per conv2d/dense, ``WEIGHT_BYTES`` per weight, ``BIAS_BYTES`` per bias and
  ``QUANT_BYTES_PER_CHANNEL`` per output channel: the int32 multiplier and int32 shift of the
  per-channel requantization, as CMSIS-NN's ``cmsis_nn_per_channel_quant_params`` holds them.
  A batch norm that cannot fold is stored as a 1x1 depthwise convolution with bias (one int8
  weight, one int32 bias and the 8 quantization bytes per channel). Not counted: per-tensor scales
  and zero points, the model file's own structure (e.g. the .tflite flatbuffer) and the code;
  TFLite quantizes dense layers per tensor, so dense layers are counted here slightly high;
- ``deployed_flash_bytes``: the flash of the generated C library (``tinyevo export --format c``) as
  ``arm-none-eabi-size`` measures it (text + data of the Cortex-M4 object: the code, and the
  constants laid out as the generator lays them out), estimated from the shapes alone
  (``tinyevo.hardware.deployed_flash``; within 5 % on the 14 models of ``benchmarks/deploy.py``).
  It is the figure to compare with a part's flash; ``flash_bytes`` stays the weights count, the
  unit of published bounds (MLPerf Tiny's 81,512 B for ResNet-8, uNAS's) and of a board's
  default flash limit (``tinyevo.hardware.limits``: ``max_deployed_flash`` bounds this one);
- ``peak_sram_bytes``: the activation arena of the best execution order (``memory.schedule``),
  every buffer at its offset as the C code generator places it (``arena.plan_arena``); not
  counted: the runtime's own scratch buffers (e.g. im2col) and the stack;
- ``latency_ms`` and ``energy_mj``: see ``tinyevo.hardware.latency``; None without a board.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tinyevo.arch import OPS, Architecture
from tinyevo.hardware.board import Board, load_board
from tinyevo.hardware.deployed_flash import deployed_flash_bytes
from tinyevo.hardware.folding import FOLDS_INTO, batch_norm_folds, has_bias
from tinyevo.hardware.latency import energy_mj, latency_ms
from tinyevo.hardware.arena import peak_sram_bytes
from tinyevo.hardware.execution import SEARCHED

WEIGHT_BYTES = 1  # int8 weights
BIAS_BYTES = 4  # int32 biases
QUANT_BYTES_PER_CHANNEL = 8  # int32 multiplier + int32 shift per output channel


@dataclass(frozen=True)
class Cost:
    """What an architecture costs on a board (``latency_ms``/``energy_mj`` are None without one)."""

    params: int
    macs: int
    flash_bytes: int
    peak_sram_bytes: int
    latency_ms: float | None = None
    energy_mj: float | None = None
    board: str | None = None
    #: the generated C library's flash (text + data), estimated (see the module docstring); None
    #: from cost models that do not give it
    deployed_flash_bytes: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def fits(self, board: Board) -> bool:
        """Whether the weights fit the board's flash and the activations its SRAM."""
        return self.flash_bytes <= board.flash_bytes and self.peak_sram_bytes <= board.sram_bytes


def estimate_cost(arch: Architecture, board: Board | str | Path | None = None,
                  in_place_kernels: bool = SEARCHED.in_place_kernels,
                  execution: str = SEARCHED.execution) -> Cost:
    """Every figure of the cost model for one architecture, on ``board`` (a Board, name or path).

    ``in_place_kernels=True`` counts peak SRAM as the C code generator deploys it (in-place
    depthwise, 1x1 and add kernels; see ``memory``); ``execution="streamed"`` with the best
    streamed prefix (``streaming``), the arena the C code generator plans by default."""
    if isinstance(board, (str, Path)):
        board = load_board(board)
    timing = {}
    if board is not None:
        latency = latency_ms(arch, board)
        timing = dict(latency_ms=latency, energy_mj=energy_mj(arch, board, latency), board=board.name)
    return Cost(params=folded_params(arch), macs=macs(arch), flash_bytes=flash_bytes(arch),
                peak_sram_bytes=peak_sram_bytes(arch, in_place_kernels=in_place_kernels, execution=execution),
                deployed_flash_bytes=deployed_flash_bytes(arch), **timing)


def macs(arch: Architecture) -> int:
    """Multiply-accumulates of one inference."""
    return sum(OPS[n.op].macs(n.attrs, arch.input_shapes(n), arch.shapes[n.name])
               for n in arch.live_nodes())


def folded_params(arch: Architecture) -> int:
    """Parameters after batch-norm folding."""
    return sum(weights + biases for weights, biases, _ in _stored_tensors(arch))


def flash_bytes(arch: Architecture) -> int:
    """Bytes of int8 weights, int32 biases and per-channel quantization parameters."""
    return sum(weights * WEIGHT_BYTES + biases * BIAS_BYTES + channels * QUANT_BYTES_PER_CHANNEL
               for weights, biases, channels in _stored_tensors(arch))


def flash_parts(arch: Architecture) -> dict[str, int]:
    """``flash_bytes`` split by what is stored: ``weights`` (int8), ``biases`` (int32) and ``scales``
    (the per-channel requantization multiplier and shift); the three add up to ``flash_bytes``."""
    layers = _stored_tensors(arch)
    return {"weights": sum(w for w, _, _ in layers) * WEIGHT_BYTES,
            "biases": sum(b for _, b, _ in layers) * BIAS_BYTES,
            "scales": sum(c for _, _, c in layers) * QUANT_BYTES_PER_CHANNEL}


def _stored_tensors(arch: Architecture) -> list[tuple[int, int, int]]:
    """(weights, biases, quantized output channels) of each layer that stores parameters."""
    folds = batch_norm_folds(arch)
    layers = []
    for node in arch.live_nodes():
        channels = arch.shapes[node.name][2]
        if node.op in FOLDS_INTO:
            weights = OPS[node.op].weight_count(node.attrs, arch.input_shapes(node))
            layers.append((weights, channels if has_bias(arch, node.name, folds) else 0, channels))
        elif node.op == "batch_norm" and node.name not in folds:
            layers.append((channels, channels, channels))
    return layers
