"""The best model's SRAM, op step by op step, and its flash, part by part: the data of the report's
memory figures.

Live bytes per step come from the arena planner that ``peak_sram_bytes`` and the C code generator
use (``tinyevo.hardware.arena.plan_arena``), in the search's two ways of counting
(``ExecutionModel.searched``): ``layer_by_layer`` (whole tensors, op after op) and ``streamed`` (the
first ops row by row through line buffers, with the in-place kernels of the generated C, as MCUNetV2
runs them). Streamed ops run interleaved, so each of them is shown with the bytes of the whole
streaming phase (every ring, the input and the cut live at once).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from tinyevo.arch import Architecture
from tinyevo.deploy.codegen.code_size import CodeSize, measure_code
from tinyevo.deploy.codegen.mcu import mcu_available
from tinyevo.hardware.arena import plan_arena
from tinyevo.hardware.cost import flash_parts
from tinyevo.hardware.execution import EXECUTIONS, ExecutionModel


@dataclass(frozen=True)
class OpStep:
    """One op of the plan and the activation bytes live while it runs."""

    op: str
    kind: str
    live_bytes: int
    streamed: bool = False


@dataclass(frozen=True)
class Timeline:
    """The op steps of one way of running a model, its peak and its arena (buffers placed)."""

    execution: str
    steps: list[OpStep]
    peak_bytes: int
    arena_bytes: int


def timeline(arch: Architecture, execution: str) -> Timeline:
    """The live bytes of every op step of ``arch`` counted as ``tinyevo search --execution``
    ``execution`` counts them."""
    arena = plan_arena(arch, **ExecutionModel.searched(execution).arena_options())
    kinds = {n.name: n.op for n in arch.nodes}
    steps = []
    if arena.stream is not None:
        phase = arena.stream.stream_bytes
        steps += [OpStep(op, kinds.get(op, "add"), phase, True) for op in arena.stream.nodes]
    if arena.schedule is not None:
        steps += [OpStep(s.node, kinds.get(s.node, "add"), s.live_bytes) for s in arena.schedule.steps]
    return Timeline(execution, steps, arena.peak_bytes, arena.arena_bytes)


def timelines(arch: Architecture) -> list[Timeline]:
    """Layer by layer, then streamed."""
    return [timeline(arch, execution) for execution in EXECUTIONS]


def flash_breakdown(arch: Architecture, code: CodeSize | None = None) -> dict[str, int | None]:
    """Weights, biases and scales as the cost model stores them; ``code`` (the cost model does not
    count it) and ``library_constants`` (the constant arrays of the generated library, which pads
    im2col filters and packs 16 bytes per channel) from ``code``, a measured ``CodeSize``, else None."""
    return {**flash_parts(arch), "code": code.code if code else None,
            "library_constants": code.constants if code else None}


_MEASURED: dict[str, CodeSize] = {}  # architecture JSON -> its code size (``report --watch`` redraws)


def measured_code(arch: Architecture) -> CodeSize | None:
    """``measure_code(arch)`` when the ARM toolchain is installed, else None; once per architecture
    in a process."""
    if not mcu_available():
        return None
    key = json.dumps(arch.to_json(), sort_keys=True)
    if key not in _MEASURED:
        _MEASURED[key] = measure_code(arch)
    return _MEASURED[key]
