"""Hard constraints of the target board, checked with the cost model before anything is evaluated.

A candidate that breaks one is recorded as ``infeasible`` and never trained. Its metrics carry the
cost figures and ``constraint_violation``: the sum over broken limits of the relative excess
``(value - limit) / limit``, so that strategies can prefer candidates that are nearly feasible
(the constraint-domination rule of Deb et al., 2002). The limits themselves, and every spelling of
them, are the table of ``tinyevo.hardware.limits``.

A candidate whose input comes from an audio front-end is costed with it: network + front-end
(``tinyevo.audio.features.with_frontend_cost``: its RAM in peak SRAM, its tables in flash, its
work in MACs; its own share in the ``frontend_*`` columns). The front-end is the candidate's own
(``Architecture.frontend``, a search with front-end genes) or the one that made the dataset's
features (``frontend``, from the dataset's ``meta["frontend"]``). The limits see the totals.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

from tinyevo.audio.features import frontend_of, with_frontend_cost
from tinyevo.audio.frontend import FrontEnd
from tinyevo.hardware.cost_model import cost_model as default_cost_model
from tinyevo.hardware.execution import SEARCHED, ExecutionModel
from tinyevo.hardware.limits import LIMITED_METRICS, Constraints
from tinyevo.run.jobs import clean_metrics

__all__ = ["ConstraintFilter", "Constraints", "LIMITED_METRICS"]


class ConstraintFilter:
    """The runner's check of a candidate before it is evaluated: its cost on ``board`` by
    ``cost_model(architecture, board)`` (default: the cost model of ``execution``,
    ``tinyevo.hardware.cost_model``) and its violation of ``constraints``; ``frontend`` (a
    ``FrontEnd``, or None) is the front-end before every network that has none of its own."""

    def __init__(self, constraints: Constraints | None = None, board: Any = None,
                 cost_model: Callable | None = None, execution: ExecutionModel | None = None,
                 frontend: FrontEnd | None = None):
        self.constraints = constraints if constraints is not None else Constraints()
        self.frontend = frontend
        self.board = board
        self.execution = execution if execution is not None or cost_model is not None else SEARCHED
        self.cost_model = cost_model if cost_model is not None else default_cost_model(self.execution)

    def cost(self, architecture) -> dict:
        """The cost model's numeric figures (not None, not board names), the front-end's added."""
        cost = self.cost_model(architecture, self.board)
        frontend = frontend_of(architecture) or self.frontend
        if frontend is not None:
            cost = with_frontend_cost(cost, frontend)
        figures = cost if isinstance(cost, dict) else cost.to_dict()
        return clean_metrics({name: value for name, value in figures.items()
                              if isinstance(value, numbers.Number)})

    def violation(self, cost: dict) -> float:
        """Sum of the relative excesses of ``cost`` over the limits; 0.0 when it is feasible."""
        return self.constraints.violation(cost)

    def feasible(self, architecture) -> bool:
        return self.violation(self.cost(architecture)) == 0

    def identity(self) -> dict:
        """What a run records of its execution model (``ExecutionModel.identity``); nothing for a
        cost model of the caller's own."""
        return self.execution.identity() if self.execution is not None else {}

    @property
    def active(self) -> bool:
        """Whether any limit is set (else every candidate passes)."""
        return bool(self.constraints.limits())
