"""Batch-norm folding: an ``Architecture`` and its trained module become a graph of deployable ops.

The result, a ``FloatGraph``, uses TFLite's op vocabulary and layouts (NHWC tensors, conv filters
``[out, kh, kw, in]``, depthwise filters ``[1, kh, kw, out]``, dense weights ``[units, in]``):

* batch norm is folded into the conv or dense op that produces its input when nothing else reads
  that op's output (``tinyevo.hardware.folding``, the rule the cost model counts with); otherwise it
  becomes a 1x1 depthwise conv (a per-channel scale and offset);
* relu / relu6 fuse into the producing op's activation when nothing else reads it, otherwise they
  stay standalone; identity ops vanish; flatten is a RESHAPE (nothing at all on a flat input);
* ``zero`` inputs of an add are dropped; a zero that something else reads is a depthwise conv
  with zero weights (its output is exactly zero);
* global average pooling is an AVERAGE_POOL_2D over the whole map.

Every tensor is named after the IR node whose value it holds, so calibration ranges recorded per
node apply directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyevo.arch import INPUT, Architecture, Node
from tinyevo.errors import TinyevoError
from tinyevo.hardware.folding import batch_norm_folds

#: Ops whose activation can absorb a following relu / relu6.
FUSES_ACTIVATION = {"conv_2d", "depthwise_conv_2d", "fully_connected", "add", "max_pool_2d",
                    "average_pool_2d"}
#: Ops that a following batch norm folds into (a per-output-channel affine map of their output).
FUSES_BATCH_NORM = {"conv_2d", "depthwise_conv_2d", "fully_connected"}


@dataclass
class FloatOp:
    """One deployable op in float: TFLite kind, output tensor name, inputs, attributes, weights."""

    kind: str
    name: str
    inputs: list[str]
    attrs: dict = field(default_factory=dict)
    weights: np.ndarray | None = None  # float64, TFLite layout
    bias: np.ndarray | None = None  # float64, one per output channel

    @property
    def activation(self) -> str:
        return self.attrs.get("activation", "none")


@dataclass
class FloatGraph:
    """Folded float ops in execution order; ``shapes`` holds each tensor's (height, width, channels)."""

    name: str
    input_shape: tuple[int, int, int]
    ops: list[FloatOp]
    output: str
    shapes: dict[str, tuple[int, int, int]]

    def producer(self, tensor: str) -> FloatOp | None:
        return next((op for op in self.ops if op.name == tensor), None)


def fold(architecture: Architecture, module) -> FloatGraph:
    """Fold ``module``'s batch norms (eval mode, running statistics) into a ``FloatGraph``."""
    return _Folder(architecture, module).run()


def batch_norm_affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) per channel of an eval-mode ``nn.BatchNorm2d``: ``y = scale * x + offset``."""
    mean = layer.running_mean.detach().double().numpy()
    var = layer.running_var.detach().double().numpy()
    gamma = layer.weight.detach().double().numpy() if layer.weight is not None else np.ones_like(mean)
    beta = layer.bias.detach().double().numpy() if layer.bias is not None else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + layer.eps)
    return scale, beta - mean * scale


class _Folder:
    def __init__(self, architecture: Architecture, module):
        self.arch, self.layers = architecture, module.layers
        self.nodes = architecture.live_nodes()
        self.alias: dict[str, str] = {INPUT: INPUT}  # IR node -> tensor holding its value
        self.zeros: dict[str, str] = {}  # IR node known to be all zeros -> a tensor of its shape
        self.ops: list[FloatOp] = []
        self.readers: dict[str, int] = {}
        self.shapes = dict(architecture.shapes)
        self.folds = batch_norm_folds(architecture)  # the cost model's folding rule, shared

    def run(self) -> FloatGraph:
        self._resolve_aliases()
        for node in self.nodes:
            if node.name not in self.alias and node.name not in self.zeros:
                self._emit(node)
        output = self._tensor(self.arch.output)
        if output == INPUT:  # the network is the identity: give the output a tensor of its own
            output = self._append(FloatOp("reshape", self.arch.output, [INPUT]))
        return FloatGraph(self.arch.name, self.arch.input_shape, self.ops, output, self.shapes)

    # --- pass 1: which nodes are other tensors under another name --------------------------------
    def _resolve_aliases(self) -> None:
        for node in self.nodes:
            sources = [self._source(s) for s in node.inputs]
            if node.op == "identity" or (node.op in ("flatten", "global_avg_pool")
                                         and self.shapes[node.inputs[0]][:2] == (1, 1)):
                self._alias_or_zero(node.name, sources[0])
            elif node.op == "zero":
                self.zeros[node.name] = node.inputs[0]
            elif node.op == "add":
                live = [s for s in sources if s not in self.zeros]
                if not live:
                    self.zeros[node.name] = node.inputs[0]
                elif len(live) == 1:
                    self.alias[node.name] = live[0]
        for node in self.nodes:  # how many ops read each tensor (the output counts as a reader)
            if node.name not in self.alias and node.name not in self.zeros:
                for source in self._live_inputs(node):
                    self.readers[source] = self.readers.get(source, 0) + 1
        out = self._source(self.arch.output)
        self.readers[out] = self.readers.get(out, 0) + 1

    def _alias_or_zero(self, name: str, source: str) -> None:
        if source in self.zeros:
            self.zeros[name] = self.zeros[source]
        else:
            self.alias[name] = source

    def _source(self, name: str) -> str:
        while self.alias.get(name, name) != name:
            name = self.alias[name]
        return name

    def _live_inputs(self, node: Node) -> list[str]:
        sources = [self._source(s) for s in node.inputs]
        return [s for s in sources if s not in self.zeros] if node.op == "add" else sources

    def _tensor(self, name: str) -> str:
        """The tensor holding IR node ``name``'s value, emitting a zero tensor if needed."""
        source = self._source(name)
        if source in self.zeros and self.producer(source) is None:
            self._emit_zero(source)
        return source

    def producer(self, tensor: str) -> FloatOp | None:
        return next((op for op in reversed(self.ops) if op.name == tensor), None)

    # --- pass 2: emit ops --------------------------------------------------------------------------
    def _emit(self, node: Node) -> None:
        inputs = [self._tensor(s) for s in self._live_inputs(node)]
        op, attrs = node.op, node.attrs
        if op == "batch_norm":
            self._batch_norm(node, inputs[0])
        elif op in ("relu", "relu6"):
            self._activation(node, inputs[0])
        elif op == "conv2d":
            self._append(self._conv(node, inputs[0]))
        elif op == "dense":
            self._append(self._dense(node, inputs[0]))
        elif op in ("max_pool", "avg_pool"):
            kind = "max_pool_2d" if op == "max_pool" else "average_pool_2d"
            self._append(FloatOp(kind, node.name, inputs, dict(
                kernel=list(attrs["kernel"]), stride=list(attrs["stride"]), padding=attrs["padding"])))
        elif op == "global_avg_pool":
            h, w, _ = self.shapes[node.inputs[0]]
            self._append(FloatOp("average_pool_2d", node.name, inputs, dict(
                kernel=[h, w], stride=[h, w], padding="valid")))
        elif op == "flatten":
            self._append(FloatOp("reshape", node.name, inputs))
        elif op == "add":
            self._append(FloatOp("add", node.name, inputs))
        elif op == "concat":
            self._concat(node, inputs)
        else:  # pragma: no cover - every IR op is handled above
            raise TinyevoError(f"node {node.name!r}: op {op!r} cannot be deployed yet")

    def _append(self, op: FloatOp) -> str:
        op.attrs.setdefault("activation", "none")
        self.ops.append(op)
        return op.name

    def _concat(self, node: Node, inputs: list[str]) -> None:
        if len(inputs) > 10:
            raise TinyevoError(f"node {node.name!r}: concat of {len(inputs)} tensors; TFLite Micro "
                               f"takes at most 10, split it into nested concats")
        self._append(FloatOp("concatenation", node.name, inputs, dict(axis=3)))

    def _emit_zero(self, name: str) -> None:
        like = self._tensor(self.zeros[name])
        channels = self.shapes[like][2]
        self.shapes[name] = self.shapes[like]
        self._append(FloatOp("depthwise_conv_2d", name, [like], _pointwise_attrs(),
                             np.zeros((1, 1, 1, channels)), np.zeros(channels)))

    def _conv(self, node: Node, source: str) -> FloatOp:
        a, cin = node.attrs, self.shapes[node.inputs[0]][2]
        layer = self.layers[node.name].conv
        weight = layer.weight.detach().double().numpy()  # [out, in/groups, kh, kw]
        bias = (layer.bias.detach().double().numpy() if layer.bias is not None
                else np.zeros(a["out_channels"]))
        attrs = dict(kernel=list(a["kernel"]), stride=list(a["stride"]), padding=a["padding"],
                     dilation=list(a["dilation"]))
        if a["groups"] == cin and cin > 1:
            attrs["depth_multiplier"] = a["out_channels"] // cin
            return FloatOp("depthwise_conv_2d", node.name, [source], attrs,
                           weight.transpose(1, 2, 3, 0), bias)
        attrs["groups"] = a["groups"]
        return FloatOp("conv_2d", node.name, [source], attrs, weight.transpose(0, 2, 3, 1), bias)

    def _dense(self, node: Node, source: str) -> FloatOp:
        layer = self.layers[node.name]
        weight = layer.weight.detach().double().numpy()
        bias = (layer.bias.detach().double().numpy() if layer.bias is not None
                else np.zeros(weight.shape[0]))
        return FloatOp("fully_connected", node.name, [source], {}, weight, bias)

    def _fusable(self, tensor: str, kinds: set[str]) -> FloatOp | None:
        """The op producing ``tensor`` if this node is its only reader and it can absorb more."""
        op = self.producer(tensor)
        if op is None or op.kind not in kinds or self.readers.get(tensor, 0) != 1:
            return None
        return op if op.attrs.get("activation", "none") == "none" else None

    def _batch_norm(self, node: Node, source: str) -> None:
        scale, offset = batch_norm_affine(self.layers[node.name])
        op = self._fusable(source, FUSES_BATCH_NORM) if node.name in self.folds else None
        if op is None:
            channels = len(scale)
            self._append(FloatOp("depthwise_conv_2d", node.name, [source], _pointwise_attrs(),
                                 scale.reshape(1, 1, 1, channels), offset))
            return
        channel_axis = 3 if op.kind == "depthwise_conv_2d" else 0
        shape = [1] * op.weights.ndim
        shape[channel_axis] = -1
        op.weights = op.weights * scale.reshape(shape)
        op.bias = op.bias * scale + offset
        self._rename(op, node.name)

    def _activation(self, node: Node, source: str) -> None:
        op = self._fusable(source, FUSES_ACTIVATION)
        if op is None:
            self._append(FloatOp(node.op, node.name, [source]))
            return
        op.attrs["activation"] = node.op
        self._rename(op, node.name)

    def _rename(self, op: FloatOp, name: str) -> None:
        """``op`` now computes IR node ``name``. Its old output had one reader, this node; only a
        zero tensor (whose value ignores its input) may also point at it."""
        old = op.name
        self.readers.pop(old, None)
        self.alias[old] = name
        op.name = name
        for other in self.ops:
            other.inputs = [name if source == old else source for source in other.inputs]


def _pointwise_attrs() -> dict:
    return dict(kernel=[1, 1], stride=[1, 1], padding="valid", dilation=[1, 1], depth_multiplier=1)
