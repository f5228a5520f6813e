"""The arena: every buffer of an execution plan at its offset in one block of SRAM.

``peak_sram_bytes`` -- the figure the search optimizes and ``--max-sram`` bounds -- is the size of
this arena, and the C code generator's memory planner (``tinyevo.deploy.codegen.planner``) declares
the arena of the same function, ``plan_arena``, run on the int8 graph. The plan is the
layer-by-layer schedule (``memory.schedule``) or, streamed, a streamed prefix and the
layer-by-layer rest (``streaming``); its buffers then get offsets (``offsets.assign_offsets``). The
arena is never below the plan's peak (the most bytes live at one step) and equals it whenever some
layout reaches it: the offsets are solved exactly where the first-fit heuristics fall short.

An n-ary add runs as a chain of two-input adds, as the int8 graph has it (``memory.split_adds``):
its partial sums are buffers of their own (rings, when streamed).

Streamed, the plan with the smallest arena is kept among not streaming at all and streaming up to
each candidate cut (ties: layer by layer first, then the earliest cut); a plan's offsets are only
worked out while its peak is below the best arena found, so usually for one plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tinyevo.arch import INPUT, Architecture
from tinyevo.hardware.execution import LAYER_BY_LAYER, SEARCHED, check_execution
from tinyevo.hardware.memory import Schedule, schedule, split_adds
from tinyevo.hardware.offsets import Span, arena_bytes, assign_offsets
from tinyevo.hardware.streaming import StreamPlan, candidate_cuts, plan_for_cut

ACCUMULATOR_ALIGN = 4  # int32 accumulators of a streamed dense layer: word aligned


@dataclass
class Arena:
    """An execution plan with its buffers placed. Buffers of a streamed plan are named
    ``stream:<buffer>`` (step 0, the streaming phase) and ``rest:<buffer>`` (the steps after)."""

    arena_bytes: int  # where its highest buffer ends
    peak_bytes: int  # the plan's peak (most bytes live at one step): no arena can be smaller
    order: list[str]  # ops in execution order (the streamed ones first)
    offsets: dict[str, int]  # buffer -> byte offset
    buffer_bytes: dict[str, int]
    spans: dict[str, Span]  # buffer -> (first step, last step)
    buffer_of: dict[str, str]  # tensor -> its buffer
    scratch_of: dict[str, str] = field(default_factory=dict)  # op -> its scratch (or accumulator) buffer
    schedule: Schedule | None = None  # of the layer-by-layer ops
    stream: StreamPlan | None = None  # the streamed prefix, if any

    def offset(self, tensor: str) -> int:
        return self.offsets[self.buffer_of[tensor]]


def peak_sram_bytes(arch: Architecture, in_place_ops: bool = True,
                    in_place_kernels: bool = SEARCHED.in_place_kernels,
                    execution: str = SEARCHED.execution) -> int:
    """Peak activation SRAM in bytes: the arena of ``plan_arena`` (the generated C's, for the int8
    graph of ``arch``)."""
    return plan_arena(arch, in_place_ops, in_place_kernels, execution).arena_bytes


def plan_arena(arch: Architecture, in_place_ops: bool = True, in_place_kernels: bool = SEARCHED.in_place_kernels,
               execution: str = SEARCHED.execution, order: list[str] | None = None) -> Arena:
    """The plan with the smallest arena: layer by layer in the best order (or in ``order``, a list
    of the op names), or with ``execution="streamed"`` (and no ``order``) the best streamed
    prefix, if one is smaller."""
    check_execution(execution)
    arch = split_adds(arch)
    whole = schedule(arch, in_place_ops=in_place_ops, order=order, in_place_kernels=in_place_kernels)
    if execution == LAYER_BY_LAYER or order is not None:
        return schedule_arena(whole)
    plans: list[Schedule | StreamPlan] = [whole]
    plans += [plan_for_cut(arch, cut, in_place_kernels) for cut in candidate_cuts(arch)]
    best: tuple[int, int, Arena] | None = None
    for index in sorted(range(len(plans)), key=lambda i: (plans[i].peak_bytes, i)):
        if best is not None and (plans[index].peak_bytes, index) >= best[:2]:
            break  # its arena cannot be below its peak
        plan = plans[index]
        arena = schedule_arena(plan) if isinstance(plan, Schedule) else stream_arena(plan)
        if best is None or (arena.arena_bytes, index) < best[:2]:
            best = (arena.arena_bytes, index, arena)
    return best[2]


def schedule_arena(sched: Schedule) -> Arena:
    """The layer-by-layer schedule's buffers placed: step ``i`` is the schedule's ``i``-th op."""
    spans = sched.lifetimes()
    offsets = assign_offsets(sched.buffer_bytes, spans)
    return Arena(arena_bytes(offsets, sched.buffer_bytes), sched.peak_bytes, list(sched.order), offsets,
                 dict(sched.buffer_bytes), spans, dict(sched.buffer_of), dict(sched.scratch_of), sched)


def stream_arena(stream: StreamPlan) -> Arena:
    """A streamed plan's buffers placed. Step 0 is the streaming phase (every ring, the input and
    the cut live); the layer-by-layer rest follows from step 1, its input buffer being the cut's,
    live from step 0 to its last reader."""
    sizes = {f"stream:{b}": n for b, n in stream.buffer_bytes.items()}
    spans = dict.fromkeys(sizes, (0, 0))
    buffer_of = {t: f"stream:{b}" for t, b in stream.buffer_of.items()}
    scratch_of = {op: f"stream:{b}" for op, b in stream.accumulators.items()}
    order, rest = list(stream.nodes), stream.rest
    if rest is not None:
        rest_spans = rest.lifetimes()
        for buffer, size in rest.buffer_bytes.items():
            first, last = rest_spans.get(buffer, (0, 0))
            if buffer == INPUT:  # the cut, whole
                spans[buffer_of[stream.cut]] = (0, last + 1)
            else:
                sizes[f"rest:{buffer}"] = size
                spans[f"rest:{buffer}"] = (first + 1, last + 1)
        for tensor, buffer in rest.buffer_of.items():
            if tensor != INPUT:
                buffer_of[tensor] = buffer_of[stream.cut] if buffer == INPUT else f"rest:{buffer}"
        order += rest.order
        scratch_of.update({op: f"rest:{b}" for op, b in rest.scratch_of.items()})
    align = {f"stream:{b}": ACCUMULATOR_ALIGN for b in stream.accumulators.values()}
    offsets = assign_offsets(sizes, spans, align=align)
    return Arena(arena_bytes(offsets, sizes), stream.peak_bytes, order, offsets, sizes, spans, buffer_of,
                 scratch_of, rest, stream)
