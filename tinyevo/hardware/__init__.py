"""Hardware cost model over the IR: params, MACs, flash, peak SRAM, latency, energy; boards as data.

>>> from tinyevo.zoo import resnet8
>>> cost = estimate_cost(resnet8(), "STM32F746")
>>> cost.macs, cost.peak_sram_bytes
(12501632, 49152)
"""
from tinyevo.hardware.arena import Arena, peak_sram_bytes, plan_arena
from tinyevo.hardware.board import Board, list_boards, load_board
from tinyevo.hardware.cost import (BIAS_BYTES, QUANT_BYTES_PER_CHANNEL, WEIGHT_BYTES, Cost,
                                   estimate_cost, flash_bytes, folded_params, macs)
from tinyevo.hardware.folding import batch_norm_folds
from tinyevo.hardware.latency import energy_mj, latency_ms, layer_cycles, op_kind
from tinyevo.hardware.memory import Schedule, Step, schedule, split_adds, tensor_bytes

__all__ = ["Arena", "BIAS_BYTES", "Board", "Cost", "QUANT_BYTES_PER_CHANNEL", "Schedule", "Step",
           "WEIGHT_BYTES", "batch_norm_folds", "energy_mj", "estimate_cost", "flash_bytes",
           "folded_params", "latency_ms", "layer_cycles", "list_boards", "load_board", "macs",
           "op_kind", "peak_sram_bytes", "plan_arena", "schedule", "split_adds", "tensor_bytes"]
