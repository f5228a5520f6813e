"""The continuous relaxation of the ``mbv2`` space at one width and resolution (DARTS, Liu et al.
2019, on MCUNet's MobileNetV2 blocks; the mixed kernel and the channel mask as in FBNetV2, Wan et
al. 2020, and single-path NAS, Stamoulis et al. 2019).

It runs the layers of the weight-sharing ``Supernet`` (``tinyevo.estimate.supernet``, plain kernel
crops) with three sets of architecture weights, each a softmax over that choice:

- kernel (one row per block slot): the depthwise convolution runs ``sum_k w_k pad(crop_k(W))``, the
  centre ``k x k`` of the largest kernel zero-padded back to it: one convolution that is exactly the
  ``k x k`` one of the subnet when ``w`` is one-hot (SAME padding grows by half the kernel's growth);
- expand ratio (one row per block slot): the hidden channels are multiplied by
  ``sum_e w_e [c < in * e]`` after the expand and after the depthwise layer, so the projection reads
  the first ``in * e`` channels, the subnet's, when ``w`` is one-hot;
- depth (one row per searched stage, the learnable skip): the stage's output is
  ``sum_d w_d x_d``, ``x_d`` the output after its first ``d`` blocks (skipping the rest).

For one-hot weights the forward is the subnet's, so ``Supernet.extract(genome)`` gives the weights of
``tinyevo.nn.build(space.decode(genome))`` that computes the same.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinyevo.arch import same_padding
from tinyevo.estimate.supernet import Supernet
from tinyevo.spaces.mbv2 import BLOCK_SLOTS, MAX_DEPTHS, SEARCHED_STAGES, MobileNetV2Space, stage_slots


class RelaxedMbv2(nn.Module):
    """Relaxed mbv2 of ``space`` at ``width`` and ``resolution`` (each one of the space's)."""

    def __init__(self, space: MobileNetV2Space, width: float, resolution: int, seed: int = 0):
        super().__init__()
        self.space, self.width, self.resolution = space, float(width), int(resolution)
        self.supernet = Supernet(space, width=width, kernel_transform=False, seed=seed)
        self.kernel_alpha = nn.Parameter(torch.zeros(BLOCK_SLOTS, len(space.kernels)))
        self.expand_alpha = nn.Parameter(torch.zeros(BLOCK_SLOTS, len(space.expands)))
        self.depth_alpha = nn.Parameter(torch.zeros(SEARCHED_STAGES, len(space.depths)))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.kernel_alpha, self.expand_alpha, self.depth_alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.supernet.parameters())

    def choice_weights(self) -> dict[str, torch.Tensor]:
        return {"kernel": torch.softmax(self.kernel_alpha, 1), "expand": torch.softmax(self.expand_alpha, 1),
                "depth": torch.softmax(self.depth_alpha, 1)}

    def forward(self, x: torch.Tensor, weights: dict | None = None) -> torch.Tensor:
        weights = self.choice_weights() if weights is None else weights
        net = self.supernet
        steps = net.steps(self.largest())
        for layer, settings in steps[:3]:  # stem and the fixed first block
            x = layer(x, **settings)
        out_channels = [s["out_channels"] for layer, s in steps[3:] if layer in list(net.blocks)]
        for stage in range(len(MAX_DEPTHS)):
            slots = stage_slots(stage)
            outputs = []
            for slot in slots:
                x = self.block(net.blocks[slot], x, out_channels[slot], weights["kernel"][slot],
                               weights["expand"][slot])
                outputs.append(x)
            if stage < SEARCHED_STAGES:
                x = sum(w * outputs[d - 1] for w, d in zip(weights["depth"][stage], self.space.depths))
        if net.feature_mix is not None:
            layer, settings = steps[-1]
            x = layer(x, **settings)
        return net.classifier(x.mean(dim=(2, 3)))

    def block(self, block, x: torch.Tensor, out_channels: int, kernel_weights, expand_weights):
        """The mixed inverted-residual block (see the module docstring)."""
        in_channels = x.shape[1]
        hidden = in_channels * max(self.space.expands)
        mask = sum(w * (torch.arange(hidden) < in_channels * e).to(x.dtype)
                   for w, e in zip(expand_weights, self.space.expands))[None, :, None, None]
        h = block.expand(x, hidden) * mask if block.expand is not None else x
        conv = block.depthwise.conv
        big = conv.max_kernel
        weight = sum(w * F.pad(conv.shrink_kernel(conv.weight[:hidden], k), [(big - k) // 2] * 4)
                     for w, k in zip(kernel_weights, self.space.kernels))
        top, bottom = same_padding(h.shape[2], big, conv.stride)
        left, right = same_padding(h.shape[3], big, conv.stride)
        h = F.conv2d(F.pad(h, (left, right, top, bottom)), weight, None, conv.stride, 0, 1, hidden)
        h = F.relu6(block.depthwise.bn(h)) * mask
        y = block.project(h, out_channels)
        return y + x if block.stride == 1 and in_channels == out_channels else y

    def largest(self) -> dict:
        return {**self.supernet.largest(), "resolution": self.resolution, "width": self.width}

    def genome(self) -> dict:
        """The argmax of every choice: an mbv2 genome at this width and resolution."""
        w, s = self.choice_weights(), self.space
        return {"resolution": self.resolution, "width": self.width,
                "depth": [s.depths[int(i)] for i in w["depth"].argmax(1)],
                "kernel": [s.kernels[int(i)] for i in w["kernel"].argmax(1)],
                "expand": [s.expands[int(i)] for i in w["expand"].argmax(1)]}


def one_hot_choices(space: MobileNetV2Space, genome: dict) -> dict[str, torch.Tensor]:
    """Choice weights of ``genome``: 1 for each slot's and stage's choice, 0 elsewhere."""
    def rows(values, choices):
        return F.one_hot(torch.tensor([choices.index(v) for v in values]), len(choices)).to(torch.float32)
    return {"kernel": rows(genome["kernel"], space.kernels), "expand": rows(genome["expand"], space.expands),
            "depth": rows(genome["depth"], space.depths)}
