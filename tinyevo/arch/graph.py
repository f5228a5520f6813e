"""The architecture IR: a framework-free graph of ops with static shapes.

``Architecture`` is what every part of tinyevo reads: the PyTorch builder, the cost model, the
quantizer and the exporters. It is validated when made, so an ``Architecture`` object always runs.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from tinyevo.arch.ops import OPS, Shape
from tinyevo.errors import InvalidArchitecture

INPUT = "input"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Node:
    """One op applied to the outputs of earlier nodes (or of ``"input"``)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict = field(default_factory=dict, hash=False)

    def to_json(self) -> dict:
        attrs = {k: list(v) if isinstance(v, tuple) else v for k, v in self.attrs.items()}
        return {"name": self.name, "op": self.op, "inputs": list(self.inputs), "attrs": attrs}


class Architecture:
    """A validated graph: nodes in execution order, each output shape known.

    ``frontend`` (None for most networks) is the preprocessing stage in front of the graph: a JSON
    object that another layer reads (``tinyevo.audio.features``: an audio front-end's settings and
    how its features are laid out as ``input_shape``). The IR only keeps it: it survives JSON and
    model files and is part of the fingerprint, so two candidates that differ only in their
    front-end are different candidates."""

    def __init__(self, input_shape: Iterable[int], nodes: Iterable[Node], output: str | None = None,
                 name: str = "", meta: dict | None = None, frontend: dict | None = None):
        self._start(_shape(input_shape), name, meta, frontend)
        self.nodes: list[Node] = []
        self.shapes: dict[str, Shape] = {INPUT: self.input_shape}
        for node in nodes:
            self.nodes.append(check_node(node, self.shapes))
        self._finish(output)

    @classmethod
    def _of_checked(cls, input_shape: Shape, nodes: list[Node], shapes: dict[str, Shape],
                    output: str | None, name: str, meta: dict | None, frontend: dict | None) -> "Architecture":
        """The architecture of ``nodes`` that ``check_node`` already checked in order (their
        output shapes in ``shapes``): ``GraphBuilder.build``, without checking each node again."""
        arch = cls.__new__(cls)
        arch._start(input_shape, name, meta, frontend)
        arch.nodes, arch.shapes = list(nodes), dict(shapes)
        arch._finish(output)
        return arch

    def _start(self, input_shape: Shape, name: str, meta: dict | None, frontend: dict | None) -> None:
        self.input_shape: Shape = input_shape
        self.name = name
        self.meta = dict(meta or {})
        if frontend is not None and not isinstance(frontend, dict):
            raise InvalidArchitecture(f"frontend must be a JSON object of settings or absent, got {frontend!r:.60}")
        self.frontend = json.loads(json.dumps(frontend)) if frontend is not None else None

    def _finish(self, output: str | None) -> None:
        if not self.nodes:
            raise InvalidArchitecture("the architecture has no ops: add at least one node")
        self.output = output if output is not None else self.nodes[-1].name
        if self.output not in self.shapes:
            raise InvalidArchitecture(f"output {self.output!r} is not a node of the architecture")
        self.by_name = {n.name: n for n in self.nodes}
        self._kept: dict[str, object] = {}  # ``kept``'s figures

    # --- queries -------------------------------------------------------------------------------
    def input_shapes(self, node: Node) -> list[Shape]:
        return [self.shapes[s] for s in node.inputs]

    @property
    def output_shape(self) -> Shape:
        return self.shapes[self.output]

    def consumers(self) -> dict[str, list[str]]:
        """Which nodes read each tensor (the input included)."""
        readers: dict[str, list[str]] = {INPUT: [], **{n.name: [] for n in self.nodes}}
        for node in self.nodes:
            for source in node.inputs:
                readers[source].append(node.name)
        return readers

    def live_nodes(self) -> list[Node]:
        """Nodes the output depends on, in execution order (dead branches dropped)."""
        return list(self.kept("live_nodes", _live_nodes))

    def kept(self, name: str, compute):
        """``compute(self)``, worked out once and kept under ``name`` (an architecture is not
        changed once built): for figures that several analyses of one graph need. The value is
        shared: a caller that changes it must copy it."""
        if name not in self._kept:
            self._kept[name] = compute(self)
        return self._kept[name]

    def ancestors(self, tensor: str) -> set[str]:
        """The nodes ``tensor`` depends on, itself included (the input is not a node)."""
        found, stack = set(), [tensor]
        while stack:
            name = stack.pop()
            if name in found or name == INPUT:
                continue
            found.add(name)
            stack.extend(self.by_name[name].inputs)
        return found

    def trainable_params(self) -> int:
        """Parameters as a training framework counts them: batch norm unfolded (gamma and beta)."""
        total = 0
        for node in self.live_nodes():
            spec, shapes = OPS[node.op], self.input_shapes(node)
            total += spec.weight_count(node.attrs, shapes) + spec.bias_count(node.attrs, shapes)
        return total

    # --- identity ------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """A hash of the computation, independent of node names and of dead nodes.

        Identity ops vanish, ``zero`` inputs of an add vanish, and add is commutative, so two
        graphs that compute the same function in the same way share a fingerprint.
        """
        memo: dict[str, str] = {INPUT: "input" + repr(self.input_shape)}
        if self.frontend is not None:  # absent: the fingerprints of before
            memo[INPUT] += "frontend" + json.dumps(self.frontend, sort_keys=True)
        for node in self.nodes:
            memo[node.name] = _node_hash(node, memo, self)
        return hashlib.sha1(memo[self.output].encode()).hexdigest()[:16]

    # --- (de)serialisation ---------------------------------------------------------------------
    def to_json(self) -> dict:
        data = {"format": "tinyevo.architecture", "version": FORMAT_VERSION, "name": self.name,
                "input_shape": list(self.input_shape), "output": self.output,
                "nodes": [n.to_json() for n in self.nodes], "meta": self.meta}
        if self.frontend is not None:  # absent: the files of before
            data["frontend"] = self.frontend
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    @classmethod
    def from_json(cls, data: Any) -> "Architecture":
        if not isinstance(data, dict) or "nodes" not in data or "input_shape" not in data:
            raise InvalidArchitecture("not an architecture: expected a JSON object with "
                                      "'input_shape' and 'nodes'")
        nodes = []
        for i, raw in enumerate(data["nodes"]):
            if not isinstance(raw, dict) or not {"name", "op"} <= set(raw):
                raise InvalidArchitecture(f"node #{i}: expected an object with 'name', 'op', 'inputs'")
            nodes.append(Node(str(raw["name"]), str(raw["op"]), tuple(raw.get("inputs", [INPUT])),
                              dict(raw.get("attrs", {}))))
        return cls(data["input_shape"], nodes, data.get("output"), data.get("name", ""),
                   data.get("meta"), data.get("frontend"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Architecture) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return (f"Architecture({self.name or 'unnamed'}: {len(self.nodes)} ops, "
                f"{self.input_shape} -> {self.output_shape})")


def check_node(node: Node, shapes: dict[str, Shape]) -> Node:
    """Validate ``node`` against the shapes known so far; record its output shape in ``shapes``.

    Returns the node with its attributes normalized (defaults filled in, pairs as tuples).
    """
    where = f"node {node.name!r} ({node.op})"
    if node.name in shapes:
        raise InvalidArchitecture(f"{where}: the name is used twice; give every node its own name")
    spec = OPS.get(node.op)
    if spec is None:
        raise InvalidArchitecture(f"{where}: unknown op {node.op!r}; known ops: {', '.join(sorted(OPS))}")
    if not spec.min_inputs <= len(node.inputs) <= spec.max_inputs:
        want = spec.min_inputs if spec.min_inputs == spec.max_inputs else f"at least {spec.min_inputs}"
        raise InvalidArchitecture(f"{where}: takes {want} input(s), got {len(node.inputs)}")
    for source in node.inputs:
        if source not in shapes:
            raise InvalidArchitecture(f"{where}: input {source!r} is not defined before it "
                                      f"(nodes must be listed in execution order)")
    in_shapes = [shapes[s] for s in node.inputs]
    try:
        attrs = spec.normalize(dict(node.attrs))
        out = spec.output_shape(attrs, in_shapes)
    except (ValueError, TypeError) as error:
        shown = ", ".join("x".join(map(str, s)) for s in in_shapes)
        raise InvalidArchitecture(f"{where} on input {shown}: {error}") from None
    shapes[node.name] = out
    return Node(node.name, node.op, tuple(node.inputs), attrs)


def _live_nodes(arch: Architecture) -> list[Node]:
    needed = arch.ancestors(arch.output)
    return [n for n in arch.nodes if n.name in needed]


def _shape(value: Iterable[int]) -> Shape:
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise InvalidArchitecture(f"input_shape must be [height, width, channels], got {value!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise InvalidArchitecture(f"input_shape must be three positive ints [height, width, channels], "
                                  f"got {list(shape)}")
    return shape  # type: ignore[return-value]


def _node_hash(node: Node, memo: dict[str, str], arch: Architecture) -> str:
    inputs = [memo[s] for s in node.inputs]
    if node.op == "identity":
        return inputs[0]
    if node.op == "zero":
        return "zero" + repr(arch.shapes[node.name])
    if node.op == "add":
        inputs = sorted(h for h in inputs if not h.startswith("zero"))
        if not inputs:
            return "zero" + repr(arch.shapes[node.name])
        if len(inputs) == 1:
            return inputs[0]
    attrs = json.dumps(node.to_json()["attrs"], sort_keys=True)
    digest = hashlib.sha1(f"{node.op}{attrs}({','.join(inputs)})".encode()).hexdigest()
    return digest
