"""The cost function the runner calls, ``cost_model(architecture, board)``, for an ``ExecutionModel``.

``cost_model(execution)`` is ``estimate_cost`` with peak SRAM counted as ``execution`` says
(``tinyevo.hardware.execution``): layer by layer without in-place kernels by default (``SEARCHED``,
the uNAS count, the figures of every run before streaming existed); streamed with the in-place
kernels, the arena ``tinyevo export --format c`` plans; or, for runtime ``tflm``, TFLite Micro's
arena for the model's .tflite, measured (``TflmCostModel``).
"""
from __future__ import annotations

import functools
from typing import Callable

from tinyevo.hardware.cost import estimate_cost
from tinyevo.hardware.execution import LAYER_BY_LAYER, SEARCHED, ExecutionModel
from tinyevo.hardware.tflm_arena import TflmCostModel


def cost_model(execution: ExecutionModel = SEARCHED) -> Callable:
    """``cost_model(architecture, board)`` of ``execution``: a ``Cost`` per architecture."""
    if execution.runtime == "tflm":
        return TflmCostModel()
    if execution == SEARCHED:
        return estimate_cost
    return functools.partial(estimate_cost, **execution.arena_options())


def search_cost_model(execution: str = LAYER_BY_LAYER, runtime: str = "c") -> Callable:
    """``cost_model`` of the search's settings ``--execution`` and ``--runtime``
    (``ExecutionModel.searched``)."""
    return cost_model(ExecutionModel.searched(execution, runtime))
