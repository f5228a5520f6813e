"""Latency and energy of one inference on a board: an analytical model with explicit assumptions.

    cycles(op)  = MACs / macs_per_cycle[kind]              for conv2d and dense
                = elements / elements_per_cycle[kind]      for pooling, add, concat, unfolded batch norm
                (+ op_overhead_cycles for every op that costs cycles)
    latency_ms  = sum of cycles / (clock_mhz * 1000)
    energy_mj   = latency_ms * active_power_mw / 1000

The kinds: a conv2d is ``depthwise_conv2d`` when it has one group per input channel,
``pointwise_conv2d`` when its kernel is 1x1 with one group, else ``conv2d`` (grouped convolutions
included); ``dense``. Elements: for a pooling window, output elements times window size; for global
average pooling, input elements; for add, the elements of all inputs; for concat, output elements;
for an unfolded batch norm, its elements. Free (0 cycles): relu and relu6, assumed fused into the
op before them as TFLite and CMSIS-NN fuse activations into the requantization; folded batch norms;
identity, flatten (a reshape) and zero.

Assumptions worth knowing: cycles depend only on MACs (no cache, flash wait states or memory
bandwidth effects, no dependence on tensor shapes), the per-kind rates of a board file are fitted
to published measurements of one inference engine, and ops run one after another on one core.
Each board file says where its rates come from and which of its figures are estimates.

A calibrated board (a ``[calibration]`` table, written by ``tinyevo calibrate``) replaces the rates:

    cycles(op)  = instructions(op) * cycles_per_instruction     (instructions: see
                  tinyevo.hardware.calibration; ops of a kind the calibration has no
                  coefficients for keep the rate formula above)
    latency_ms  = (sum of cycles + instructions(network) * cycles_per_instruction) / (clock_mhz * 1000)

The instructions are what QEMU counted on the emulated core (``-icount``); taking them as cycles
(``cycles_per_instruction`` 1, the default) assumes one instruction per cycle: zero-wait-state
memory, no cache misses or pipeline stalls, multi-cycle instructions (loads after loads, taken
branches, divides) as single ones. A board file may set another factor.
"""
from __future__ import annotations

from tinyevo.arch import OPS, Architecture, Node
from tinyevo.hardware.board import Board
from tinyevo.hardware.calibration import (FREE_OPS, NETWORK, calibration_kind, lowering, network_features,
                                          op_features, predict)
from tinyevo.hardware.folding import batch_norm_folds
from tinyevo.hardware.memory import tensor_bytes

ELEMENT_OPS = {"max_pool": "pool", "avg_pool": "pool", "global_avg_pool": "pool", "add": "add",
               "concat": "concat", "batch_norm": "elementwise"}


def op_kind(arch: Architecture, node: Node) -> str:
    """The kind whose rate a board file gives for this op (see the module docstring)."""
    if node.op == "conv2d":
        cin = arch.input_shapes(node)[0][2]
        if node.attrs["groups"] == cin and cin > 1:
            return "depthwise_conv2d"
        pointwise = node.attrs["kernel"] == (1, 1) and node.attrs["groups"] == 1
        return "pointwise_conv2d" if pointwise else "conv2d"
    if node.op == "dense":
        return "dense"
    if node.op in FREE_OPS:
        return "free"
    if node.op not in ELEMENT_OPS:
        raise ValueError(f"the latency model has no kind for op {node.op!r}: add it to "
                         f"tinyevo/hardware/latency.py")
    return ELEMENT_OPS[node.op]


def op_elements(arch: Architecture, node: Node) -> int:
    """Elements an op without MACs goes through (see the module docstring)."""
    inputs, output = arch.input_shapes(node), arch.shapes[node.name]
    if node.op in ("max_pool", "avg_pool"):
        kh, kw = node.attrs["kernel"]
        return tensor_bytes(output) * kh * kw
    if node.op in ("global_avg_pool", "add"):
        return sum(tensor_bytes(shape) for shape in inputs)
    return tensor_bytes(output)


def layer_cycles(arch: Architecture, board: Board) -> dict[str, float]:
    """Core cycles of each live op, in execution order."""
    folds = batch_norm_folds(arch)
    fitted = board.calibration["instructions"] if board.calibration else {}
    cpi = board.calibration["cycles_per_instruction"] if board.calibration else 1.0
    lowered = lowering(arch) if fitted else None
    cycles = {}
    for node in arch.live_nodes():
        calibrated = calibration_kind(arch, node, lowered) if fitted else "free"
        if fitted and calibrated == "free":  # fused, folded or aliased: runs no code
            cycles[node.name] = 0.0
            continue
        if calibrated in fitted:
            cycles[node.name] = predict(fitted[calibrated], op_features(arch, node, lowered)) * cpi
            continue
        kind = op_kind(arch, node)
        if kind in board.macs_per_cycle:
            spec = OPS[node.op]
            work = spec.macs(node.attrs, arch.input_shapes(node), arch.shapes[node.name])
            cost = work / board.macs_per_cycle[kind]
        elif kind == "free" or node.name in folds:
            cycles[node.name] = 0.0
            continue
        else:
            cost = op_elements(arch, node) / board.elements_per_cycle[kind]
        cycles[node.name] = cost + board.op_overhead_cycles
    return cycles


def network_cycles(arch: Architecture, board: Board) -> float:
    """Cycles of a calibrated board's per-inference overhead (input and output copies); 0 without
    a calibration."""
    if not board.calibration or NETWORK not in board.calibration["instructions"]:
        return 0.0
    overhead = predict(board.calibration["instructions"][NETWORK], network_features(arch))
    return overhead * board.calibration["cycles_per_instruction"]


def latency_ms(arch: Architecture, board: Board) -> float:
    """Estimated time of one inference in milliseconds."""
    cycles = sum(layer_cycles(arch, board).values()) + network_cycles(arch, board)
    return cycles / (board.clock_mhz * 1000.0)


def energy_mj(arch: Architecture, board: Board, known_latency_ms: float | None = None) -> float:
    """Estimated energy of one inference in millijoules: latency (computed if not given) x power."""
    latency = latency_ms(arch, board) if known_latency_ms is None else known_latency_ms
    return latency * board.active_power_mw / 1000.0
