"""The ``Estimator`` interface (survey section I-C): how good is a candidate architecture?

An estimator returns metrics such as ``accuracy`` (validation accuracy in [0, 1]) for one
architecture. It declares what it provides and what it needs from the ``EvalContext``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyevo.arch import Architecture
from tinyevo.registry import Registry

ESTIMATORS: Registry["Estimator"] = Registry("estimator")


class EstimationFailed(Exception):
    """A candidate could not be evaluated (NaN loss, out of memory...): recorded as failed."""


@dataclass
class EvalContext:
    """What an estimator may use besides the architecture."""

    genome: Any = None
    space: Any = None
    trial_id: int = -1
    seed: int = 0
    parents: tuple[int, ...] = ()
    #: Folder of the run (weights of trials are kept under it), or None for in-memory use.
    run_dir: Path | None = None
    extra: dict = field(default_factory=dict)


class Estimator(ABC):
    name: str = ""
    #: Metrics ``evaluate`` returns, ``accuracy`` at least.
    provides: tuple[str, ...] = ("accuracy",)
    #: Fields of ``EvalContext`` it cannot work without, e.g. ("genome",) or ("run_dir",).
    needs: tuple[str, ...] = ()
    #: Metrics among ``provides`` that are measured times: the only ones a seed does not fix.
    timings: tuple[str, ...] = ()

    @abstractmethod
    def evaluate(self, architecture: Architecture, context: EvalContext) -> dict[str, float]:
        """Metrics of one architecture; raises EstimationFailed when it cannot be evaluated."""
