"""Restart: begin again from fresh samples when the search is stuck at a local optimum.

A greedy population (a tournament as large as the population always breeds from the best member)
climbs fast but can settle in the basin of a local optimum. On a fixed-length space that is
something the search can *know*: once every one-gene neighbour of the best member found since the
last restart has been asked for and none of them beat it, one-gene mutation has nothing left to
offer there. ``local_optimum`` then empties the population and hands out ``restart_size`` fresh
random samples before breeding again; the best results found so far stay in the run's store (the
search reports the best of the whole run, not of the population).

Each method is a small ``Operator`` with ``observe``, ``stuck`` and ``reset``, and ``restart_size``
(the fresh samples after a restart). Registered by name: ``restart = "none" | "local_optimum" |
"auto"`` (``auto``: ``local_optimum`` on fixed-length spaces, ``none`` on variable-length ones,
whose neighbourhood cannot be listed).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from tinyevo.registry import Registry
from tinyevo.strategies.evolution.genes import choice_counts, is_fixed_length, require_fixed
from tinyevo.strategies.evolution.individual import Individual
from tinyevo.strategies.evolution.operator import Operator, at_least_one
from tinyevo.spaces.base import SearchSpace

RESTARTS: Registry = Registry("restart")


@RESTARTS.register("none")
@dataclass
class NoRestart(Operator):
    """The population is never discarded."""

    restart_size = 0

    def observe(self, newcomers: list[Individual], feasible) -> None:
        pass

    def stuck(self, seen: set[str]) -> bool:
        return False

    def reset(self) -> None:
        pass


@RESTARTS.register("local_optimum")
@dataclass
class LocalOptimumRestart(Operator):
    """Stuck when every one-gene neighbour of the best member since the last restart was asked for.

    ``seen`` is the set of architecture keys the search has asked for (a neighbour whose
    architecture equals another's counts once, through its key). The neighbours' keys are listed
    once per new best, so the check after each result is a set lookup per neighbour. Neighbours
    that are invalid or break the run's hard constraints are left out: the search never asks for
    them.
    """

    #: Fresh random samples handed out after a restart; default: population_size // 4.
    restart_size: int | None = None
    population_shares = {"restart_size": 4}

    def check(self, population_size: int) -> None:
        at_least_one("restart_size", self.restart_size)

    def bind(self, space: SearchSpace) -> "LocalOptimumRestart":
        require_fixed(space, "local_optimum restart")
        self.space, self.counts = space, choice_counts(space)
        self.reset()
        return self

    def reset(self) -> None:
        self.best_fitness = -math.inf
        self.neighbours: list[str] = []

    def observe(self, newcomers: list[Individual], feasible) -> None:
        """Newly admitted members; ``feasible(genome)``: the run's hard constraints (a neighbour
        that breaks them is never asked for, so it does not count as unexplored)."""
        for individual in newcomers:
            if individual.fitness > self.best_fitness:
                self.best_fitness = individual.fitness
                self.neighbours = self._neighbour_keys(individual.trial.genome, feasible)

    def stuck(self, seen: set[str]) -> bool:
        return self.best_fitness > -math.inf and all(key in seen for key in self.neighbours)

    def _neighbour_keys(self, genome, feasible) -> list[str]:
        vector, keys = self.space.to_vector(genome), set()
        for gene, count in enumerate(self.counts):
            for value in range(count):
                if value != vector[gene]:
                    neighbour = self.space.from_vector(vector[:gene] + [value] + vector[gene + 1:])
                    if self.space.is_valid(neighbour) and feasible(neighbour):
                        keys.add(self.space.key(neighbour))
        return sorted(keys)


@RESTARTS.register("auto")
@dataclass
class AutoRestart(Operator):
    """``local_optimum`` on fixed-length spaces, ``none`` on variable-length ones."""

    restart_size: int | None = None
    population_shares = {"restart_size": 4}

    def check(self, population_size: int) -> None:
        at_least_one("restart_size", self.restart_size)

    def bind(self, space: SearchSpace) -> Operator:
        if not is_fixed_length(space):
            return NoRestart().bind(space)
        return LocalOptimumRestart(self.restart_size).bind(space)
