"""Execution schedule and peak SRAM: which activation buffers are live at each step.

The search's ``peak_sram_bytes`` and the deploy memory planner both place the buffers of
``schedule`` in one arena (``tinyevo.hardware.arena``), so the figure a search optimizes is the
arena the firmware needs. The model:

- every tensor is int8 and takes ``height * width * channels`` bytes; the graph input counts;
- an op with ``OPS[op].in_place`` (relu, relu6, batch_norm, flatten, identity, zero) writes over
  its input when no other op reads that input (fusion), so it needs no buffer; any other op writes
  a buffer of its own;
- a buffer is live from its producer's step (the input: from step 0) to its last reader's step,
  inclusive; the graph output stays live to the end. At a step, the live set is every buffer
  already written and still needed (the step's inputs included) plus the step's output;
- the peak is the largest live set over the steps. For graphs with branches the execution order
  matters: ``schedule`` finds the topological order with the lowest peak by dynamic programming over
  the sets of executed nodes (as uNAS and Serenity do), with the best order found greedily as a
  bound; past ``max_states`` sets it keeps the greedy order and says so in ``Schedule.note``.

Only nodes the output depends on are scheduled (``Architecture.live_nodes``). The cost model
schedules an n-ary add as the chain of two-input adds the int8 graph runs (``split_adds``).

``in_place_kernels=True`` (off by default, as ``execution.SEARCHED`` counts: the search's default
figures) adds the in-place kernels of the C code generator (``tinyevo.deploy.codegen``),
TinyEngine-style:

- an add writes over the first of its inputs that no other op reads (element-wise, so safe);
- a depthwise conv2d (groups = in = out channels) and a 1x1, stride-1 conv2d whose output has its
  input's shape write over their input when nothing else reads it. They need a scratch buffer while
  they run (the depthwise kernel copies one input channel, height x width bytes, unless its kernel is
  1x1; the 1x1 conv one output pixel, channels bytes): ``Schedule.scratch_of`` names it, and it is
  live at that step only, so the peak counts it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tinyevo.arch import INPUT, OPS, Architecture, Node, Shape
from tinyevo.errors import TinyevoError
from tinyevo.hardware.execution import SEARCHED

MAX_STATES = 200_000


@dataclass(frozen=True)
class Step:
    """One op of the schedule and the buffers that occupy SRAM while it runs."""

    node: str
    live_bytes: int
    live_buffers: tuple[str, ...]
    output_buffer: str


@dataclass
class Schedule:
    """An execution order with its memory use. Buffers are named after the tensor that first writes them."""

    order: list[str]
    peak_bytes: int
    steps: list[Step]
    buffer_of: dict[str, str]
    buffer_bytes: dict[str, int]
    search: str  # "exhaustive", "greedy" (search capped) or "given" (order passed in)
    states: int = 0
    note: str = ""
    scratch_of: dict[str, str] = field(default_factory=dict)  # node -> its scratch buffer

    def lifetimes(self) -> dict[str, tuple[int, int]]:
        """Buffer -> (first step, last step) during which it is live, both inclusive."""
        spans: dict[str, tuple[int, int]] = {}
        for index, step in enumerate(self.steps):
            for buffer in step.live_buffers:
                spans[buffer] = (spans.get(buffer, (index, index))[0], index)
        return spans

    def to_dict(self) -> dict:
        return asdict(self)


def tensor_bytes(shape: Shape) -> int:
    """Bytes of an int8 tensor."""
    return shape[0] * shape[1] * shape[2]


def live_readers(arch: Architecture) -> dict[str, list[str]]:
    """Tensor -> the live nodes that read it (a node reading a tensor twice is listed twice)."""
    return {tensor: list(names) for tensor, names in shared_live_readers(arch).items()}


def shared_live_readers(arch: Architecture) -> dict[str, list[str]]:
    """``live_readers``, worked out once per architecture and shared: only to read."""
    return arch.kept("live_readers", _live_readers)


def _live_readers(arch: Architecture) -> dict[str, list[str]]:
    nodes = arch.live_nodes()
    readers: dict[str, list[str]] = {INPUT: [], **{n.name: [] for n in nodes}}
    for node in nodes:
        for source in node.inputs:
            readers[source].append(node.name)
    return readers


def partial_sum_name(add: str, k: int) -> str:
    """The tensor holding the sum of the first ``k + 1`` inputs of an n-ary add (chained adds)."""
    return f"{add}:partial{k}"


def split_adds(arch: Architecture) -> Architecture:
    """``arch`` with every add of more than two inputs as a chain of two-input adds, the way the
    int8 graph runs it (``tinyevo.deploy.quantize``): ``add(a, b, c)`` is ``add(add(a, b), c)``,
    the inner sum named ``partial_sum_name(add, 1)``. ``arch`` itself when it has none."""
    if all(n.op != "add" or len(n.inputs) <= 2 for n in arch.nodes):
        return arch
    nodes = []
    for node in arch.nodes:
        if node.op != "add" or len(node.inputs) <= 2:
            nodes.append(node)
            continue
        total = node.inputs[0]
        for k, source in enumerate(node.inputs[1:-1], start=1):
            nodes.append(Node(partial_sum_name(node.name, k), "add", (total, source)))
            total = nodes[-1].name
        nodes.append(Node(node.name, "add", (total, node.inputs[-1]), node.attrs))
    return Architecture(arch.input_shape, nodes, arch.output, name=arch.name, meta=arch.meta,
                        frontend=arch.frontend)


def schedule(arch: Architecture, in_place_ops: bool = True, order: list[str] | None = None,
             max_states: int = MAX_STATES,
             in_place_kernels: bool = SEARCHED.in_place_kernels) -> Schedule:
    """The execution order with the lowest peak SRAM (or the memory use of ``order``, if given)."""
    graph = _Graph(arch, in_place_ops, in_place_kernels)
    if order is not None:
        return graph.to_schedule(graph.check_order(order), "given")
    greedy = graph.greedy()
    if not graph.branched and graph.n + 1 <= max_states:  # one order only (a chain): the search
        # below would find it, in n + 1 executed sets
        return graph.to_schedule(greedy, "exhaustive", graph.n + 1)
    found = graph.exhaustive(max_states, bound=graph.peak_of(greedy))
    if found is None:
        note = (f"exhaustive search stopped at {max_states} states; the order is greedy and its "
                f"peak may be above the best")
        return graph.to_schedule(greedy, "greedy", max_states, note)
    best, states = found
    return graph.to_schedule(best, "exhaustive", states)


class _Graph:
    """The live nodes as bit positions, and the buffers each one reads and writes."""

    def __init__(self, arch: Architecture, in_place_ops: bool, in_place_kernels: bool = False):
        nodes = arch.live_nodes()
        self.names = [n.name for n in nodes]
        self.n = len(nodes)
        index = {name: i for i, name in enumerate(self.names)}
        readers = shared_live_readers(arch)
        self.buffer_of = {INPUT: INPUT}
        for node in nodes:
            self.buffer_of[node.name] = _buffer_for(node, readers, self.buffer_of, in_place_ops)
            if in_place_kernels and self.buffer_of[node.name] == node.name:
                source = in_place_kernel_source(arch, node, readers)
                self.buffer_of[node.name] = self.buffer_of[source] if source else node.name
        self.scratch = {n.name: in_place_scratch_bytes(arch, n) for n in nodes
                        if in_place_kernels and self.buffer_of[n.name] != n.name}
        self.buffers = [INPUT, *dict.fromkeys(self.buffer_of[n] for n in self.names if
                                              self.buffer_of[n] == n)]
        self.bytes = {b: tensor_bytes(arch.shapes[b]) for b in self.buffers}
        self.produced_by = {b: 0 if b == INPUT else 1 << index[b] for b in self.buffers}
        self.reader_mask = dict.fromkeys(self.buffers, 0)
        for tensor, names in readers.items():
            for name in names:
                self.reader_mask[self.buffer_of[tensor]] |= 1 << index[name]
        self.reader_mask[self.buffer_of[arch.output]] |= 1 << self.n  # never executed: kept to the end
        self.preds = [_mask(index[s] for s in n.inputs if s != INPUT) for n in nodes]
        self.succs = [_mask(index[r] for r in readers[n.name]) for n in nodes]
        self.new_bytes = [self.bytes[n] if self.buffer_of[n] == n else 0 for n in self.names]
        self.step_bytes = [new + self.scratch.get(n, 0) for new, n in zip(self.new_bytes, self.names)]
        self.touched = [{self.buffer_of[s] for s in n.inputs} | {self.buffer_of[n.name]} for n in nodes]

    # --- memory of a set of executed nodes -----------------------------------------------------
    def live_bytes(self, done: int) -> int:
        return sum(self.bytes[b] for b in self.live_buffers(done))

    def live_buffers(self, done: int) -> list[str]:
        """Buffers written (the input counts as written) and still needed once ``done`` has run."""
        return [b for b in self.buffers
                if (done & self.produced_by[b]) == self.produced_by[b] and self.reader_mask[b] & ~done]

    def after(self, done: int, live: int, v: int) -> int:
        """Live bytes once node ``v`` has run after ``done`` (whose live bytes are ``live``)."""
        now = done | 1 << v
        freed = sum(self.bytes[b] for b in self.touched[v] if not self.reader_mask[b] & ~now)
        return live + self.new_bytes[v] - freed

    def ready(self, done: int, was_ready: int, v: int) -> int:
        """Nodes ready once ``v`` has run, given those that were ready before."""
        now, ready = done | 1 << v, was_ready & ~(1 << v)
        for u in _bits(self.succs[v]):
            if not self.preds[u] & ~now:
                ready |= 1 << u
        return ready

    def initial_ready(self) -> int:
        return _mask(i for i in range(self.n) if not self.preds[i])

    # --- orders --------------------------------------------------------------------------------
    def greedy(self) -> list[int]:
        """Run the ready node with the smallest step peak (then smallest live set, then listed first)."""
        done, live, ready, order = 0, self.live_bytes(0), self.initial_ready(), []
        self.branched = False  # whether some step had a choice of nodes
        while ready:
            if ready & (ready - 1):
                self.branched = True
            v = min(_bits(ready), key=lambda u: (live + self.step_bytes[u], self.after(done, live, u), u))
            live, ready = self.after(done, live, v), self.ready(done, ready, v)
            done = done | 1 << v
            order.append(v)
        return order

    def exhaustive(self, max_states: int, bound: int) -> tuple[list[int], int] | None:
        """Lowest-peak order by DP over executed sets, layer by layer; None past ``max_states``."""
        best = {0: (0, -1, -1)}  # executed set -> (lowest peak to reach it, previous set, last node)
        layer = {0: (self.live_bytes(0), self.initial_ready())}
        for _ in range(self.n):
            following: dict[int, tuple[int, int]] = {}
            for done, (live, ready) in layer.items():
                for v in self.moves(done, live, ready, best[done][0]):
                    peak = max(best[done][0], live + self.step_bytes[v])
                    now = done | 1 << v
                    if peak > bound or (now in best and best[now][0] <= peak):
                        continue
                    best[now] = (peak, done, v)
                    if now not in following:
                        following[now] = (self.after(done, live, v), self.ready(done, ready, v))
                    if len(best) > max_states:
                        return None
            layer = following
        return _trace(best, (1 << self.n) - 1), len(best)

    def moves(self, done: int, live: int, ready: int, peak: int):
        """The nodes worth trying next from ``done``: a ready node whose step fits under the peak
        so far and that frees at least what it writes (an in-place op or add, an add or concat of
        dead inputs) alone, else every ready node. Running such a node at once is never worse:
        its step stays under the peak, and every later live set is the same or smaller (what it
        frees goes sooner, what it writes is no more). Without this rule multi-branch cells
        (chains of conv, batch norm and relu side by side) have too many executed sets."""
        for v in _bits(ready):
            if live + self.step_bytes[v] <= max(peak, live) and self.after(done, live, v) <= live:
                return (v,)
        return _bits(ready)

    def peak_of(self, order: list[int]) -> int:
        done, live, peak = 0, self.live_bytes(0), 0
        for v in order:
            peak = max(peak, live + self.step_bytes[v])
            live, done = self.after(done, live, v), done | 1 << v
        return peak

    def check_order(self, names: list[str]) -> list[int]:
        index = {name: i for i, name in enumerate(self.names)}
        if sorted(names) != sorted(self.names):
            raise TinyevoError(f"the order must list each live node once: {', '.join(self.names)}")
        done = 0
        for name in names:
            if self.preds[index[name]] & ~done:
                raise TinyevoError(f"node {name!r} is scheduled before one of its inputs")
            done |= 1 << index[name]
        return [index[name] for name in names]

    def to_schedule(self, order: list[int], search: str, states: int = 0, note: str = "") -> Schedule:
        steps, done = [], 0
        scratch_of = {name: f"{name}:scratch" for name, size in self.scratch.items() if size}
        sizes = {**self.bytes, **{scratch_of[n]: self.scratch[n] for n in scratch_of}}
        for v in order:
            name = self.names[v]
            held = self.live_buffers(done)
            held += [self.buffer_of[name]] if self.buffer_of[name] not in held else []
            held += [scratch_of[name]] if name in scratch_of else []
            steps.append(Step(name, sum(sizes[b] for b in held), tuple(held), self.buffer_of[name]))
            done |= 1 << v
        peak = max((s.live_bytes for s in steps), default=self.live_bytes(0))
        return Schedule([self.names[v] for v in order], peak, steps,
                        dict(self.buffer_of), sizes, search, states, note, scratch_of)


def _buffer_for(node, readers: dict[str, list[str]], buffer_of: dict[str, str], in_place_ops: bool) -> str:
    """The buffer a node writes: its input's, for an in-place op that is that input's only reader."""
    if in_place_ops and OPS[node.op].in_place and len(node.inputs) == 1:
        source = node.inputs[0]
        if readers[source] == [node.name]:
            return buffer_of[source]
    return node.name


def in_place_kernel_source(arch: Architecture, node, readers: dict[str, list[str]]) -> str | None:
    """The input an in-place kernel of ``node`` may overwrite (``in_place_kernels``), or None."""
    if node.op == "add":
        return next((s for s in node.inputs if set(readers[s]) == {node.name}), None)
    source = node.inputs[0]
    if node.op != "conv2d" or readers[source] != [node.name] or arch.shapes[node.name] != arch.shapes[source]:
        return None
    attrs, channels = node.attrs, arch.shapes[source][2]
    depthwise = attrs["groups"] == channels > 1
    pixelwise = attrs["groups"] == 1 and attrs["kernel"] == (1, 1) and attrs["stride"] == (1, 1)
    return source if depthwise or pixelwise else None


def in_place_scratch_bytes(arch: Architecture, node) -> int:
    """Scratch an in-place kernel needs: one input channel (depthwise, kernel above 1x1), one
    output pixel (1x1 conv), nothing for element-wise ops."""
    if node.op != "conv2d" or node.attrs["kernel"] == (1, 1) and node.attrs["groups"] > 1:
        return 0
    height, width, channels = arch.shapes[node.name]
    return channels if node.attrs["kernel"] == (1, 1) else height * width


def _trace(best: dict[int, tuple[int, int, int]], done: int) -> list[int]:
    order = []
    while done:
        _, done, v = best[done]
        order.append(v)
    return order[::-1]


def _mask(indices) -> int:
    mask = 0
    for i in indices:
        mask |= 1 << i
    return mask


def _bits(mask: int):
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low
