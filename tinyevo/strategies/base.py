"""The ``Strategy`` interface (ask/tell, as in pymoo and Optuna) and the records it sees.

A strategy never trains, never touches files and never sleeps: it proposes ``Candidate`` genomes and
learns from finished ``Trial`` records. A run with hard constraints hands the strategy the cost
model's verdict (``set_feasibility``): a strategy may use it to redraw, at no training cost, a
candidate that would break a bound (constraint-aware sampling; the evolutionary strategies do). The runner does evaluation, storage and parallelism. Given
the same seed and the same told results, a strategy asks the same candidates: that is what lets a
run be resumed by replaying its store.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tinyevo.registry import Registry
from tinyevo.spaces.base import Genome, SearchSpace

STRATEGIES: Registry["Strategy"] = Registry("strategy")

OK, FAILED, INFEASIBLE = "ok", "failed", "infeasible"


@dataclass
class Candidate:
    """A genome a strategy wants evaluated, with where it came from."""

    genome: Genome
    parents: tuple[int, ...] = ()
    origin: str = "sample"  # sample | trivial | seeded | mutation | crossover | ...


@dataclass
class Objective:
    """A metric to optimize: ``Objective("accuracy", "max")``, ``Objective("peak_sram_bytes", "min")``."""

    metric: str
    direction: str = "max"

    def __post_init__(self):
        if self.direction not in ("max", "min"):
            raise ValueError(f"direction must be 'max' or 'min', got {self.direction!r}")

    def as_loss(self, value: float) -> float:
        """The value turned into something to minimize."""
        return -value if self.direction == "max" else value


@dataclass
class Trial:
    """One evaluated candidate. ``metrics`` holds accuracy and every cost figure of the cost model."""

    id: int
    genome: Genome
    status: str = OK  # ok | failed | infeasible
    metrics: dict[str, float] = field(default_factory=dict)
    parents: tuple[int, ...] = ()
    origin: str = "sample"
    key: str = ""

    def value(self, objective: Objective) -> float | None:
        """The objective's value, or None when the trial failed or broke a constraint."""
        if self.status != OK or objective.metric not in self.metrics:
            return None
        return float(self.metrics[objective.metric])


#: The strategy a run uses when none is named (``tinyevo search``, ``tinyevo.search()``).
DEFAULT_STRATEGY = "nsga2"
DEFAULT_OBJECTIVES = (Objective("accuracy", "max"),)


class Strategy(ABC):
    """Proposes candidates (``ask``) and learns from results (``tell``)."""

    name: str = ""
    #: True when the strategy optimizes several objectives at once (a Pareto front).
    multi_objective: bool = False

    def __init__(self, space: SearchSpace, seed: int = 0, objectives=DEFAULT_OBJECTIVES, **options: Any):
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.objectives = tuple(o if isinstance(o, Objective) else Objective(*o) for o in objectives)
        #: The run's hard limits by cost-model metric (``{"peak_sram_bytes": 65536}``), set by the
        #: runner (``set_limits``); empty when the run has none.
        self.limits: dict[str, float] = {}

    #: ``feasible(genome) -> bool``: the cost model's verdict on the run's hard constraints, set by
    #: the runner (``set_feasibility``); None when the run has no constraints.
    feasible: Callable[[Genome], bool] | None = None

    def set_feasibility(self, check: Callable[[Genome], bool] | None) -> None:
        """Told by the runner before the first ask: which genomes meet the hard constraints."""
        self.feasible = check

    #: ``costs(genome) -> dict | None``: the cost model's figures for a genome (peak SRAM, flash,
    #: MACs, latency...), exact and without training; set by the runner (``set_costs``), None
    #: outside a run. A model-based strategy scores the cost objectives of an untrained candidate
    #: with it (``surrogate``).
    costs: Callable[[Genome], dict | None] | None = None

    def set_costs(self, costs: Callable[[Genome], dict | None] | None) -> None:
        """Told by the runner before the first ask: the cost model, genome by genome."""
        self.costs = costs

    def cost_of(self, genome: Genome) -> dict | None:
        """The cost model's figures for ``genome``, or None (no cost model told, or it failed)."""
        return self.costs(genome) if self.costs is not None else None

    def set_limits(self, limits: dict[str, float]) -> None:
        """Told by the runner before the first ask: the hard limits of the run, by the cost-model
        metric each bounds; a hardware-aware reward takes them as its targets (``reinforce``)."""
        self.limits = dict(limits)

    def meets_constraints(self, genome: Genome) -> bool:
        """True unless the runner's cost model says ``genome`` breaks a hard constraint."""
        return self.feasible is None or bool(self.feasible(genome))

    def settings(self) -> dict:
        """The declared options that identify this strategy in a run's config (the seed and the
        objectives are recorded apart): a resume with other settings is refused. A strategy with
        options overrides this; one without has none."""
        return {}

    @property
    def objective(self) -> Objective:
        """The objective a single-objective strategy optimizes: the first one."""
        return self.objectives[0]

    def fitness(self, trial: Trial) -> float:
        """Larger is better; failed or infeasible trials get -inf."""
        value = trial.value(self.objective)
        if value is None:
            return float("-inf")
        return value if self.objective.direction == "max" else -value

    @abstractmethod
    def ask(self, n: int) -> list[Candidate]:
        """``n`` candidates to evaluate next."""

    @abstractmethod
    def tell(self, trials: list[Trial]) -> None:
        """Results for candidates asked before, in the order they were asked."""
