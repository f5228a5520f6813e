"""Build a ``torch.nn.Module`` from an ``Architecture``.

The module computes exactly what the IR says, with TensorFlow's SAME padding (the odd pixel after),
average pooling that does not count padding, and flatten in NHWC order, so that the float model, the
int8 reference executor and the exported .tflite agree. Input and output are NCHW; a flat output
(1x1xC) comes back as (N, C).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinyevo.arch import INPUT, Architecture, Node, same_padding


def standard_strides(shape) -> tuple[int, ...]:
    """The strides of a freshly allocated (row-major, NCHW-contiguous) tensor of ``shape``."""
    strides, step = [], 1
    for size in reversed(tuple(shape)):
        strides.append(step)
        step *= max(int(size), 1)
    return tuple(reversed(strides))


def nchw(x: torch.Tensor) -> torch.Tensor:
    """``x`` with the strides of a fresh NCHW tensor: itself when it has them, else a copy.

    ``Tensor.contiguous()`` is not enough: a one-channel batch permuted from NHWC rows has strides
    (H*W, 1, W, 1), which count as NCHW-contiguous (the channel dimension has size 1) *and* as
    channels-last, and PyTorch's convolutions pick their memory format from the strides
    (``suggest_memory_format``), so such a batch runs the whole network channels-last. See
    ``Conv`` for why that matters."""
    if x.stride() == standard_strides(x.shape):
        return x
    return x.clone(memory_format=torch.contiguous_format)


def unsafe_channels_last(x: torch.Tensor, kernel, stride) -> bool:
    """True where oneDNN's channels-last 1x1 strided convolution backward would run (see ``Conv``)."""
    return (x.device.type == "cpu" and tuple(kernel) == (1, 1) and tuple(stride) != (1, 1)
            and x.dim() == 4 and x.stride() != standard_strides(x.shape))


def _pads(node: Node, shape) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) for F.pad, zero for 'valid'."""
    if node.attrs["padding"] != "same":
        return (0, 0, 0, 0)
    (kh, kw), (sh, sw) = node.attrs["kernel"], node.attrs["stride"]
    dh, dw = node.attrs.get("dilation", (1, 1))
    top, bottom = same_padding(shape[0], kh, sh, dh)
    left, right = same_padding(shape[1], kw, sw, dw)
    return (left, right, top, bottom)


class Pool(nn.Module):
    """Max or average pooling with SAME/VALID padding; averages exclude padded pixels."""

    def __init__(self, node: Node, in_shape):
        super().__init__()
        self.kind = node.op
        self.kernel, self.stride = node.attrs["kernel"], node.attrs["stride"]
        self.pads = _pads(node, in_shape)

    def forward(self, x):
        if self.kind == "max_pool":
            return F.max_pool2d(F.pad(x, self.pads, value=float("-inf")), self.kernel, self.stride)
        total = F.avg_pool2d(F.pad(x, self.pads), self.kernel, self.stride, divisor_override=1)
        if not any(self.pads):
            return total / (self.kernel[0] * self.kernel[1])
        ones = torch.ones_like(x[:1, :1])
        count = F.avg_pool2d(F.pad(ones, self.pads), self.kernel, self.stride, divisor_override=1)
        return total / count


class Conv(nn.Module):
    """Convolution with SAME/VALID padding.

    A 1x1 convolution with stride > 1 always gets an NCHW-strided input on the CPU: the
    weight-gradient kernel oneDNN runs for a channels-last (NHWC-strided) input of a 1x1 strided
    convolution with fewer than 8 input channels (``jit_avx2_1x1_convolution_bwd_weights_t``,
    torch 2.13.0+cpu, oneDNN 3.12, AVX2) writes outside its buffers: with one thread the process
    aborts with glibc heap corruption ("free(): invalid pointer", "corrupted double-linked list")
    or a segfault, with two threads it spins forever inside the kernel. A 3x3 kernel, stride 1,
    depthwise convolutions, pooling and NCHW inputs are not affected. The copy costs nothing
    where it is not needed (NCHW inputs are passed as they are)."""

    def __init__(self, node: Node, in_shape):
        super().__init__()
        a = node.attrs
        self.pads = _pads(node, in_shape)
        self.guard = tuple(a["kernel"]) == (1, 1) and tuple(a["stride"]) != (1, 1)
        self.conv = nn.Conv2d(in_shape[2], a["out_channels"], a["kernel"], a["stride"], 0,
                              a["dilation"], a["groups"], a["bias"])

    def forward(self, x):
        if self.guard and unsafe_channels_last(x, (1, 1), self.conv.stride):
            x = nchw(x)  # oneDNN bug workaround, see the class docstring
        return self.conv(F.pad(x, self.pads) if any(self.pads) else x)


class Flatten(nn.Module):
    def forward(self, x):  # NHWC order, as TFLite's RESHAPE sees it
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, 1, 1)


class Lambda(nn.Module):
    def __init__(self, fn, name: str):
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, *xs):
        return self.fn(*xs)

    def extra_repr(self) -> str:
        return self.name


def make_layer(node: Node, in_shapes) -> nn.Module:
    op, a, shape = node.op, node.attrs, in_shapes[0]
    if op == "conv2d":
        return Conv(node, shape)
    if op == "dense":
        return nn.Linear(shape[2], a["units"], bias=a["bias"])
    if op in ("max_pool", "avg_pool"):
        return Pool(node, shape)
    if op == "batch_norm":
        return nn.BatchNorm2d(shape[2])
    if op == "flatten":
        return Flatten()
    simple = {
        "global_avg_pool": lambda x: x.mean(dim=(2, 3), keepdim=True),
        "add": lambda *xs: sum(xs[1:], xs[0]),
        "concat": lambda *xs: torch.cat(xs, dim=1),
        "relu": F.relu, "relu6": F.relu6,
        "identity": lambda x: x, "zero": torch.zeros_like,
    }
    return Lambda(simple[op], op)


class ArchitectureModule(nn.Module):
    """Runs the IR's nodes in order. Tensors inside are (N, C, H, W); flat ones are (N, C, 1, 1)."""

    def __init__(self, architecture: Architecture):
        super().__init__()
        self.architecture = architecture
        self.nodes = architecture.live_nodes()
        self.layers = nn.ModuleDict({n.name: make_layer(n, architecture.input_shapes(n))
                                     for n in self.nodes})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {INPUT: x}
        for node in self.nodes:
            layer = self.layers[node.name]
            inputs = [values[s] for s in node.inputs]
            if node.op == "dense":
                values[node.name] = layer(inputs[0].flatten(1))[:, :, None, None]
            else:
                values[node.name] = layer(*inputs)
        out = values[self.architecture.output]
        return out.flatten(1) if out.shape[2:] == (1, 1) else out


def build(architecture: Architecture) -> ArchitectureModule:
    return ArchitectureModule(architecture)


def randomize_batch_norms(module: nn.Module, rng) -> None:
    """Random running statistics and affine parameters (some gammas negative) for every batch norm
    of ``module``, drawn from the NumPy generator ``rng``: a freshly built network has identity batch
    norms, so deployment checks need these for folding to really change the weights."""
    for layer in module.modules():
        if isinstance(layer, nn.BatchNorm2d):
            c = layer.num_features
            layer.running_mean.copy_(torch.as_tensor(rng.normal(0.0, 0.5, c)))
            layer.running_var.copy_(torch.as_tensor(rng.uniform(0.3, 2.0, c)))
            layer.weight.data.copy_(torch.as_tensor(rng.normal(1.0, 0.5, c)))
            layer.bias.data.copy_(torch.as_tensor(rng.normal(0.0, 0.3, c)))
