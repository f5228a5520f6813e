"""Streamed execution: the first ops of a network run row by row through small line buffers.

Layer by layer, an op needs its whole input and its whole output in SRAM at once, so the first,
high-resolution layers set the peak (MCUNetV2, Lin et al. 2021). Streamed, the ops of a *prefix* of
the graph (convolutions, depthwise convolutions, poolings, adds, concatenations, the element-wise
ops, and a dense layer on a flattened map, which sums each row's share of its dot products in
int32 accumulators) run interleaved, one output row at a time: a tensor inside the prefix keeps only the rows its
readers still need (a ring of ``rows`` rows; row ``r`` lives in slot ``r % rows``), no row is
computed twice. The prefix ends at a *cut*, a tensor that separates the graph: it is kept whole, and
the rest of the network runs layer by layer from it (``tinyevo.hardware.memory.schedule``). The
graph input is kept whole too (it is what the caller hands over).

The row schedule is demand driven, the same in this model and in the generated C
(``tinyevo.deploy.codegen``): for each row ``s`` of the cut, in reverse topological order every
streamed tensor is asked for the last row its readers need (``last_row_needed``); then sweeps over
the streamed ops in topological order let each compute one more row when one is due and its input
rows are written, until none can (``row_schedule``). Each ring's size is the
largest distance between a row still to be read and the newest row written, found by running that
schedule (``ring_rows``). The SRAM of the streaming phase is the sum of the rings, the input and the
cut; the peak is the larger of that and the peak of the layer-by-layer rest. ``tinyevo.hardware.arena``
tries every cut (none included: then it is the layer-by-layer schedule) and keeps the plan with the
smallest arena.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tinyevo.arch import INPUT, OPS, Architecture, Node, same_padding
from tinyevo.hardware.execution import SEARCHED
from tinyevo.hardware.memory import Schedule, live_readers, schedule, tensor_bytes

WINDOW_OPS = {"conv2d", "max_pool", "avg_pool"}
ROW_OPS = {"add", "concat", "relu", "relu6", "batch_norm", "identity", "zero"}


@dataclass(frozen=True)
class Window:
    """Which input rows an op's output row reads: ``oy * stride - pad_top + ky * dilation``."""

    kernel: int = 1
    stride: int = 1
    dilation: int = 1
    pad_top: int = 0

    def first(self, row: int) -> int:
        return row * self.stride - self.pad_top

    def last(self, row: int) -> int:
        return row * self.stride - self.pad_top + (self.kernel - 1) * self.dilation


def window_of(node: Node, input_height: int) -> Window:
    """The rows of its input an op reads per output row (row-local ops read the same row)."""
    if node.op not in WINDOW_OPS:
        return Window()
    kh, sh = node.attrs["kernel"][0], node.attrs["stride"][0]
    dh = node.attrs.get("dilation", (1, 1))[0]
    top = same_padding(input_height, kh, sh, dh)[0] if node.attrs["padding"] == "same" else 0
    return Window(kh, sh, dh, top)


def streamable(node: Node, arch: Architecture, readers: dict[str, list[str]] | None = None) -> bool:
    """Window and row-local ops; a flatten read only by accumulating dense layers; those.
    ``readers``: ``live_readers(arch)`` (nodes the output does not depend on read nothing)."""
    if node.op == "flatten":  # a view of its source, which it must be the only one to read
        readers = readers if readers is not None else live_readers(arch)
        return (node.inputs[0] != INPUT and readers[node.inputs[0]] == [node.name] and bool(readers[node.name])
                and all(accumulates(arch.by_name[r], arch) for r in readers[node.name]))
    return node.op in WINDOW_OPS or node.op in ROW_OPS or accumulates(node, arch)


def accumulates(node: Node, arch: Architecture) -> bool:
    """A dense layer on a flattened feature map taller than one row: it can take the map row by
    row, summing each row's share of its dot products in int32 accumulators (one per unit)."""
    pointwise = (node.op == "conv2d" and node.attrs["kernel"] == (1, 1) and node.attrs["groups"] == 1
                 and arch.shapes[node.inputs[0]][:2] == (1, 1))  # a dense layer as the int8 graph has it
    source = arch.by_name.get(node.inputs[0]) if node.op == "dense" or pointwise else None
    return source is not None and source.op == "flatten" and arch.shapes[source.inputs[0]][0] > 1


@dataclass
class StreamPlan:
    """Where streaming stops, the ring of every streamed buffer, and the layer-by-layer rest."""

    cut: str  # the tensor the streamed ops produce whole; INPUT when nothing is streamed
    nodes: list[str]  # the streamed ops, in topological order
    buffer_of: dict[str, str]  # streamed tensor (and the input) -> its buffer (in-place ops share)
    rows: dict[str, int]  # buffer -> rows it keeps (its height when whole)
    buffer_bytes: dict[str, int]
    windows: dict[str, Window] = field(default_factory=dict)  # streamed op -> its window
    heights: dict[str, int] = field(default_factory=dict)  # streamed tensor -> rows it is made in
    accumulators: dict[str, str] = field(default_factory=dict)  # accumulating dense -> its int32 buffer
    readers: dict[str, list[str]] = field(default_factory=dict)  # streamed tensor -> streamed readers
    rest: Schedule | None = None  # the ops after the cut, layer by layer (the cut is their input)

    @property
    def stream_bytes(self) -> int:
        return sum(self.buffer_bytes.values())

    @property
    def peak_bytes(self) -> int:
        return max(self.stream_bytes, self.rest.peak_bytes if self.rest else 0)

    @property
    def streamed(self) -> bool:
        return bool(self.nodes)

    def to_json(self) -> dict:
        return {"cut": self.cut, "streamed_ops": self.nodes, "rows": self.rows,
                "buffer_bytes": self.buffer_bytes, "stream_bytes": self.stream_bytes,
                "rest_peak_bytes": self.rest.peak_bytes if self.rest else 0, "peak_bytes": self.peak_bytes}


def candidate_cuts(arch: Architecture) -> list[str]:
    """Tensors that separate the graph: everything they depend on streams and is read only by
    nodes they depend on (so once the cut is whole, nothing before it is needed)."""
    nodes = arch.live_nodes()
    readers = live_readers(arch)
    streams = {n.name for n in nodes if streamable(n, arch, readers)}
    accumulating = {n.name for n in nodes if accumulates(n, arch)}
    ancestors: dict[str, set[str]] = {INPUT: set()}
    cuts = []
    for node in nodes:
        ancestors[node.name] = {node.name}.union(*(ancestors[s] for s in node.inputs))
        prefix = ancestors[node.name]
        if not prefix <= streams or (prefix - {node.name}) & accumulating:
            continue  # an op that cannot stream, or past an accumulating dense layer (it ends a prefix)
        if all(set(readers[t]) <= prefix for t in (prefix - {node.name}) | {INPUT}):
            cuts.append(node.name)
    return cuts


def plan_for_cut(arch: Architecture, cut: str, in_place_kernels: bool = SEARCHED.in_place_kernels) -> StreamPlan:
    """The streamed plan that cuts at ``cut`` (one of ``candidate_cuts``)."""
    readers = live_readers(arch)
    order = arch.live_nodes()
    names = {n.name for n in order}
    prefix_names = arch.ancestors(cut)
    prefix = [n for n in order if n.name in prefix_names]
    buffer_of = {INPUT: INPUT}
    for node in prefix:  # an element-wise op that is its input's only reader writes over it
        shared = ((OPS[node.op].in_place or _channel_scale(node, arch)) and len(node.inputs) == 1
                  and node.name != cut and readers[node.inputs[0]] == [node.name] and node.inputs[0] != INPUT)
        buffer_of[node.name] = buffer_of[node.inputs[0]] if shared else node.name
    heights = {t: arch.shapes[t][0] for t in buffer_of}
    for node in prefix:  # a flatten and its dense layer are made in the rows of the flattened map
        if node.op == "flatten" or accumulates(node, arch):
            heights[node.name] = heights[node.inputs[0]]
    windows = {n.name: window_of(n, arch.shapes[n.inputs[0]][0]) for n in prefix}
    stream_readers = {t: [r for r in readers[t] if r in prefix_names] for t in buffer_of}
    rows = ring_rows(prefix, cut, buffer_of, heights, windows, stream_readers)
    rows[INPUT] = heights[INPUT]
    rows[buffer_of[cut]] = heights[cut]
    rows = {b: min(n, arch.shapes[b][0]) for b, n in rows.items()}  # a dense output is one row
    row_bytes = {b: tensor_bytes(arch.shapes[b]) // arch.shapes[b][0] for b in rows}
    sizes = {b: rows[b] * row_bytes[b] for b in rows}
    accumulators = {n.name: f"{n.name}:accumulator" for n in prefix if accumulates(n, arch)}
    for name, buffer in accumulators.items():
        sizes[buffer] = 4 * arch.shapes[name][2]
    rest = None
    if cut != arch.output:
        rest = schedule(rest_architecture(arch, cut, names - prefix_names), in_place_kernels=in_place_kernels)
    return StreamPlan(cut, [n.name for n in prefix], buffer_of, rows, sizes, windows, heights,
                      accumulators, stream_readers, rest)


def _channel_scale(node: Node, arch: Architecture) -> bool:
    """A 1x1, stride-1 depthwise conv with multiplier 1: each value depends on itself only (the
    int8 graph has it as a batch norm that runs in place)."""
    channels = arch.shapes[node.inputs[0]][2] if node.inputs else 0
    return (node.op == "conv2d" and node.attrs["kernel"] == (1, 1) and node.attrs["stride"] == (1, 1)
            and node.attrs["groups"] == channels == arch.shapes[node.name][2] > 1)


def rest_architecture(arch: Architecture, cut: str, rest: set[str]) -> Architecture:
    """The ops after the cut as an architecture of their own whose input is the cut."""
    nodes = [Node(n.name, n.op, tuple(INPUT if s == cut else s for s in n.inputs), n.attrs)
             for n in arch.live_nodes() if n.name in rest]
    return Architecture(arch.shapes[cut], nodes, arch.output, name=arch.name)


def last_row_needed(plan_windows: dict[str, Window], readers: list[str], wanted: dict[str, int],
                    height: int) -> int:
    """The last row of a tensor its streamed readers need once reader ``r`` is to reach row
    ``wanted[r]``: the formula the generated C evaluates too."""
    return min(height - 1, max(plan_windows[r].last(wanted[r]) for r in readers))


def row_schedule(prefix: list[Node], cut: str, heights: dict[str, int], windows: dict[str, Window],
                 readers: dict[str, list[str]]):
    """The streamed ops' row computations in the order they run: (op, row) pairs. For each row
    ``step`` of the cut, every op is given the last row it must reach (``last_row_needed``, in
    reverse order); then sweeps over the ops in topological order each compute one row where one
    is due and its input rows are all written (``inputs_ready``), until no op can: a producer runs
    only as far ahead of its readers as they need, which keeps the rings short."""
    done = {n.name: -1 for n in prefix}
    for step in range(heights[cut]):
        wanted = {cut: step}
        for node in reversed(prefix):
            if node.name != cut:
                wanted[node.name] = last_row_needed(windows, readers[node.name], wanted, heights[node.name])
        progress = True
        while progress:
            progress = False
            for node in prefix:
                row = done[node.name] + 1
                if row <= wanted[node.name] and inputs_ready(node, row, windows, heights, done):
                    done[node.name] = row
                    progress = True
                    yield node, row


def inputs_ready(node: Node, row: int, windows: dict[str, Window], heights: dict[str, int],
                 done: dict[str, int]) -> bool:
    """Whether every input row that ``row`` of ``node`` reads is written (the input is whole)."""
    return all(source == INPUT or done[source] >= min(heights[source] - 1, windows[node.name].last(row))
               for source in node.inputs)


def ring_rows(prefix: list[Node], cut: str, buffer_of: dict[str, str], heights: dict[str, int],
              windows: dict[str, Window], readers: dict[str, list[str]]) -> dict[str, int]:
    """Rows each streamed buffer must keep: 1 + the largest ``r2 - r1`` such that row ``r2`` is
    written while row ``r1`` is still to be read. Every read is checked to find its row."""
    written: dict[str, dict[int, int]] = {}
    last_read: dict[str, dict[int, int]] = {}
    for event, (node, row) in enumerate(row_schedule(prefix, cut, heights, windows, readers)):
        window = windows[node.name]
        for source in node.inputs:
            buffer = buffer_of[source]
            first = max(0, window.first(row))
            last = min(heights[source] - 1, window.last(row))
            for r in range(first, last + 1):
                if source != INPUT and r not in written.get(buffer, {}):
                    raise AssertionError(f"internal error: {node.name} row {row} reads row {r} of "
                                         f"{source} before it is written")
                last_read.setdefault(buffer, {})[r] = event
        buffer = buffer_of[node.name]
        written.setdefault(buffer, {}).setdefault(row, event)
    rows = {}
    for buffer, writes in written.items():
        reads = last_read.get(buffer, {})
        times = sorted(writes.items())
        span = 1
        for r1, _ in times:
            end = reads.get(r1, writes[r1])
            span = max([span] + [r2 - r1 + 1 for r2, w2 in times if r2 > r1 and w2 < end])
        rows[buffer] = min(span, heights[buffer])
    return rows
