"""The cost TinyNAS searches under: the cost model with peak SRAM as the C code generator deploys it.

``estimate_cost`` counts peak SRAM without in-place kernels (the search default of ``tinyevo
search``). TinyNAS is the search half of MCUNet, whose engine (TinyEngine) runs depthwise
convolutions in place; ``tinyevo.deploy.codegen`` does the same, and its memory planner takes its
schedule from ``memory.schedule(arch, in_place_kernels=True)``. Counting peak SRAM that way here
makes the figure the search promises the arena the generated C code declares.
"""
from __future__ import annotations

from tinyevo.arch import Architecture
from tinyevo.hardware.cost import estimate_cost
from tinyevo.hardware.memory import schedule


def deployed_peak_sram_bytes(arch: Architecture) -> int:
    """Peak activation SRAM with the code generator's in-place kernels."""
    return schedule(arch, in_place_kernels=True).peak_bytes


def deployed_cost(arch: Architecture, board=None) -> dict:
    """``estimate_cost(arch, board)`` as a dict, ``peak_sram_bytes`` counted with in-place kernels."""
    return estimate_cost(arch, board, in_place_kernels=True).to_dict()
