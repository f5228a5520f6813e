"""A small fluent helper to write architectures in Python (spaces and examples use it)."""
from __future__ import annotations

from collections import Counter

from tinyevo.arch.graph import INPUT, Architecture, Node, _shape, check_node


class GraphBuilder:
    """Appends nodes in execution order and names them ``conv2d_1``, ``relu_2``... unless told otherwise.

    >>> g = GraphBuilder((28, 28, 1))
    >>> x = g.conv_bn_act(g.input, 8, kernel=3, stride=2)
    >>> arch = g.build(g.dense(g.global_avg_pool(x), 10))
    """

    def __init__(self, input_shape, name: str = ""):
        self.input_shape = _shape(input_shape)
        self.name = name
        self.input = INPUT
        self.nodes: list[Node] = []
        self.shapes = {INPUT: self.input_shape}
        self._counts: Counter = Counter()

    def add_node(self, op: str, inputs, name: str | None = None, **attrs) -> str:
        if isinstance(inputs, str):
            inputs = (inputs,)
        if name is None:
            self._counts[op] += 1
            name = f"{op}_{self._counts[op]}"
        self.nodes.append(check_node(Node(name, op, tuple(inputs), attrs), self.shapes))
        return name

    def build(self, output: str | None = None, meta: dict | None = None,
              frontend: dict | None = None) -> Architecture:
        # every node was checked as it was added (``add_node``)
        return Architecture._of_checked(self.input_shape, self.nodes, self.shapes, output, self.name,
                                        meta, frontend)

    # --- one method per op ---------------------------------------------------------------------
    def conv2d(self, x, out_channels, kernel=3, stride=1, padding="same", groups=1, dilation=1,
               bias=True, name=None):
        return self.add_node("conv2d", x, name, out_channels=out_channels, kernel=kernel, stride=stride,
                             padding=padding, groups=groups, dilation=dilation, bias=bias)

    def dense(self, x, units, bias=True, name=None):
        return self.add_node("dense", x, name, units=units, bias=bias)

    def max_pool(self, x, kernel=2, stride=None, padding="valid", name=None):
        return self.add_node("max_pool", x, name, kernel=kernel, stride=stride, padding=padding)

    def avg_pool(self, x, kernel=2, stride=None, padding="valid", name=None):
        return self.add_node("avg_pool", x, name, kernel=kernel, stride=stride, padding=padding)

    def global_avg_pool(self, x, name=None):
        return self.add_node("global_avg_pool", x, name)

    def flatten(self, x, name=None):
        return self.add_node("flatten", x, name)

    def add(self, *xs, name=None):
        return self.add_node("add", xs, name)

    def concat(self, *xs, name=None):
        return self.add_node("concat", xs, name)

    def relu(self, x, name=None):
        return self.add_node("relu", x, name)

    def relu6(self, x, name=None):
        return self.add_node("relu6", x, name)

    def batch_norm(self, x, name=None):
        return self.add_node("batch_norm", x, name)

    def identity(self, x, name=None):
        return self.add_node("identity", x, name)

    def zero(self, x, name=None):
        return self.add_node("zero", x, name)

    def activation(self, x, act: str | None):
        if act in (None, "none", "linear"):
            return x
        return self.add_node(act, x)

    # --- common blocks -------------------------------------------------------------------------
    def conv_bn_act(self, x, out_channels, kernel=3, stride=1, groups=1, act="relu", padding="same"):
        """Convolution without bias, batch norm (folded at export), then an activation."""
        x = self.conv2d(x, out_channels, kernel, stride, padding, groups, bias=False)
        return self.activation(self.batch_norm(x), act)

    def depthwise_separable(self, x, out_channels, kernel=3, stride=1, act="relu"):
        """Depthwise conv + BN + act, then pointwise 1x1 conv + BN + act (MobileNetV1, DS-CNN)."""
        channels = self._channels(x)
        x = self.conv_bn_act(x, channels, kernel, stride, groups=channels, act=act)
        return self.conv_bn_act(x, out_channels, 1, 1, act=act)

    def inverted_residual(self, x, out_channels, kernel=3, stride=1, expand_ratio=6, act="relu6"):
        """MobileNetV2 block: 1x1 expand, depthwise kxk, 1x1 linear project, residual if shapes allow."""
        cin = self._channels(x)
        hidden = cin * expand_ratio
        y = self.conv_bn_act(x, hidden, 1, act=act) if expand_ratio != 1 else x
        y = self.conv_bn_act(y, hidden, kernel, stride, groups=hidden, act=act)
        y = self.conv_bn_act(y, out_channels, 1, act=None)
        if stride == 1 and cin == out_channels:
            y = self.add(y, x)
        return y

    def _channels(self, x: str) -> int:
        return self.shapes[x][2]
