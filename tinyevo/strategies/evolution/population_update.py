"""Population update, or survivor selection (survey section II-B3): who stays when children arrive.

Each method is a small ``Operator`` (its parameters are its fields) with ``survivors(population,
size) -> list[Individual]``: it returns
at most ``size`` members, in their original order. Registered by name so a configuration can
choose one: ``population_update = "discard_oldest"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tinyevo.errors import TinyevoError
from tinyevo.registry import Registry
from tinyevo.strategies.evolution.individual import Individual
from tinyevo.strategies.evolution.operator import Operator

POPULATION_UPDATES: Registry = Registry("population update")


def _by_fitness(individual: Individual):
    """Sort key, best first when reversed: higher fitness, then younger."""
    return (individual.fitness, individual.born)


def _keep(population: list[Individual], kept: list[Individual]) -> list[Individual]:
    ids = {id(i) for i in kept}
    return [i for i in population if id(i) in ids]


@POPULATION_UPDATES.register("aging")
@POPULATION_UPDATES.register("discard_oldest")
@dataclass
class DiscardOldest(Operator):
    """Aging (regularized) evolution, Real et al. 2019: the oldest go, however good they are."""

    def survivors(self, population: list[Individual], size: int) -> list[Individual]:
        return _keep(population, sorted(population, key=lambda i: i.born)[-size:] if size else [])


@POPULATION_UPDATES.register("discard_worst")
@dataclass
class DiscardWorst(Operator):
    """Steady-state (mu + lambda) replacement: the least fit go; among equals, the oldest."""

    def survivors(self, population: list[Individual], size: int) -> list[Individual]:
        return _keep(population, sorted(population, key=_by_fitness, reverse=True)[:size])


@POPULATION_UPDATES.register("elitism")
@dataclass
class Elitism(Operator):
    """The ``elite_size`` fittest always survive; the other places go to the youngest.

    MCUNet keeps its top-20 each generation (Cai et al. 2020, Lin et al. 2020). With
    ``elite_size = size`` this is discard_worst, with ``elite_size = 0`` it is discard_oldest.
    """

    #: Members always kept; default: population_size // 5.
    elite_size: int | None = None
    population_shares = {"elite_size": 5}

    def check(self, population_size: int) -> None:
        if not 0 <= self.elite_size <= population_size:
            raise TinyevoError(f"evolution option elite_size must be in [0, population_size], "
                               f"got {self.elite_size}")

    def survivors(self, population: list[Individual], size: int) -> list[Individual]:
        elite = sorted(population, key=_by_fitness, reverse=True)[:min(self.elite_size, size)]
        chosen = {id(i) for i in elite}
        rest = sorted((i for i in population if id(i) not in chosen), key=lambda i: i.born)
        young = rest[len(rest) - (size - len(elite)):] if size > len(elite) else []
        return _keep(population, elite + young)


@POPULATION_UPDATES.register("worst_and_oldest")
@dataclass
class WorstAndOldest(Operator):
    """Both the worst and the oldest go, in turn (EENA, Zhu et al. 2019).

    Removals alternate between the oldest and the least fit member, counted over the whole run,
    so a steady-state search that removes one member per child discards each in turn.
    """

    removed: int = field(default=0, init=False)  # removals so far: state, not a parameter

    def survivors(self, population: list[Individual], size: int) -> list[Individual]:
        kept = list(population)
        while len(kept) > size:
            if self.removed % 2 == 0:
                victim = min(kept, key=lambda i: i.born)
            else:
                victim = min(kept, key=_by_fitness)
            kept = [i for i in kept if i is not victim]
            self.removed += 1
        return kept
