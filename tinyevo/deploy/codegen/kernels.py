"""One small object per int8 op kind: it knows its C (a template in ``templates/``, specialized to
the layer's shapes), its per-layer constants (weights, biases, fixed-point parameters, zero points:
``const`` arrays and a ``const`` params struct, so in flash) and its cost.

Layers whose specialized function is the same text (same shapes and variant) share one function
(``function_key``; ``emit.share_functions``): code size grows with the number of distinct layer
shapes, not with depth, and the constants are passed by pointer. Every kernel follows TFLM's int8
reference kernel step by step (and so ``run_int8``): int32 accumulation of
``(x - input_zero_point) * w``, per-channel ``MultiplyByQuantizedMultiplier``, output zero point,
clamp. Kernels that may run in place (output over input) say so in ``in_place_safe``; the in-place
convolutions have templates of their own that use a scratch buffer.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from string import Template
from typing import ClassVar

import numpy as np

from tinyevo.arch import same_padding
from tinyevo.deploy.quantized_model import QuantizedOp
from tinyevo.errors import TinyevoError

VALUES_PER_LINE = {"int8_t": 24, "int16_t": 16, "int32_t": 8}


@dataclass(frozen=True)
class TensorView:
    """An int8 activation tensor as a kernel sees it: where it lives and how it is quantized."""

    name: str
    offset: int  # bytes from the start of the arena
    shape: tuple[int, int, int]  # height, width, channels
    zero_point: int
    ring: int = 0  # streamed: rows the buffer keeps (row r in slot r % ring); 0: whole
    row: str | None = None  # streamed: the C expression of the row this view is (None: the buffer)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    def pointer(self) -> str:
        if self.row is None or self.ring == 1:
            return f"arena + {self.offset}"
        return f"arena + {self.offset} + ({self.row} % {self.ring}) * {self.shape[1] * self.shape[2]}"

    def row_index(self, name: str) -> str:
        """The slot of absolute row ``name`` in this buffer (C)."""
        return name if not self.ring or self.ring >= self.shape[0] else f"({name} % {self.ring})"


@lru_cache(maxsize=None)
def template(name: str) -> Template:
    """``templates/NAME.c`` (or ``templates/NAME`` when it has a suffix) as a ``string.Template``."""
    filename = name if "." in name else f"{name}.c"
    return Template(resources.files("tinyevo.deploy.codegen").joinpath("templates", filename).read_text())


def c_array(ctype: str, name: str, values, attributes: str = "") -> str:
    """``static const ctype name[n] = {...};`` with a fixed number of values per line."""
    values = [int(v) for v in np.asarray(values).ravel()]
    per_line = VALUES_PER_LINE[ctype]
    lines = [", ".join(str(v) for v in values[i:i + per_line]) for i in range(0, len(values), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(values)}]{attributes} = {{\n    {body}\n}};\n"


def requantization(multipliers, shifts, bias, weight_sums) -> int:
    """The requantization a kernel can use for every input, per layer (the C's ``REQUANT``):
    2, ``tinyevo_output_scaled`` (one SMMLAR, a shift, the output zero point folded into the
    rounding), when it equals TFLM's: each channel's multiplier >= 0 and a right shift of 1 to 22,
    and every accumulator within +-2^30 (|bias| + 255 * sum |w| below 2^30, ``weight_sums`` the
    per-channel sums of |w|, since |x - input zero point| <= 255); else 1, ``tinyevo_output_lean``,
    when no multiplier is INT32_MIN (its product never saturates); else 0, ``tinyevo_output``."""
    multipliers, shifts = np.asarray(multipliers, np.int64), np.asarray(shifts, np.int64)
    bound = np.abs(np.asarray(bias, np.int64)) + 255 * np.asarray(weight_sums, np.int64)
    if (multipliers >= 0).all() and ((shifts <= -1) & (shifts >= -22)).all() and (bound < 2 ** 30).all():
        return 2
    return 0 if (multipliers == np.iinfo(np.int32).min).any() else 1


def interior(size: int, out: int, kernel: int, stride: int, dilation: int, before: int) -> tuple[int, int]:
    """The output indices [lo, hi) along one axis whose every kernel position lies inside the
    input (no padding): lo = ceil(before / stride), hi - 1 the last o with
    o * stride - before + (kernel - 1) * dilation < size; hi = lo when there are none."""
    lo = min(-(-before // stride), out)
    hi = max(min((size - 1 - (kernel - 1) * dilation + before) // stride + 1, out), lo)
    return lo, hi


@dataclass
class Kernel:
    """One call of the generated model: a function specialized to the op's shapes, and the
    per-layer constants it is called with. Layers whose function text is the same (same shapes,
    same constants in the code) share one function (``function_key``)."""

    symbol: str  # prefix of the layer's constants, e.g. "layer3"
    op: QuantizedOp
    inputs: tuple[TensorView, ...]
    output: TensorView
    scratch_offset: int | None = None
    function: str = ""  # the shared C function this layer calls, set by the emitter
    row: str | None = None  # streamed window kernels: the C variable of the output row computed

    template_name: ClassVar[str] = ""
    in_place_safe: ClassVar[bool] = False
    params_type: ClassVar[str] = ""  # the C struct of the layer's constants, if any

    @property
    def in_place(self) -> bool:
        return any(t.offset == self.output.offset for t in self.inputs)

    def check(self) -> None:
        """Refuse an in-place plan this kernel cannot run (a planner bug, never a user error)."""
        if self.in_place and not self.in_place_safe:
            raise TinyevoError(f"internal error: op {self.op.name!r} ({self.op.kind}) cannot write over "
                               f"its input; please report this model")

    def template_fields(self) -> dict:
        """The constants compiled into the function (shapes, and values no layer passes in)."""
        return {}

    def params(self) -> list:
        """The values of the layer's ``params_type`` struct, in field order."""
        return []

    def data(self) -> str:
        """The layer's constants: arrays and its params struct."""
        if not self.params_type:
            return ""
        values = ", ".join(str(v) for v in self.params())
        return f"static const {self.params_type} {self.symbol}_params = {{{values}}};\n"

    def variant(self) -> str:
        return self.template_name

    def function_key(self) -> tuple:
        """Layers with equal keys share one C function."""
        self.check()
        return (self.variant(), tuple(sorted(self.template_fields().items())))

    def function_source(self, name: str) -> str:
        fields = {"FUNCTION": name, "SYMBOL": self.symbol, "COMMENT": self.function_comment(),
                  **self.template_fields()}
        return template(self.variant()).substitute(fields)

    def arguments(self) -> list[str]:
        args = [t.pointer() for t in self.inputs] + [self.output.pointer()]
        args += [f"&{self.symbol}_params"] if self.params_type else []
        return args + ([self.row] if self.row else [])

    def call(self) -> str:
        return f"{self.function}({', '.join(self.arguments())}); /* {self.layer_comment()} */"

    def function_comment(self) -> str:
        shapes = " + ".join("x".join(map(str, t.shape)) for t in self.inputs)
        return f"{self.variant()}: {shapes} -> {'x'.join(map(str, self.output.shape))}"

    def layer_comment(self) -> str:
        return f"{self.op.kind} {self.op.name}".replace("*/", "* /")

    def macs(self) -> int:
        return 0

    def flash_bytes(self) -> int:
        return 0


# --- weighted kernels ---------------------------------------------------------------------------
@dataclass
class _Window(Kernel):
    """Shared by the kernels that slide a window: kernel, stride, dilation, padding."""

    def window_fields(self) -> dict:
        (kh, kw), (sh, sw) = self.op.attrs["kernel"], self.op.attrs["stride"]
        dh, dw = self.op.attrs.get("dilation", (1, 1))
        (ih, iw, ic), (oh, ow, oc) = self.inputs[0].shape, self.output.shape
        same = self.op.attrs["padding"] == "same"
        top = same_padding(ih, kh, sh, dh)[0] if same else 0
        left = same_padding(iw, kw, sw, dw)[0] if same else 0
        return dict(IN_H=ih, IN_W=iw, IN_C=ic, OUT_H=oh, OUT_W=ow, OUT_C=oc, K_H=kh, K_W=kw,
                    STRIDE_H=sh, STRIDE_W=sw, DILATION_H=dh, DILATION_W=dw, PAD_TOP=top, PAD_LEFT=left,
                    **self.row_fields())

    def row_fields(self) -> dict:
        """Layer by layer: every output row, tensors whole. Streamed: the one output row ``row``
        (passed in), written where the output pointer points; input rows in their ring."""
        ow = self.output.shape[1]
        if not self.row:
            return dict(ROW_PARAM="", OY_FIRST="0", OY_END="OUT_H", IN_Y="iy", OUT_Y="oy",
                        PIXEL_FIRST="0", PIXEL_END="PIXELS", OUT_PIXEL="i")
        return dict(ROW_PARAM=", int32_t row", OY_FIRST="row", OY_END="row + 1",
                    IN_Y=self.inputs[0].row_index("iy"), OUT_Y="0", PIXEL_FIRST=f"row * {ow}",
                    PIXEL_END=f"(row + 1) * {ow}", OUT_PIXEL=f"(i - row * {ow})")

    def clamp_fields(self) -> dict:
        return dict(ACT_MIN=self.op.params["activation_min"], ACT_MAX=self.op.params["activation_max"])


@dataclass
class _Weighted(_Window):
    params_type: ClassVar[str] = "tinyevo_conv_params"

    def params(self) -> list:
        p = self.op.params
        return [f"{self.symbol}_weights", f"{self.symbol}_bias", f"{self.symbol}_multiplier",
                f"{self.symbol}_shift", -self.inputs[0].zero_point, self.output.zero_point,
                p["activation_min"], p["activation_max"]]

    def data(self) -> str:
        p = self.op.params
        return (f"/* {self.layer_comment()} */\n"
                + c_array("int8_t", f"{self.symbol}_weights", self.op.weights)
                + c_array("int32_t", f"{self.symbol}_bias", self.op.bias)
                + c_array("int32_t", f"{self.symbol}_multiplier", np.ravel(p["multiplier"]))
                + c_array("int32_t", f"{self.symbol}_shift", np.ravel(p["shift"]))
                + super().data() + "\n")

    def flash_bytes(self) -> int:
        channels = len(self.op.bias)
        return self.op.weights.size + 4 * channels + 8 * channels


@dataclass
class Conv2D(_Weighted):
    """CONV_2D, grouped or not. Most convolutions take ``conv_2d_im2col`` (two pixels x two output
    channels over int16 im2col patches on the stack, ``COL_BYTES``; filters rounded up to whole
    groups of four values with zero weights; a 1x1 conv's patch is its input pixel widened); the
    rest ``conv_2d``, output channels in blocks of 4, 2 or 1 that share input loads. The im2col
    kernels requantize in one rounding step (``tinyevo_output_scaled``) where that is provably
    exact for the layer (``scaled_requantization``)."""

    template_name: ClassVar[str] = "conv_2d"
    in_place_safe: ClassVar[bool] = True  # only the 1x1 stride-1 form, checked below
    #: the most stack the int16 im2col patches of two pixels may take (2 x 2 bytes per filter value)
    patch_stack_limit: ClassVar[int] = 4096
    #: filters of at most this many values, layers of at most this many weight bytes keep int16
    #: weights (``wide_weights``; the flash they add)
    wide_filter_limit: ClassVar[int] = 32
    wide_bytes_limit: ClassVar[int] = 1024
    #: the channel loop is unrolled whole up to this many channel pairs, else by two
    unrolled_pairs: ClassVar[int] = 4

    def groups(self) -> int:
        return self.op.attrs.get("groups", 1)

    def check(self) -> None:
        pixelwise = (list(self.op.attrs["kernel"]) == [1, 1] and list(self.op.attrs["stride"]) == [1, 1]
                     and self.groups() == 1 and self.scratch_offset is not None)
        if self.in_place and not pixelwise:
            raise TinyevoError(f"internal error: conv {self.op.name!r} cannot run in place")

    def filter_size(self) -> int:
        return int(self.op.weights[0].size)

    def padded_filter_size(self) -> int:
        """The filter rounded up to whole groups of four values (an im2col patch's length)."""
        return -(-self.filter_size() // 4) * 4

    def im2col(self) -> bool:
        """Two pixels x two channels over int16 patches (``conv_2d_im2col``): an ungrouped conv with
        more than one output pixel, an even number of output channels, patches that fit the stack,
        and multipliers the lean requantization takes (never INT32_MIN). In place (1x1, stride 1)
        it needs whole groups of four input channels and no more output than input channels."""
        multipliers = np.ravel(self.op.params["multiplier"])
        pixels = self.output.shape[0] * self.output.shape[1]
        return (self.im2col_shape(self.groups(), pixels, self.output.shape[2], self.filter_size())
                and not (multipliers == np.iinfo(np.int32).min).any()
                and (not self.in_place or (self.filter_size() % 4 == 0
                                           and self.output.shape[2] <= self.inputs[0].shape[2])))

    @classmethod
    def im2col_shape(cls, groups: int, pixels: int, out_channels: int, filter_size: int) -> bool:
        """The part of ``im2col`` the shapes decide (``tinyevo.hardware.calibration`` asks it):
        ungrouped, more than one output pixel, an even number of output channels, the two
        pixels' int16 patches (the filter rounded up to four values) within the stack limit."""
        return (groups == 1 and pixels > 1 and out_channels % 2 == 0
                and 4 * (-(-filter_size // 4) * 4) <= cls.patch_stack_limit)

    def wide_weights(self) -> bool:
        """im2col with a filter of at most ``wide_filter_limit`` values and at most
        ``wide_bytes_limit`` bytes of weights: they are stored as int16 (``tinyevo_dot2x2_wide``),
        since with few MACs per output widening them at run time costs more than their flash."""
        return self.im2col() and self.wide_shape(self.filter_size(), len(self.op.bias))

    @classmethod
    def wide_shape(cls, filter_size: int, out_channels: int) -> bool:
        """The shape part of ``wide_weights`` (``tinyevo.hardware`` asks it): the filter rounded up
        to four values at most ``wide_filter_limit``, its weights at most ``wide_bytes_limit``."""
        padded = -(-filter_size // 4) * 4
        return padded <= cls.wide_filter_limit and padded * out_channels <= cls.wide_bytes_limit

    def channel_scales(self) -> tuple[np.ndarray, np.ndarray]:
        """Each output channel's fixed-point multiplier and shift (int64)."""
        p, channels = self.op.params, len(self.op.bias)
        return tuple(np.broadcast_to(np.ravel(p[key]).astype(np.int64), (channels,))
                     for key in ("multiplier", "shift"))

    def scaled_requantization(self) -> bool:
        """Whether ``tinyevo_output_scaled`` (one SMMLAR, a shift, the output zero point folded into
        the rounding) equals TFLM's requantization for every input: each channel's multiplier >= 0
        and a right shift of 1 to 22, and every accumulator within +-2^30 (|bias| + 255 * sum |w|
        below 2^30, since |x - input zero point| <= 255)."""
        channels = len(self.op.bias)
        weights = np.abs(self.op.weights.reshape(channels, -1).astype(np.int64)).sum(axis=1)
        return requantization(*self.channel_scales(), self.op.bias, weights) == 2

    def weight_values(self) -> np.ndarray:
        """im2col's weights: each filter padded to whole groups of four values with zeros; wide
        weights are int16, the channels of each pair interleaved four values at a time and each
        group of four in the order (0, 2, 1, 3) (``tinyevo_dot2x2_wide``)."""
        channels, size = len(self.op.weights), self.padded_filter_size()
        weights = np.pad(self.op.weights.reshape(channels, -1), ((0, 0), (0, size - self.filter_size())))
        if not self.wide_weights():
            return weights.ravel().astype(np.int8)
        groups = weights.reshape(channels // 2, 2, size // 4, 4)
        return groups[..., [0, 2, 1, 3]].transpose(0, 2, 1, 3).ravel().astype(np.int16)

    def channel_values(self) -> np.ndarray:
        """im2col's per output channel constants: bias, multiplier, then shift and 0, or with
        ``scaled_requantization`` the rounding 2^(right - 1) + output zero point * 2^right and the
        right shift (``tinyevo_output_scaled``)."""
        channels = len(self.op.bias)
        multipliers, shifts = self.channel_scales()
        if self.scaled_requantization():
            right = -shifts
            third, fourth = (1 << (right - 1)) + self.output.zero_point * (1 << right), right
        else:
            third, fourth = shifts, np.zeros(channels, np.int64)
        return np.stack([self.op.bias.astype(np.int64), multipliers, third, fourth], axis=1)

    @property
    def params_type(self) -> str:
        return "tinyevo_conv_channels_params" if self.im2col() else "tinyevo_conv_params"

    def params(self) -> list:
        if not self.im2col():
            return super().params()
        p = self.op.params
        return [f"{self.symbol}_weights", f"{self.symbol}_channels", -self.inputs[0].zero_point,
                self.output.zero_point, p["activation_min"], p["activation_max"]]

    def data(self) -> str:
        if not self.im2col():
            return super().data()
        name = f"{self.symbol}_weights"
        weights = (c_array("int16_t", name, self.weight_values(), " TINYEVO_ALIGN4") if self.wide_weights()
                   else c_array("int8_t", name, self.weight_values()))
        return (f"/* {self.layer_comment()} */\n" + weights
                + c_array("int32_t", f"{self.symbol}_channels", self.channel_values())
                + Kernel.data(self) + "\n")

    def flash_bytes(self) -> int:
        if not self.im2col():
            return super().flash_bytes()
        return self.weight_values().nbytes + 16 * len(self.op.bias)

    def variant(self) -> str:
        name = "conv_2d_in_place" if self.in_place else "conv_2d"
        return f"{name}_im2col" if self.im2col() else name

    def template_fields(self) -> dict:
        group_in = self.inputs[0].shape[2] // self.groups()
        group_out = self.output.shape[2] // self.groups()
        block = next(b for b in (4, 2, 1) if group_out % b == 0)
        pixels = self.output.shape[0] * self.output.shape[1]
        row_dot = int(self.groups() == 1 and self.window_fields()["DILATION_W"] == 1
                      and self.window_fields()["K_W"] > 1)
        fields = dict(**self.window_fields(), GROUP_IN=group_in,
                      GROUP_OUT=group_out, BLOCK=block, PIXELS=pixels, ROW_DOT=row_dot)
        if self.im2col():
            full = (self.op.params["activation_min"], self.op.params["activation_max"]) == (-128, 127)
            pairs = self.output.shape[2] // 2
            fields.update(FILTER=self.padded_filter_size(), COL_BYTES=4 * self.padded_filter_size(),
                          SCALED=int(self.scaled_requantization()), FULL_RANGE=int(full),
                          WIDE=int(self.wide_weights()), UNROLL=pairs if pairs <= self.unrolled_pairs else 2)
        return fields

    def arguments(self) -> list[str]:
        args = super().arguments()
        return args[:2] + [f"arena + {self.scratch_offset}"] + args[2:] if self.in_place else args

    def macs(self) -> int:
        return self.output.size * self.op.weights[0].size


def pair_row_source(k_w: int, pixels: int = 2) -> str:
    """C (DSP path of ``depthwise_conv_2d_in_place``) adding one kernel row of two neighbouring
    output pixels (stride 1, dilation 1) to ``acc_a``, ``acc_b``: the row's k_w + 1 input bytes at
    ``r`` loaded a word at a time and split by SXTB16 into the halfword pairs (0, 2) and (1, 3)
    of each word, then for pixel p and kernel column j (byte j + p) either one SMLAD of the bytes
    j + p and j + p + 2 of one pair with ``pair[j]`` (w[j], w[j + 2]), or one 16 x 16 SMLAxB of
    one byte with ``w[j]``. Reads up to three bytes past the row's last one (the plane has four
    spare). ``pixels`` 1: only ``acc_a`` (a row's last, odd pixel), from the first k_w bytes."""
    words = -(-(k_w + pixels - 1) // 4)
    lines = []
    for i in range(words):
        lines.append(f"const int32_t v{i} = tinyevo_load4(r + {4 * i}), e{i} = __sxtb16(v{i}), "
                     f"o{i} = tinyevo_sxtb16_ror8(v{i});")
    for p, acc in ((0, "acc_a"), (1, "acc_b"))[:pixels]:
        done = set()
        for j in range(k_w):
            if j in done:
                continue
            i = j + p
            word, pos = divmod(i, 4)
            reg = f"{'e' if pos % 2 == 0 else 'o'}{word}"
            if pos < 2 and j + 2 < k_w:
                lines.append(f"{acc} = __smlad({reg}, pair[{j}], {acc});")
                done.add(j + 2)
            else:
                half = "b" if pos < 2 else "t"
                lines.append(f"{acc} = __smla{half}b({reg}, w[{j}], {acc});")
    return "\n".join(" " * 16 + line for line in lines)


@dataclass
class DepthwiseConv2D(_Weighted):
    """DEPTHWISE_CONV_2D. Depth multiplier 1 and channels a multiple of ``channel_block``:
    ``depthwise_conv_2d_block4``, four channels per load with 16 x 16 multiply-accumulates; in
    place (not element-wise) ``depthwise_conv_2d_in_place``, channel by channel through a scratch
    buffer of one channel; the rest ``depthwise_conv_2d``, channels in blocks of
    ``generic_block``. The first two split the interior (every kernel position inside the input,
    no bounds checks) from the border and requantize as ``requantization`` allows."""

    template_name: ClassVar[str] = "depthwise_conv_2d"
    in_place_safe: ClassVar[bool] = True
    #: the channels ``depthwise_conv_2d_block4`` computes at a time
    channel_block: ClassVar[int] = 4
    #: the channel block of the generic ``depthwise_conv_2d``
    generic_block: ClassVar[int] = 16
    #: the most stack the in-place kernel's padded channel may take
    plane_stack_limit: ClassVar[int] = 4096
    #: ... and when at least this share of its multiply-accumulates are not the padding's
    padded_inside_share: ClassVar[float] = 0.2

    @classmethod
    def takes_block4(cls, channels: int, depth_multiplier: int) -> bool:
        """Whether a depthwise conv that does not run channel by channel in place takes
        ``depthwise_conv_2d_block4`` (``tinyevo.hardware.calibration`` asks the same)."""
        return depth_multiplier == 1 and channels % cls.channel_block == 0

    def element_wise(self) -> bool:
        """A 1x1 kernel whose output has its input's shape: each output value reads the input
        value at its own place (a stride above 1 can only be along an axis of length 1 then), as
        ``tinyevo.hardware.memory`` counts it (in place, no scratch)."""
        return list(self.op.attrs["kernel"]) == [1, 1] and self.inputs[0].shape == self.output.shape

    def check(self) -> None:
        if self.in_place and not self.element_wise() and (
                self.scratch_offset is None or self.inputs[0].shape[2] != self.output.shape[2]):
            raise TinyevoError(f"internal error: depthwise conv {self.op.name!r} cannot run in place")

    def block4(self) -> bool:
        return self.takes_block4(self.output.shape[2], self.op.attrs.get("depth_multiplier", 1))

    def block4_padded(self) -> int:
        """``depthwise_conv_2d_block4``'s PADDED: 1, a group's whole padded input on the stack
        (not for a streamed row); 2, the window's rows of each output row; 0, neither (bounds
        checked)."""
        f = self.window_fields()
        plane_h, plane_w = self.padded_plane()
        if (plane_h, plane_w) == tuple(self.inputs[0].shape[:2]) or self.inside_share() < self.padded_inside_share:
            return 0
        if not self.row and 4 * plane_h * plane_w <= self.plane_stack_limit:
            return 1
        return 2 if 4 * f["K_H"] * plane_w <= self.plane_stack_limit else 0

    def variant(self) -> str:
        if self.in_place and not self.element_wise():
            return "depthwise_conv_2d_in_place"
        return "depthwise_conv_2d_block4" if self.block4() else "depthwise_conv_2d"

    def requantization(self) -> int:
        """``requantization`` of this layer (the weights are [1, kh, kw, channels])."""
        p, channels = self.op.params, len(self.op.bias)
        weights = np.abs(self.op.weights.reshape(-1, channels).astype(np.int64)).sum(axis=0)
        multipliers, shifts = (np.broadcast_to(np.ravel(p[key]), (channels,)) for key in ("multiplier", "shift"))
        return requantization(multipliers, shifts, self.op.bias, weights)

    def template_fields(self) -> dict:
        multiplier = self.op.attrs.get("depth_multiplier", 1)
        fields = self.window_fields()
        if self.variant() == "depthwise_conv_2d":
            return dict(**fields, MULTIPLIER=multiplier, BLOCK=min(self.generic_block, self.output.shape[2]))
        oy = interior(fields["IN_H"], fields["OUT_H"], fields["K_H"], fields["STRIDE_H"], fields["DILATION_H"],
                      fields["PAD_TOP"])
        ox = interior(fields["IN_W"], fields["OUT_W"], fields["K_W"], fields["STRIDE_W"], fields["DILATION_W"],
                      fields["PAD_LEFT"])
        full = (self.op.params["activation_min"], self.op.params["activation_max"]) == (-128, 127)
        fields.update(OY_LO=oy[0], OY_HI=oy[1], OX_LO=ox[0], OX_HI=ox[1], REQUANT=self.requantization(),
                      FULL_RANGE=int(full))
        plane_h, plane_w = self.padded_plane()
        if self.variant() == "depthwise_conv_2d_block4":
            fields.update(PADDED=self.block4_padded(), PLANE_H=plane_h, PLANE_W=plane_w,
                          CONTIGUOUS=int(fields["IN_Y"] == "iy"))
        if self.variant() == "depthwise_conv_2d_in_place":
            padded = (plane_h * plane_w <= self.plane_stack_limit
                      and self.inside_share() >= self.padded_inside_share)
            pairs = padded and fields["STRIDE_W"] == 1 and fields["DILATION_W"] == 1 and fields["K_W"] > 1
            fields.update(PADDED=int(padded), PLANE_H=plane_h, PLANE_W=plane_w, PAIRS=int(pairs),
                          PAIR_ROW=pair_row_source(fields["K_W"]) if pairs else "",
                          PAIR_ROW_ONE=pair_row_source(fields["K_W"], 1) if pairs else "",
                          PAIR_TAIL=int(pairs and fields["OUT_W"] % 2 == 1))
        return fields

    def inside_share(self) -> float:
        """The share of (output pixel, kernel position) pairs that fall inside the input: what
        TFLM computes of what a padded plane computes."""
        f = self.window_fields()

        def taps(size, out, kernel, stride, dilation, before):
            return sum(1 for o in range(out) for k in range(kernel) if 0 <= o * stride - before + k * dilation < size)

        inside = (taps(f["IN_H"], f["OUT_H"], f["K_H"], f["STRIDE_H"], f["DILATION_H"], f["PAD_TOP"])
                  * taps(f["IN_W"], f["OUT_W"], f["K_W"], f["STRIDE_W"], f["DILATION_W"], f["PAD_LEFT"]))
        return inside / (f["OUT_H"] * f["OUT_W"] * f["K_H"] * f["K_W"])

    def padded_plane(self) -> tuple[int, int]:
        """(rows, columns) of one input channel padded with the zero point on every side that the
        kernel reaches past (``depthwise_conv_2d_in_place`` keeps it on the stack when at most
        ``plane_stack_limit`` bytes, and then needs no bounds checks)."""
        f = self.window_fields()

        def extent(size, out, kernel, stride, dilation, before):
            return before + max(size, (out - 1) * stride - before + (kernel - 1) * dilation + 1)

        return (extent(f["IN_H"], f["OUT_H"], f["K_H"], f["STRIDE_H"], f["DILATION_H"], f["PAD_TOP"]),
                extent(f["IN_W"], f["OUT_W"], f["K_W"], f["STRIDE_W"], f["DILATION_W"], f["PAD_LEFT"]))

    def arguments(self) -> list[str]:
        args = super().arguments()
        in_place = self.variant() == "depthwise_conv_2d_in_place"
        return args[:2] + [f"arena + {self.scratch_offset}"] + args[2:] if in_place else args

    def macs(self) -> int:
        kh, kw = self.op.attrs["kernel"]
        return self.output.size * kh * kw


@dataclass
class Fill(Kernel):
    """A DEPTHWISE_CONV_2D whose weights and biases are all zero (a tensor of zeros): a memset."""

    template_name: ClassVar[str] = "fill"
    in_place_safe: ClassVar[bool] = True

    def value(self) -> int:
        from tinyevo.deploy.fixed_point import multiply_by_quantized_multiplier as requantize
        p = self.op.params
        value = int(requantize(np.int64(0), p["multiplier"][0], p["shift"][0])) + self.output.zero_point
        return min(max(value, p["activation_min"]), p["activation_max"])

    def template_fields(self) -> dict:
        return dict(VALUE=self.value(), SIZE=self.output.size)

    def arguments(self) -> list[str]:
        return [self.output.pointer()]


@dataclass
class FullyConnected(_Weighted):
    """FULLY_CONNECTED with one weight scale (TFLite's per-tensor dense layer)."""

    template_name: ClassVar[str] = "fully_connected"

    def template_fields(self) -> dict:
        return dict(FEATURES=self.inputs[0].size, UNITS=self.output.size)

    def flash_bytes(self) -> int:
        return self.op.weights.size + 4 * len(self.op.bias) + 8

    def macs(self) -> int:
        return self.op.weights.size


@dataclass
class FullyConnectedRows(FullyConnected):
    """Streamed FULLY_CONNECTED (or its 1x1 CONV_2D form on a 1x1 map, per-channel scales) on a
    flattened map: called once per row of the map, it adds the row's share of every dot product
    to int32 accumulators (its scratch) and writes the outputs after the last row. The input view
    is one row of the map."""

    template_name: ClassVar[str] = "fully_connected_rows"
    rows: int = 1  # rows of the flattened map

    def template_fields(self) -> dict:
        row_features = self.inputs[0].shape[1] * self.inputs[0].shape[2]
        return dict(FEATURES=row_features * self.rows, UNITS=self.output.size, ROW_FEATURES=row_features,
                    ROWS=self.rows, PER_CHANNEL=int(np.size(self.op.params["multiplier"]) > 1))

    def flash_bytes(self) -> int:
        return self.op.weights.size + 4 * len(self.op.bias) + 8 * int(np.size(self.op.params["multiplier"]))

    def arguments(self) -> list[str]:
        return [self.inputs[0].pointer(), self.output.pointer(), f"&{self.symbol}_params",
                f"(int32_t *)(void *)(arena + {self.scratch_offset})", self.row]


# --- kernels without weights --------------------------------------------------------------------
@dataclass
class MaxPool2D(_Window):
    """MAX_POOL_2D (and, subclassed, AVERAGE_POOL_2D): with channels a multiple of four
    ``pool_2d_block4`` (four channels per load, the interior's windows with constant bounds),
    else the channel-by-channel template."""

    template_name: ClassVar[str] = "max_pool_2d"

    def block4(self) -> bool:
        return self.takes_block4(self.output.shape[2], self.op.attrs["kernel"])

    @classmethod
    def takes_block4(cls, channels: int, kernel) -> bool:
        """Whether a pool of ``channels`` and window ``kernel`` takes ``pool_2d_block4``
        (``tinyevo.hardware.calibration`` asks it)."""
        return channels % 4 == 0

    def variant(self) -> str:
        return "pool_2d_block4" if self.block4() else self.template_name

    def template_fields(self) -> dict:
        fields = dict(**self.window_fields(), **self.clamp_fields())
        if self.block4():
            f = fields
            oy = interior(f["IN_H"], f["OUT_H"], f["K_H"], f["STRIDE_H"], 1, f["PAD_TOP"])
            ox = interior(f["IN_W"], f["OUT_W"], f["K_W"], f["STRIDE_W"], 1, f["PAD_LEFT"])
            fields.update(OY_LO=oy[0], OY_HI=oy[1], OX_LO=ox[0], OX_HI=ox[1],
                          MAX=int(self.template_name == "max_pool_2d"))
        return fields


@dataclass
class AveragePool2D(MaxPool2D):
    template_name: ClassVar[str] = "average_pool_2d"

    @classmethod
    def takes_block4(cls, channels: int, kernel) -> bool:
        """... and windows of at most 255 values (their int16 sums cannot overflow)."""
        return super().takes_block4(channels, kernel) and kernel[0] * kernel[1] <= 255


@dataclass
class Add(Kernel):
    """ADD of two int8 tensors (TFLM's int8 ADD: left shift 20, rescale each input, rescale the sum)."""

    template_name: ClassVar[str] = "add"
    in_place_safe: ClassVar[bool] = True
    params_type: ClassVar[str] = "tinyevo_add_params"

    def scaled(self) -> bool:
        """Whether every requantization of the layer may take ``tinyevo_scale``'s one rounding
        step (exact for multipliers >= 0, right shifts of 1 to 22 and |value| < 2^30; an input
        shift of 0 is a high multiply alone, ``tinyevo_high_mul_lean``): the inputs' shifted
        values are at most 255 * 2^left_shift, each rescaled input at most that (the multipliers
        are below 2^31, the shifts right ones), their sum at most twice that."""
        p = self.op.params
        multipliers = [int(p[k]) for k in ("input1_multiplier", "input2_multiplier", "output_multiplier")]
        shifts = [int(p[k]) for k in ("input1_shift", "input2_shift", "output_shift")]
        return (all(m >= 0 for m in multipliers) and all(-22 <= s <= 0 for s in shifts[:2])
                and -22 <= shifts[2] <= -1 and 2 * 255 * (1 << int(p["left_shift"])) < 2 ** 30)

    def template_fields(self) -> dict:
        p = self.op.params
        full = (p["activation_min"], p["activation_max"]) == (-128, 127)
        return dict(SIZE=self.output.size, SCALED=int(self.scaled()), FULL_RANGE=int(full),
                    RIGHT1=int(int(p["input1_shift"]) != 0), RIGHT2=int(int(p["input2_shift"]) != 0))

    def params(self) -> list:
        p = self.op.params
        return [p["left_shift"], -self.inputs[0].zero_point, p["input1_multiplier"], p["input1_shift"],
                -self.inputs[1].zero_point, p["input2_multiplier"], p["input2_shift"],
                p["output_multiplier"], p["output_shift"], self.output.zero_point,
                p["activation_min"], p["activation_max"]]

    def flash_bytes(self) -> int:
        return 48


@dataclass
class Relu(Kernel):
    """Standalone RELU (TFLM requantizes with a multiplier of one, then clamps)."""

    template_name: ClassVar[str] = "relu"
    in_place_safe: ClassVar[bool] = True
    params_type: ClassVar[str] = "tinyevo_requantize_params"

    def template_fields(self) -> dict:
        return dict(SIZE=self.output.size)

    def params(self) -> list:
        p = self.op.params
        return [-self.inputs[0].zero_point, p["multiplier"], p["shift"], self.output.zero_point,
                p["activation_min"], p["activation_max"]]

    def flash_bytes(self) -> int:
        return 24


@dataclass
class Relu6(Kernel):
    template_name: ClassVar[str] = "relu6"
    in_place_safe: ClassVar[bool] = True

    def template_fields(self) -> dict:
        return dict(SIZE=self.output.size, ACT_MIN=self.op.params["zero"], ACT_MAX=self.op.params["six"])


@dataclass
class Quantize(Relu):
    """QUANTIZE int8 -> int8 (a change of scale) that is not folded into a concat."""

    template_name: ClassVar[str] = "quantize"

    def params(self) -> list:
        p = self.op.params
        return [-self.inputs[0].zero_point, p["multiplier"], p["shift"], self.output.zero_point, -128, 127]


@dataclass
class Reshape(Kernel):
    """RESHAPE: nothing at all when planned in place, else a copy."""

    template_name: ClassVar[str] = "reshape"
    in_place_safe: ClassVar[bool] = True

    def function_key(self) -> tuple | None:
        return None if self.in_place else super().function_key()

    def call(self) -> str:
        return f"/* {self.layer_comment()}: in place, nothing to do */" if self.in_place else super().call()

    def template_fields(self) -> dict:
        return dict(SIZE=self.output.size)


@dataclass
class Concatenation(Kernel):
    """CONCATENATION on channels; inputs with another scale are requantized on the way (the
    QUANTIZE ops TFLite needs before a concat are folded in here)."""

    template_name: ClassVar[str] = "concatenation"
    requantize: tuple[dict | None, ...] = ()  # per input: QUANTIZE params, or None

    def template_fields(self) -> dict:
        params = [p or {"multiplier": 0, "shift": 0} for p in self.requantize]
        joined = lambda values: ", ".join(str(int(v)) for v in values)  # noqa: E731
        return dict(COUNT=len(self.inputs), PIXELS=self.output.shape[0] * self.output.shape[1],
                    OUT_C=self.output.shape[2], OUTPUT_OFFSET=self.output.zero_point,
                    CHANNELS=joined(t.shape[2] for t in self.inputs),
                    REQUANTIZE=joined(p is not None for p in self.requantize),
                    INPUT_OFFSETS=joined(-t.zero_point for t in self.inputs),
                    MULTIPLIERS=joined(p["multiplier"] for p in params),
                    SHIFTS=joined(p["shift"] for p in params))

    def function_key(self) -> tuple:
        return (self.symbol, *super().function_key())  # its constants are in its code: one per layer

    def arguments(self) -> list[str]:
        pointers = ", ".join(t.pointer() for t in self.inputs)
        return [f"(const int8_t *const[]){{{pointers}}}", self.output.pointer()]

    def flash_bytes(self) -> int:
        return 13 * len(self.inputs)


KERNELS: dict[str, type[Kernel]] = {
    "conv_2d": Conv2D, "depthwise_conv_2d": DepthwiseConv2D, "fully_connected": FullyConnected,
    "max_pool_2d": MaxPool2D, "average_pool_2d": AveragePool2D, "add": Add, "relu": Relu,
    "relu6": Relu6, "quantize": Quantize, "reshape": Reshape, "concatenation": Concatenation}


def kernel_class(op: QuantizedOp) -> type[Kernel]:
    if op.kind == "depthwise_conv_2d" and not op.weights.any() and not op.bias.any():
        return Fill
    if op.kind not in KERNELS:
        raise TinyevoError(f"op {op.name!r}: kind {op.kind!r} has no C kernel")
    return KERNELS[op.kind]
