"""Low-fidelity versions of an architecture (survey: lower-fidelity estimates): thinner, smaller input.

``scale_width`` multiplies every convolution's output channels and every hidden dense layer's units
by a factor, leaving the classifier's outputs alone; ``with_input_size`` gives the same layers a
smaller (or larger) input. Both return a new, validated ``Architecture``.
"""
from __future__ import annotations

import math

from tinyevo.arch import INPUT, Architecture, Node
from tinyevo.arch.graph import check_node
from tinyevo.errors import TinyevoError

WEIGHTED_OPS = ("conv2d", "dense")


def scaled(count: int, factor: float) -> int:
    """``count * factor`` rounded, at least 1. Equal counts stay equal, so residual adds still fit."""
    return max(1, int(round(count * factor)))


def classifier_node(arch: Architecture) -> str | None:
    """The last conv or dense the output is computed from, through one-input ops (pool, flatten...)."""
    name = arch.output
    while name != INPUT:
        node = arch.by_name[name]
        if node.op in WEIGHTED_OPS:
            return name
        if len(node.inputs) != 1:
            return None
        name = node.inputs[0]
    return None


def _scaled_conv(attrs: dict, old_in: int, new_in: int, factor: float) -> dict:
    groups, out = attrs["groups"], attrs["out_channels"]
    if groups == old_in and groups > 1:  # depthwise: one group per input channel, same multiplier
        return {**attrs, "groups": new_in, "out_channels": new_in * (out // groups)}
    new_out = scaled(out, factor)
    if groups > 1 and (new_in % groups or new_out % groups):
        groups = math.gcd(new_in, new_out)
    return {**attrs, "groups": groups, "out_channels": new_out}


def scale_width(arch: Architecture, factor: float) -> Architecture:
    """``arch`` with conv channels and hidden dense units times ``factor`` (not the classifier's)."""
    if not factor > 0:
        raise TinyevoError(f"width scale must be positive, got {factor!r}")
    if factor == 1:
        return arch
    keep = classifier_node(arch)
    shapes, nodes = {INPUT: arch.input_shape}, []
    for node in arch.nodes:
        attrs = dict(node.attrs)
        if node.name != keep and node.op == "conv2d":
            old_in, new_in = arch.input_shapes(node)[0][2], shapes[node.inputs[0]][2]
            attrs = _scaled_conv(attrs, old_in, new_in, factor)
        elif node.name != keep and node.op == "dense":
            attrs["units"] = scaled(attrs["units"], factor)
        nodes.append(check_node(Node(node.name, node.op, node.inputs, attrs), shapes))
    return Architecture(arch.input_shape, nodes, arch.output, arch.name,
                        {**arch.meta, "width_scale": factor}, arch.frontend)


def with_input_size(arch: Architecture, height: int, width: int) -> Architecture:
    """The same layers applied to a (height, width) input; raises InvalidArchitecture if it no longer fits."""
    if (height, width) == arch.input_shape[:2]:
        return arch
    return Architecture((height, width, arch.input_shape[2]), arch.nodes, arch.output, arch.name,
                        {**arch.meta, "input_size": [height, width]}, arch.frontend)


def input_size(resolution, height: int, width: int) -> tuple[int, int]:
    """(height, width) the network sees for a ``resolution`` knob.

    None keeps the size; a float scales both sides (a 1-D signal keeps height 1); a pair (h, w) is
    explicit; an int n means n x n, or length n for a 1-D signal.
    """
    if resolution is None:
        return height, width
    if isinstance(resolution, (list, tuple)) and len(resolution) == 2:
        return int(resolution[0]), int(resolution[1])
    if isinstance(resolution, int) and not isinstance(resolution, bool) and resolution > 0:
        return (1 if height == 1 else resolution), resolution
    if isinstance(resolution, float) and resolution > 0:
        return scaled(height, resolution), scaled(width, resolution)
    raise TinyevoError(f"resolution must be a positive scale factor, an int or a pair (h, w), "
                       f"got {resolution!r}")
