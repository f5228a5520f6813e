"""Population update, or survivor selection (survey section II-B3): who stays when children arrive.

Each method is a small object with ``survivors(population, size) -> list[Individual]``: it returns
at most ``size`` members, in their original order. Registered by name so a configuration can
choose one: ``population_update = "discard_oldest"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tinyevo.registry import Registry
from tinyevo.search.evolution.individual import Individual

POPULATION_UPDATES: Registry = Registry("population update")


def _by_fitness(individual: Individual):
    """Sort key, best first when reversed: higher fitness, then younger."""
    return (individual.fitness, individual.born)


def _keep(population: list[Individual], kept: list[Individual]) -> list[Individual]:
    ids = {id(i) for i in kept}
    return [i for i in population if id(i) in ids]


@dataclass
class DiscardOldest:
    """Aging (regularized) evolution, Real et al. 2019: the oldest go, however good they are."""

    def survivors(self, population: list[Individual], size: int) -> list[Individual]:
        return _keep(population, sorted(population, key=lambda i: i.born)[-size:] if size else [])


@dataclass
class DiscardWorst:
    """Steady-state (mu + lambda) replacement: the least fit go; among equals, the oldest."""

    def survivors(self, population: list[Individual], size: int) -> list[Individual]:
        return _keep(population, sorted(population, key=_by_fitness, reverse=True)[:size])


@dataclass
class Elitism:
    """The ``elite_size`` fittest always survive; the other places go to the youngest.

    MCUNet keeps its top-20 each generation (Cai et al. 2020, Lin et al. 2020). With
    ``elite_size = size`` this is discard_worst, with ``elite_size = 0`` it is discard_oldest.
    """

    elite_size: int

    def survivors(self, population: list[Individual], size: int) -> list[Individual]:
        elite = sorted(population, key=_by_fitness, reverse=True)[:min(self.elite_size, size)]
        chosen = {id(i) for i in elite}
        rest = sorted((i for i in population if id(i) not in chosen), key=lambda i: i.born)
        young = rest[len(rest) - (size - len(elite)):] if size > len(elite) else []
        return _keep(population, elite + young)


@dataclass
class WorstAndOldest:
    """Both the worst and the oldest go, in turn (EENA, Zhu et al. 2019).

    Removals alternate between the oldest and the least fit member, counted over the whole run,
    so a steady-state search that removes one member per child discards each in turn.
    """

    removed: int = field(default=0)

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


@POPULATION_UPDATES.register("discard_oldest")
def _discard_oldest(config, space) -> DiscardOldest:
    return DiscardOldest()


@POPULATION_UPDATES.register("aging")
def _aging(config, space) -> DiscardOldest:
    return DiscardOldest()


@POPULATION_UPDATES.register("discard_worst")
def _discard_worst(config, space) -> DiscardWorst:
    return DiscardWorst()


@POPULATION_UPDATES.register("elitism")
def _elitism(config, space) -> Elitism:
    return Elitism(config.elite_size)


@POPULATION_UPDATES.register("worst_and_oldest")
def _worst_and_oldest(config, space) -> WorstAndOldest:
    return WorstAndOldest()
