"""A member of an evolving population: a finished trial, its fitness and its age."""
from __future__ import annotations

from dataclasses import dataclass

from tinyevo.strategies.base import Trial


@dataclass
class Individual:
    """One trial in the population.

    ``fitness`` is larger-is-better (``Strategy.fitness``); ``born`` counts arrivals, so a larger
    ``born`` is a younger individual. ``violation`` (0 when feasible), ``rank`` and ``crowding``
    are used by multi-objective survival (NSGA-II) only.
    """

    trial: Trial
    fitness: float
    born: int
    violation: float = 0.0
    rank: int = 0
    crowding: float = 0.0

    @property
    def id(self) -> int:
        return self.trial.id

    @property
    def genome(self):
        return self.trial.genome


def fittest(population: list[Individual]) -> Individual:
    """The best individual; among equals, the youngest."""
    return max(population, key=lambda i: (i.fitness, i.born))


def oldest(population: list[Individual]) -> Individual:
    return min(population, key=lambda i: i.born)
