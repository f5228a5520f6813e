"""The memory planner: every activation tensor of a ``QuantizedModel`` gets an offset in one arena.

It computes no lifetimes and no offsets of its own. The int8 graph is written back as an IR graph,
one node per op that runs (``deployed_architecture``: conv + batch norm + relu are one conv2d node,
an n-ary add is a chain of two-input adds, the QUANTIZE a concat needs is done inside the concat
kernel), and ``tinyevo.hardware.arena.plan_arena`` -- what the search's ``peak_sram_bytes`` is --
gives its execution order, buffers, in-place sharing, scratch buffers, lifetimes and offsets.

Agreement with the search: the deployed graph is the searched ``Architecture`` (whose n-ary adds
the cost model splits the same way) with in-place chains merged into one node and aliases
(identity, flatten or pooling of a 1x1 map, an add of zeros) removed, so its arena never exceeds
the searched ``peak_sram_bytes`` with the same settings, and equals it when nothing was removed
(``tests/test_memory_fuzz.py`` checks both on random graphs of every op, in both execution
modes; ``tests/test_memory_planner.py`` on sampled networks of every space). The arena equals the
plan's peak (``MemoryPlan.arena_bytes`` vs ``peak_bytes``) whenever some layout reaches it.

``execution="streamed"`` (the default) runs a prefix of the graph row by row through line buffers
when that makes the arena smaller (``tinyevo.hardware.streaming``): its buffers are live during
one step, the streaming phase, before the layer-by-layer rest, and the cut tensor from that step
to its last reader. ``execution="layer_by_layer"`` never streams.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tinyevo.arch import INPUT, Architecture, Node
from tinyevo.deploy.quantized_model import QuantizedModel, QuantizedOp
from tinyevo.errors import TinyevoError
from tinyevo.hardware.arena import plan_arena
from tinyevo.hardware.execution import DEPLOYED, check_execution
from tinyevo.hardware.memory import Schedule
from tinyevo.hardware.streaming import StreamPlan

REQUANTIZED = ":requantized_for:"


@dataclass
class MemoryPlan:
    """Where every tensor lives and in which order the int8 ops run."""

    arena_bytes: int
    peak_bytes: int  # the schedule's peak: the lower bound of any arena for this order
    order: list[str]  # int8 ops in execution order (QUANTIZE ops fused into a concat left out)
    offsets: dict[str, int]  # tensor -> byte offset in the arena
    tensor_bytes: dict[str, int]
    scratch: dict[str, tuple[int, int]] = field(default_factory=dict)  # op -> (offset, bytes)
    fused: dict[str, str] = field(default_factory=dict)  # requantized tensor -> its source
    in_place_kernels: bool = False
    schedule: Schedule | None = None  # of the layer-by-layer ops (all of them unless streamed)
    stream: StreamPlan | None = None  # the streamed prefix, if any
    rows: dict[str, int] = field(default_factory=dict)  # streamed tensor -> rows its ring keeps

    @property
    def streamed_ops(self) -> list[str]:
        return self.stream.nodes if self.stream else []

    def source(self, tensor: str) -> str:
        """The tensor a kernel reads for ``tensor`` (a fused QUANTIZE reads its source)."""
        return self.fused.get(tensor, tensor)

    def writes_over_input(self, op: QuantizedOp) -> bool:
        """Whether ``op`` writes its output over one of its inputs."""
        return any(self.offsets[self.source(s)] == self.offsets[op.name] for s in op.inputs)

    def to_json(self) -> dict:
        return {"arena_bytes": self.arena_bytes, "peak_bytes": self.peak_bytes, "order": self.order,
                "offsets": self.offsets, "tensor_bytes": self.tensor_bytes,
                "scratch": {op: list(span) for op, span in self.scratch.items()},
                "in_place_kernels": self.in_place_kernels,
                "schedule_search": self.schedule.search if self.schedule else None,
                "streamed": self.stream.to_json() if self.stream else None}


def plan_memory(qmodel: QuantizedModel, in_place_kernels: bool = DEPLOYED.in_place_kernels,
                order: list[str] | None = None, execution: str = DEPLOYED.execution) -> MemoryPlan:
    """The static memory plan of ``qmodel``: ``tinyevo.hardware.arena.plan_arena`` of its int8
    graph -- the best order of ``tinyevo.hardware.memory.schedule`` (or ``order``, a list of its
    op names), with ``execution="streamed"`` and no ``order`` a streamed prefix where that makes
    the arena smaller -- with every tensor at its buffer's offset."""
    check_execution(execution)
    fused = fused_requantizations(qmodel)
    arena = plan_arena(deployed_architecture(qmodel), in_place_kernels=in_place_kernels,
                       execution=execution, order=order)
    offsets = {t: arena.offset(t) for t in arena.buffer_of}
    sizes = {t: _bytes(qmodel.tensors[t].shape) for t in arena.buffer_of}
    scratch = {op: (arena.offsets[b], arena.buffer_bytes[b]) for op, b in arena.scratch_of.items()}
    stream = arena.stream
    rows = {t: stream.rows[b] for t, b in stream.buffer_of.items()} if stream else {}
    return MemoryPlan(arena.arena_bytes, arena.peak_bytes, arena.order, offsets, sizes, scratch, fused,
                      in_place_kernels, arena.schedule, stream, rows)


def fused_requantizations(qmodel: QuantizedModel) -> dict[str, str]:
    """QUANTIZE ops that only feed a concat (the concat kernel requantizes): tensor -> source."""
    readers: dict[str, set[str]] = {}
    for op in qmodel.ops:
        for source in op.inputs:
            readers.setdefault(source, set()).add(op.kind)
    return {op.name: op.inputs[0] for op in qmodel.ops
            if op.kind == "quantize" and readers.get(op.name) == {"concatenation"}
            and op.name != qmodel.output}


def deployed_architecture(qmodel: QuantizedModel) -> Architecture:
    """The int8 graph as an IR graph, one node per op that runs, named after its output tensor."""
    fused = fused_requantizations(qmodel)
    nodes = [_node(op, qmodel, fused) for op in qmodel.ops if op.name not in fused]
    if qmodel.input != INPUT:
        raise TinyevoError(f"the model's input tensor must be named {INPUT!r}, got {qmodel.input!r}")
    arch = Architecture(qmodel.input_spec.shape[1:], nodes, qmodel.output, name=qmodel.name)
    for node in nodes:
        if arch.shapes[node.name] != tuple(qmodel.tensors[node.name].shape[1:]):
            raise TinyevoError(f"op {node.name!r}: the int8 tensor's shape does not match its op; "
                               f"re-run quantize() on the architecture")
    return arch


def _node(op: QuantizedOp, qmodel: QuantizedModel, fused: dict[str, str]) -> Node:
    """The IR node with the op's memory behaviour (in place or not, scratch or not)."""
    inputs = tuple(fused.get(s, s) for s in op.inputs)
    attrs = op.attrs
    window = {k: tuple(attrs[k]) for k in ("kernel", "stride") if k in attrs}
    if op.kind in ("conv_2d", "depthwise_conv_2d"):
        return _conv_node(op, inputs, qmodel, window)
    if op.kind == "fully_connected":
        return Node(op.name, "dense", inputs, {"units": int(op.weights.shape[0])})
    if op.kind in ("max_pool_2d", "average_pool_2d"):
        kind = "max_pool" if op.kind == "max_pool_2d" else "avg_pool"
        return Node(op.name, kind, inputs, {**window, "padding": attrs["padding"]})
    if op.kind in ("add", "relu", "relu6"):
        return Node(op.name, op.kind, inputs)
    if op.kind == "concatenation":
        return Node(op.name, "concat", inputs)
    if op.kind in ("reshape", "quantize"):
        flat = qmodel.tensors[op.name].shape[1:3] == [1, 1]
        return Node(op.name, "flatten" if flat and op.kind == "reshape" else "identity", inputs)
    raise TinyevoError(f"op {op.name!r}: kind {op.kind!r} has no C kernel")


def _conv_node(op: QuantizedOp, inputs: tuple[str, ...], qmodel: QuantizedModel, window: dict) -> Node:
    channels = qmodel.tensors[inputs[0]].shape[3]
    out_channels = qmodel.tensors[op.name].shape[3]
    if op.kind == "depthwise_conv_2d" and is_element_wise(op, channels, out_channels):
        return Node(op.name, "batch_norm", inputs)  # a per-channel scale and offset: in place
    groups = channels if op.kind == "depthwise_conv_2d" else op.attrs.get("groups", 1)
    attrs = {**window, "padding": op.attrs["padding"], "dilation": tuple(op.attrs.get("dilation", (1, 1))),
             "groups": groups, "out_channels": out_channels}
    return Node(op.name, "conv2d", inputs, attrs)


def is_element_wise(op: QuantizedOp, channels: int, out_channels: int) -> bool:
    """A 1x1, stride-1 depthwise conv with multiplier 1 (a batch norm that could not fold, or a
    tensor of zeros): each output value depends on the same input value only."""
    return (list(op.attrs["kernel"]) == [1, 1] and list(op.attrs["stride"]) == [1, 1]
            and channels == out_channels)


def _bytes(shape) -> int:
    total = 1
    for size in shape[1:]:
        total *= int(size)
    return total
