"""How a model runs on the microcontroller, and so how its peak SRAM is counted: ``ExecutionModel``.

Three choices make the figure:

- ``execution``: ``"layer_by_layer"`` (whole tensors, op after op, as uNAS counts them) or
  ``"streamed"`` (the first, high-resolution ops row by row through line buffers, MCUNetV2-style;
  ``tinyevo.hardware.streaming``);
- ``in_place_kernels``: whether depthwise, 1x1 and add kernels write over their input, as the C code
  generator's do (TinyEngine-style; ``tinyevo.hardware.memory``);
- ``runtime``: whose arena it is: ``"c"`` (the generated C library's, the cost model's own count)
  or ``"tflm"`` (TensorFlow Lite Micro's tensor arena for the exported .tflite, measured;
  ``tinyevo.hardware.tflm_arena``; layer by layer only).

Two settings are named here, once, and every command starts from one of them:

- ``SEARCHED`` (layer by layer, no in-place kernels, runtime c) is how ``tinyevo search``,
  ``tinyevo cost`` and the runner count peak SRAM unless told otherwise. It is the uNAS count and
  the figure of every run stored before streaming existed: a stored run records its execution
  only when it is not this one (``ExecutionModel.identity``), so those runs still resume.
- ``DEPLOYED`` (streamed, in-place kernels) is how ``tinyevo export --format c`` runs a model unless
  told otherwise, and how TinyNAS counts peak SRAM: the smallest arena, the one the generated C
  declares (the goldens of ``tests/golden`` are generated so).

The search's ``--execution`` names only the first choice: ``streamed`` comes with the in-place
kernels (``ExecutionModel.searched``); the export's ``--execution`` always keeps them
(``ExecutionModel.deployed``).

``tinyevo.hardware.cost_model`` turns an ``ExecutionModel`` into the cost function the runner calls.
"""
from __future__ import annotations

from dataclasses import dataclass

from tinyevo.errors import TinyevoError

LAYER_BY_LAYER, STREAMED = "layer_by_layer", "streamed"
EXECUTIONS = (LAYER_BY_LAYER, STREAMED)
RUNTIMES = ("c", "tflm")


def check_execution(execution: str) -> None:
    """Refuse an ``execution`` that is not one of ``EXECUTIONS``, in one line."""
    if execution not in EXECUTIONS:
        raise TinyevoError(f"execution must be one of {', '.join(EXECUTIONS)}, got {execution!r}")


def check_runtime(runtime: str, execution: str = LAYER_BY_LAYER) -> None:
    """Refuse a ``runtime`` that is not one of ``RUNTIMES``, or TFLM with a streamed execution,
    in one line."""
    if runtime not in RUNTIMES:
        raise TinyevoError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "tflm" and execution != LAYER_BY_LAYER:
        raise TinyevoError(f"runtime tflm runs whole tensors layer by layer, so execution {execution!r} "
                           f"does not apply to it; drop --execution or use --runtime c")


@dataclass(frozen=True)
class ExecutionModel:
    """How a model runs: ``execution`` (``EXECUTIONS``), ``in_place_kernels`` and ``runtime``
    (``RUNTIMES``); checked when made, so a bad one fails in one line."""

    execution: str = LAYER_BY_LAYER
    in_place_kernels: bool = False
    runtime: str = "c"

    def __post_init__(self):
        check_execution(self.execution)
        check_runtime(self.runtime, self.execution)

    @classmethod
    def searched(cls, execution: str = LAYER_BY_LAYER, runtime: str = "c") -> "ExecutionModel":
        """The search's ``--execution`` / ``--runtime``: streamed with the in-place kernels (the
        generated C's arena), layer by layer without them (the uNAS count)."""
        return cls(execution, execution == STREAMED, runtime)

    @classmethod
    def deployed(cls, execution: str = STREAMED) -> "ExecutionModel":
        """The export's ``--execution``: the C library keeps its in-place kernels either way."""
        return cls(execution, True)

    @property
    def streamed(self) -> bool:
        return self.execution == STREAMED

    def arena_options(self) -> dict:
        """The keyword arguments of ``estimate_cost``, ``peak_sram_bytes`` and ``plan_arena``."""
        return {"in_place_kernels": self.in_place_kernels, "execution": self.execution}

    def identity(self) -> dict:
        """What a run records of it (``Runner.config``): only what differs from ``SEARCHED`` --
        ``in_place_kernels`` only where ``searched`` would not give it -- so that runs stored before
        a setting existed resume."""
        recorded = {}
        if self.execution != SEARCHED.execution:
            recorded["execution"] = self.execution
        if self.runtime != SEARCHED.runtime:
            recorded["runtime"] = self.runtime
        if self.in_place_kernels != self.searched(self.execution).in_place_kernels:
            recorded["in_place_kernels"] = self.in_place_kernels
        return recorded


#: How the search, ``tinyevo cost`` and the runner count peak SRAM unless told otherwise.
SEARCHED = ExecutionModel()
#: How ``tinyevo export --format c`` (and ``generate_c``) runs a model unless told otherwise, and how
#: TinyNAS counts peak SRAM.
DEPLOYED = ExecutionModel.deployed()
