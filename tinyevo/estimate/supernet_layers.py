"""Elastic layers of a weight-sharing supernet (Once-for-All, Cai et al. 2020; MCUNet's TinyNAS).

Each layer holds the weights of its largest setting and runs a smaller one from a slice of them,
as OFA's ``Dynamic*`` modules do: the first ``out_channels`` filters over the first input
channels, the centre of the largest kernel (optionally passed through OFA's learnt kernel
transform matrices, 7x7 -> 5x5 -> 3x3), the first batch-norm channels. Padding is TensorFlow's
SAME, as in ``tinyevo.nn``, so a subnet computes what ``tinyevo.nn.build(space.decode(genome))``
computes with the extracted weights.

``export`` gives the weights of one setting as ``[(op, {name: tensor})]`` in execution order,
named as ``tinyevo.nn`` names them inside a layer (``conv.weight`` of a conv2d; ``weight``,
``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked`` of a batch_norm).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinyevo.arch import same_padding

Exported = list[tuple[str, dict[str, torch.Tensor]]]


class ElasticConv2d(nn.Module):
    """A convolution without bias whose filters, input channels and kernel size can shrink."""

    def __init__(self, max_in: int, max_out: int, kernels, stride: int = 1,
                 depthwise: bool = False, kernel_transform: bool = False):
        super().__init__()
        self.kernels = sorted({int(k) for k in kernels})
        self.max_kernel, self.stride, self.depthwise = self.kernels[-1], int(stride), depthwise
        size = self.max_kernel
        self.weight = nn.Parameter(torch.empty(max_out, 1 if depthwise else max_in, size, size))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")  # as torchvision's MobileNetV2
        self.transforms = nn.ParameterDict()
        if kernel_transform:  # OFA: one k*k x k*k matrix per step down, identity at first
            steps = self.kernels[::-1]
            for big, small in zip(steps, steps[1:]):
                self.transforms[f"{big}to{small}"] = nn.Parameter(torch.eye(small * small))

    def active_weight(self, in_channels: int, out_channels: int, kernel: int) -> torch.Tensor:
        weight = self.weight[:out_channels] if self.depthwise else self.weight[:out_channels, :in_channels]
        return self.shrink_kernel(weight, kernel)

    def shrink_kernel(self, weight: torch.Tensor, kernel: int) -> torch.Tensor:
        """The centre ``kernel`` x ``kernel`` of the largest kernel, through the transforms if any."""
        if kernel == self.max_kernel:
            return weight
        if kernel not in self.kernels:
            raise ValueError(f"kernel {kernel} is not one of this layer's {self.kernels}")
        if not self.transforms:
            start = (self.max_kernel - kernel) // 2
            return weight[:, :, start:start + kernel, start:start + kernel]
        steps = self.kernels[::-1]
        for big, small in zip(steps, steps[1:]):
            start = (big - small) // 2
            weight = weight[:, :, start:start + small, start:start + small]
            flat = weight.reshape(*weight.shape[:2], small * small)
            weight = F.linear(flat, self.transforms[f"{big}to{small}"]).reshape(weight.shape)
            if small == kernel:
                break
        return weight

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int) -> torch.Tensor:
        in_channels = x.shape[1]
        out_channels = in_channels if self.depthwise else out_channels
        weight = self.active_weight(in_channels, out_channels, kernel).contiguous()
        top, bottom = same_padding(x.shape[2], kernel, self.stride)
        left, right = same_padding(x.shape[3], kernel, self.stride)
        padding = (top, left)
        if top != bottom or left != right:  # SAME's odd pixel after: pad by hand (a copy, so only then)
            x, padding = F.pad(x, (left, right, top, bottom)), 0
        return F.conv2d(x, weight, None, self.stride, padding, 1, in_channels if self.depthwise else 1)


class ElasticBatchNorm2d(nn.Module):
    """Batch norm over the first channels of a ``BatchNorm2d`` of the largest width.

    The running statistics of the active channels are updated in place, exactly as
    ``nn.BatchNorm2d`` updates its own (``momentum=None`` gives a cumulative average).
    """

    def __init__(self, max_channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(max_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn, channels, factor = self.bn, x.shape[1], 0.0
        if self.training and bn.track_running_stats:
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        return F.batch_norm(x, bn.running_mean[:channels], bn.running_var[:channels],
                            bn.weight[:channels], bn.bias[:channels], self.training, factor, bn.eps)

    def export(self, channels: int) -> dict[str, torch.Tensor]:
        bn = self.bn
        return {"weight": bn.weight[:channels], "bias": bn.bias[:channels],
                "running_mean": bn.running_mean[:channels], "running_var": bn.running_var[:channels],
                "num_batches_tracked": bn.num_batches_tracked}


class ElasticLinear(nn.Module):
    """A dense classifier reading the first ``in_features`` of its largest input."""

    def __init__(self, max_in: int, units: int):
        super().__init__()
        self.linear = nn.Linear(max_in, units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.linear.weight[:, :x.shape[1]], self.linear.bias)

    def export(self, in_features: int) -> Exported:
        return [("dense", {"weight": self.linear.weight[:, :in_features], "bias": self.linear.bias})]


class ConvBnAct(nn.Module):
    """Elastic convolution, batch norm, then ReLU6 (or nothing), as ``GraphBuilder.conv_bn_act``."""

    def __init__(self, max_in: int, max_out: int, kernels=(1,), stride: int = 1,
                 depthwise: bool = False, act: bool = True, kernel_transform: bool = False):
        super().__init__()
        self.conv = ElasticConv2d(max_in, max_out, kernels, stride, depthwise, kernel_transform)
        self.bn = ElasticBatchNorm2d(max_out)
        self.act = act

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int = 1) -> torch.Tensor:
        x = self.bn(self.conv(x, out_channels, kernel))
        return F.relu6(x) if self.act else x

    def export(self, in_channels: int, out_channels: int, kernel: int = 1) -> Exported:
        out_channels = in_channels if self.conv.depthwise else out_channels
        weight = self.conv.active_weight(in_channels, out_channels, kernel)
        return [("conv2d", {"conv.weight": weight}), ("batch_norm", self.bn.export(out_channels))]


class ElasticInvertedResidual(nn.Module):
    """MobileNetV2 block with elastic kernel, expand ratio and channels (OFA's ``DynamicMBConvLayer``).

    The hidden layer holds ``in_channels * expand`` channels, the first ones of the largest
    expansion; as in ``GraphBuilder.inverted_residual`` an expand ratio of 1 has no expand conv and
    the block adds its input when the stride is 1 and the channels agree.
    """

    def __init__(self, max_in: int, max_out: int, kernels, max_expand: int, stride: int,
                 kernel_transform: bool = False):
        super().__init__()
        hidden, self.stride = max_in * max_expand, int(stride)
        self.expand = ConvBnAct(max_in, hidden) if max_expand > 1 else None
        self.depthwise = ConvBnAct(hidden, hidden, kernels, stride, depthwise=True,
                                   kernel_transform=kernel_transform)
        self.project = ConvBnAct(hidden, max_out, act=False)

    def forward(self, x: torch.Tensor, out_channels: int, kernel: int, expand: int) -> torch.Tensor:
        in_channels = x.shape[1]
        y = self.expand(x, in_channels * expand) if expand != 1 else x
        y = self.project(self.depthwise(y, y.shape[1], kernel), out_channels)
        return y + x if self.stride == 1 and in_channels == out_channels else y

    def export(self, in_channels: int, out_channels: int, kernel: int, expand: int) -> Exported:
        hidden = in_channels * expand
        layers = self.expand.export(in_channels, hidden) if expand != 1 else []
        return (layers + self.depthwise.export(hidden, hidden, kernel)
                + self.project.export(hidden, out_channels))
