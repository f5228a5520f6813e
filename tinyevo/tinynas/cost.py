"""The cost TinyNAS searches under: the cost model with peak SRAM as the C code generator deploys it.

``estimate_cost`` counts peak SRAM layer by layer without in-place kernels by default (the default
of ``tinyevo search``). TinyNAS is the search half of MCUNet, whose engine (TinyEngine) runs
depthwise convolutions in place, and MCUNetV2 runs the first, high-resolution layers row by row;
``tinyevo.deploy.codegen`` does both: its memory planner (``plan_memory``) streams the best prefix
of the graph (``tinyevo.hardware.streaming``) with in-place kernels by default. Counting peak SRAM
the same way here (``DEPLOYED`` of ``tinyevo.hardware.execution``: streamed, in-place kernels) makes
the figure the search promises the arena the generated C code declares.
"""
from __future__ import annotations

from tinyevo.arch import Architecture
from tinyevo.hardware.arena import peak_sram_bytes
from tinyevo.hardware.cost import estimate_cost
from tinyevo.hardware.execution import DEPLOYED


def deployed_peak_sram_bytes(arch: Architecture) -> int:
    """Peak activation SRAM as the code generator plans it: streamed prefix, in-place kernels."""
    return peak_sram_bytes(arch, **DEPLOYED.arena_options())


def deployed_cost(arch: Architecture, board=None) -> dict:
    """``estimate_cost(arch, board)`` as a dict, ``peak_sram_bytes`` counted as deployed (streamed,
    in-place kernels)."""
    return estimate_cost(arch, board, **DEPLOYED.arena_options()).to_dict()
