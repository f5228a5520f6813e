"""Expected MACs, flash and peak SRAM of the relaxed mbv2 network (FBNet / ProxylessNAS style: each
block slot's kernel and expand ratio, and each stage's depth, drawn independently from their softmax
weights).

A network's MACs and flash are the fixed layers' (stem, first block, feature mix, classifier) plus
each active block's; a block's cost depends on its kernel and expand ratio only (its channels and
stride are fixed at one width), so ``E[cost] = fixed + sum_slots P(active) sum_{k,e} w_k w_e
cost(slot, k, e)``, ``P(active)`` the weight of the stage's depths that reach the slot: exact, the cost
model's figures, for one-hot weights. Each ``cost(slot, k, e)`` is the cost model's figure for the
block alone (``GraphBuilder.inverted_residual`` on its input shape). Peak SRAM is the cost model's
figure of the argmax genome, with the gradient of the largest expected ``input + hidden`` bytes over
the slots, each weighted by ``P(active)`` (a straight-through estimator, as for nb201).
"""
from __future__ import annotations

import functools

import torch

from tinyevo.arch import GraphBuilder
from tinyevo.estimate.supernet import ChannelPlan
from tinyevo.hardware.cost import estimate_cost, flash_bytes, macs
from tinyevo.spaces.mbv2 import BLOCK_SLOTS, MAX_DEPTHS, SEARCHED_STAGES, STAGE_STRIDES, MobileNetV2Space


def block_inputs(space: MobileNetV2Space, width: float, resolution: int) -> list[tuple]:
    """(input shape, out channels, stride) of every block slot, in slot order (SAME strides)."""
    plan = ChannelPlan.of(width, space.feature_mix_layer)
    size, channels, slots = -(-resolution // 2), plan.first, []
    for stage, (out, stride) in enumerate(zip(plan.stages, STAGE_STRIDES)):
        for i in range(MAX_DEPTHS[stage]):
            step = stride if i == 0 else 1
            slots.append(((size, size, channels), out, step))
            size, channels = -(-size // step), out
    return slots


def block_cost(shape, out: int, stride: int, kernel: int, expand: int) -> tuple[int, int, int]:
    """(MACs, flash bytes, input + hidden bytes) of one block alone."""
    g = GraphBuilder(shape)
    arch = g.build(g.inverted_residual(g.input, out, kernel, stride, expand))
    return macs(arch), flash_bytes(arch), shape[0] * shape[1] * shape[2] * (1 + expand)


@functools.lru_cache(maxsize=8)
def mbv2_tables(space: MobileNetV2Space, width: float, resolution: int) -> dict[str, torch.Tensor]:
    """Per slot (slots x kernels x expands) tables, and the fixed part of MACs and flash."""
    tables = {name: torch.zeros(BLOCK_SLOTS, len(space.kernels), len(space.expands), dtype=torch.float64)
              for name in ("macs", "flash_bytes", "sram")}
    for slot, (shape, out, stride) in enumerate(block_inputs(space, width, resolution)):
        for i, k in enumerate(space.kernels):
            for j, e in enumerate(space.expands):
                for name, value in zip(("macs", "flash_bytes", "sram"), block_cost(shape, out, stride, k, e)):
                    tables[name][slot, i, j] = value
    smallest = {"resolution": resolution, "width": width, "depth": [min(space.depths)] * SEARCHED_STAGES,
                "kernel": [space.kernels[0]] * BLOCK_SLOTS, "expand": [space.expands[0]] * BLOCK_SLOTS}
    arch = space.decode(smallest)
    active = active_probability(space, one_hot_depths(space, smallest["depth"]))
    for name, total in (("macs", macs(arch)), ("flash_bytes", flash_bytes(arch))):
        tables[f"fixed_{name}"] = total - float((active * tables[name][:, 0, 0]).sum())
    return tables


def one_hot_depths(space: MobileNetV2Space, depths: list[int]) -> torch.Tensor:
    rows = torch.zeros(SEARCHED_STAGES, len(space.depths), dtype=torch.float64)
    for stage, depth in enumerate(depths):
        rows[stage, space.depths.index(depth)] = 1
    return rows


def active_probability(space: MobileNetV2Space, depth_weights: torch.Tensor) -> torch.Tensor:
    """P(slot active) per slot: the weight of the stage's depths above the slot's place (the last,
    unsearched stage's block is always active)."""
    probabilities = []
    for stage, depth in enumerate(MAX_DEPTHS):
        for place in range(depth):
            if stage >= SEARCHED_STAGES:
                probabilities.append(depth_weights.new_ones(()))
            else:
                reach = torch.tensor([d > place for d in space.depths], dtype=depth_weights.dtype)
                probabilities.append((depth_weights[stage] * reach).sum())
    return torch.stack(probabilities)


def expected_cost_mbv2(space: MobileNetV2Space, width: float, resolution: int,
                       weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Expected MACs, flash and peak SRAM under choice weights (``RelaxedMbv2.choice_weights``)."""
    tables = mbv2_tables(space, width, resolution)
    kernel, expand = weights["kernel"].double(), weights["expand"].double()
    active = active_probability(space, weights["depth"].double())
    cost = {}
    for name in ("macs", "flash_bytes"):
        per_slot = torch.einsum("sk,se,ske->s", kernel, expand, tables[name])
        cost[name] = tables[f"fixed_{name}"] + (active * per_slot).sum()
    proxy = (active * torch.einsum("sk,se,ske->s", kernel, expand, tables["sram"])).max()
    genome = {"resolution": resolution, "width": width,
              "depth": [space.depths[int(i)] for i in weights["depth"].argmax(1)],
              "kernel": [space.kernels[int(i)] for i in weights["kernel"].argmax(1)],
              "expand": [space.expands[int(i)] for i in weights["expand"].argmax(1)]}
    peak = float(estimate_cost(space.decode(genome)).peak_sram_bytes)
    cost["peak_sram_bytes"] = peak + proxy - proxy.detach()
    return cost
