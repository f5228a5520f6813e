"""The ops of the architecture IR: for each, its attributes, output shape, weights and MACs.

Tensors are int8 feature maps of shape (height, width, channels), batch left out; a 1-D signal is
2-D with height 1, and a flat vector is (1, 1, features). Every op here is one entry of ``OPS``;
shape inference, validation and the cost model read them and nothing else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tinyevo.errors import InvalidArchitecture

Shape = tuple[int, int, int]


def pair(value: Any) -> tuple[int, int]:
    """(h, w) from an int or a two-element sequence."""
    if isinstance(value, bool):
        raise ValueError(f"expected an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"expected an int or a pair of ints, got {value!r}")


def window_output(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Output length of a sliding window along one axis, TensorFlow's SAME/VALID rules."""
    if padding == "same":
        return math.ceil(size / stride)
    effective = dilation * (kernel - 1) + 1
    return (size - effective) // stride + 1


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's SAME rule; the odd pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return (total // 2, total - total // 2)


@dataclass(frozen=True)
class OpSpec:
    """What the IR knows about one op type. Subclasses override what differs."""

    name: str
    min_inputs: int = 1
    max_inputs: int = 1
    defaults: dict = field(default_factory=dict)
    required: tuple[str, ...] = ()
    #: One-input op (element-wise, or a reshape) that may write its output over its input
    #: when nothing else reads that input: it needs no buffer of its own.
    in_place: bool = False

    def normalize(self, attrs: dict) -> dict:
        unknown = set(attrs) - set(self.defaults) - set(self.required)
        if unknown:
            raise ValueError(f"unknown attribute(s) {sorted(unknown)}; allowed: "
                             f"{sorted(set(self.defaults) | set(self.required))}")
        missing = [k for k in self.required if k not in attrs]
        if missing:
            raise ValueError(f"missing attribute(s) {missing}")
        return {**self.defaults, **attrs}

    def output_shape(self, attrs: dict, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def weight_count(self, attrs: dict, inputs: list[Shape]) -> int:
        return 0

    def bias_count(self, attrs: dict, inputs: list[Shape]) -> int:
        return 0

    def macs(self, attrs: dict, inputs: list[Shape], output: Shape) -> int:
        return 0


def _positive(attrs: dict, *keys: str) -> None:
    for key in keys:
        value = attrs[key]
        values = value if isinstance(value, tuple) else (value,)
        if any((not isinstance(v, int)) or isinstance(v, bool) or v < 1 for v in values):
            raise ValueError(f"{key} must be a positive integer, got {value!r}")


def _window_shape(attrs: dict, shape: Shape, channels: int) -> Shape:
    if attrs["padding"] not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {attrs['padding']!r}")
    (kh, kw), (sh, sw), (dh, dw) = attrs["kernel"], attrs["stride"], attrs.get("dilation", (1, 1))
    h = window_output(shape[0], kh, sh, dh, attrs["padding"])
    w = window_output(shape[1], kw, sw, dw, attrs["padding"])
    if h < 1 or w < 1:
        raise ValueError(f"kernel {kh}x{kw} does not fit the {shape[0]}x{shape[1]} input "
                         f"with 'valid' padding")
    return (h, w, channels)


class Conv2dSpec(OpSpec):
    def normalize(self, attrs: dict) -> dict:
        attrs = super().normalize(attrs)
        for key in ("kernel", "stride", "dilation"):
            attrs[key] = pair(attrs[key])
        _positive(attrs, "out_channels", "groups", "kernel", "stride", "dilation")
        attrs["bias"] = bool(attrs["bias"])
        return attrs

    def output_shape(self, attrs, inputs):
        cin, groups, cout = inputs[0][2], attrs["groups"], attrs["out_channels"]
        if cin % groups or cout % groups:
            raise ValueError(f"groups={groups} must divide both input channels ({cin}) "
                             f"and out_channels ({cout})")
        return _window_shape(attrs, inputs[0], cout)

    def weight_count(self, attrs, inputs):
        kh, kw = attrs["kernel"]
        return kh * kw * (inputs[0][2] // attrs["groups"]) * attrs["out_channels"]

    def bias_count(self, attrs, inputs):
        return attrs["out_channels"] if attrs["bias"] else 0

    def macs(self, attrs, inputs, output):
        kh, kw = attrs["kernel"]
        return output[0] * output[1] * output[2] * kh * kw * (inputs[0][2] // attrs["groups"])


class DenseSpec(OpSpec):
    def normalize(self, attrs):
        attrs = super().normalize(attrs)
        _positive(attrs, "units")
        attrs["bias"] = bool(attrs["bias"])
        return attrs

    def output_shape(self, attrs, inputs):
        h, w, c = inputs[0]
        if (h, w) != (1, 1):
            raise ValueError(f"needs a flat input (1x1xC) but got {h}x{w}x{c}: "
                             f"put a flatten or global_avg_pool before it")
        return (1, 1, attrs["units"])

    def weight_count(self, attrs, inputs):
        return inputs[0][2] * attrs["units"]

    def bias_count(self, attrs, inputs):
        return attrs["units"] if attrs["bias"] else 0

    def macs(self, attrs, inputs, output):
        return inputs[0][2] * attrs["units"]


class PoolSpec(OpSpec):
    def normalize(self, attrs):
        attrs = super().normalize(attrs)
        attrs["kernel"] = pair(attrs["kernel"])
        attrs["stride"] = pair(attrs["stride"]) if attrs["stride"] is not None else attrs["kernel"]
        _positive(attrs, "kernel", "stride")
        return attrs

    def output_shape(self, attrs, inputs):
        return _window_shape(attrs, inputs[0], inputs[0][2])


class GlobalAvgPoolSpec(OpSpec):
    def output_shape(self, attrs, inputs):
        return (1, 1, inputs[0][2])


class FlattenSpec(OpSpec):
    def output_shape(self, attrs, inputs):
        h, w, c = inputs[0]
        return (1, 1, h * w * c)


class AddSpec(OpSpec):
    def output_shape(self, attrs, inputs):
        if any(s != inputs[0] for s in inputs):
            raise ValueError("all inputs must have the same shape, got "
                             + ", ".join("x".join(map(str, s)) for s in inputs))
        return inputs[0]


class ConcatSpec(OpSpec):
    def output_shape(self, attrs, inputs):
        if any(s[:2] != inputs[0][:2] for s in inputs):
            raise ValueError("inputs must share height and width to be concatenated on channels, got "
                             + ", ".join("x".join(map(str, s)) for s in inputs))
        return (inputs[0][0], inputs[0][1], sum(s[2] for s in inputs))


class BatchNormSpec(OpSpec):
    def bias_count(self, attrs, inputs):
        # Unfolded: a scale and an offset per channel (gamma and beta; the running statistics are buffers).
        return 2 * inputs[0][2]


ANY = 1 << 30
OPS: dict[str, OpSpec] = {spec.name: spec for spec in [
    Conv2dSpec("conv2d", required=("out_channels",), defaults=dict(
        kernel=3, stride=1, padding="same", dilation=1, groups=1, bias=True)),
    DenseSpec("dense", required=("units",), defaults=dict(bias=True)),
    PoolSpec("max_pool", defaults=dict(kernel=2, stride=None, padding="valid")),
    PoolSpec("avg_pool", defaults=dict(kernel=2, stride=None, padding="valid")),
    GlobalAvgPoolSpec("global_avg_pool"),
    AddSpec("add", min_inputs=2, max_inputs=ANY),
    ConcatSpec("concat", min_inputs=2, max_inputs=ANY),
    OpSpec("relu", in_place=True),
    OpSpec("relu6", in_place=True),
    BatchNormSpec("batch_norm", in_place=True),
    FlattenSpec("flatten", in_place=True),
    OpSpec("identity", in_place=True),
    OpSpec("zero", in_place=True),
]}
