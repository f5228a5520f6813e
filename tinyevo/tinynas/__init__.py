"""TinyNAS, the search half of MCUNet (Lin et al. 2020): two stages under a board's memory budgets.

1. **Search-space optimization** (``stage1``): for each (width multiplier, input resolution)
   sub-space of ``mbv2``, sample models at random, keep those that fit the SRAM and flash limits,
   and pick the sub-space whose fitting models have the highest mean MACs (the FLOPs-CDF heuristic:
   more computation within the same memory means more capacity).
2. **Evolution on a supernet** (``stage2``): train the weight-sharing supernet of the chosen
   sub-space, run the ``mcunet`` evolution under the constraints with subnets scored by inherited
   weights, then fine-tune the winner from those weights and score it in float and int8.

``TinyNASJob`` (``job``) runs both into one folder, resumable, that ``tinyevo show`` and
``tinyevo export`` read like a ``tinyevo search`` run. Peak SRAM is counted as the C code
generator deploys the model (``deployed_cost``: the first layers streamed row by row, in-place
depthwise, 1x1 and add kernels).
"""
from tinyevo.tinynas.cost import deployed_cost
from tinyevo.tinynas.stage1 import (SpaceOptimization, SubSpaceStats, mbv2_sub_spaces,
                                    optimize_search_space, plot_cdfs)

__all__ = ["SpaceOptimization", "SubSpaceStats", "deployed_cost", "mbv2_sub_spaces",
           "optimize_search_space", "plot_cdfs"]
