"""Parent selection (survey section II-B3): which members of the population breed.

Each method is a small ``Operator`` (its parameters are its fields) with ``select(population, rng)
-> Individual``; the population is a list of ``Individual`` whose ``fitness`` is larger-is-better.
Methods are registered by name so a configuration can choose one: ``parent_selection = "tournament"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyevo.registry import Registry
from tinyevo.strategies.evolution.individual import Individual, fittest
from tinyevo.strategies.evolution.operator import Operator, at_least_one

PARENT_SELECTIONS: Registry = Registry("parent selection")


@PARENT_SELECTIONS.register("tournament")
@dataclass
class Tournament(Operator):
    """Draw ``size`` distinct individuals at random; the fittest of them is the parent.

    Regularized evolution (Real et al. 2019) uses it with a sample size S. With ``size`` equal to
    the population it always picks the best; with ``size = 1`` it is uniform random choice.
    """

    #: Sample size (S in Real et al. 2019).
    tournament_size: int = 5

    def check(self, population_size: int) -> None:
        at_least_one("tournament_size", self.tournament_size)

    def select(self, population: list[Individual], rng: np.random.Generator) -> Individual:
        count = min(self.tournament_size, len(population))
        picked = rng.choice(len(population), size=count, replace=False)
        return fittest([population[i] for i in picked])


@PARENT_SELECTIONS.register("roulette")
@dataclass
class Roulette(Operator):
    """Fitness-proportionate selection: P(pick i) = fitness_i / sum of fitness.

    Fitness must be non-negative to be used as it is (accuracies are); when some is negative
    (a minimized metric), fitness is shifted so that the worst individual gets weight 0. Failed
    members (fitness -inf) get weight 0; if every weight is 0 the pick is uniform.
    """

    def select(self, population: list[Individual], rng: np.random.Generator) -> Individual:
        return population[rng.choice(len(population), p=roulette_probabilities(population))]


def roulette_probabilities(population: list[Individual]) -> np.ndarray:
    fitness = np.array([i.fitness for i in population], dtype=float)
    finite = np.isfinite(fitness)
    weights = np.where(finite, fitness, 0.0)
    if finite.any() and weights[finite].min() < 0:
        weights = np.where(finite, weights - weights[finite].min(), 0.0)
    if weights.sum() <= 0:
        return np.full(len(population), 1.0 / len(population))
    return weights / weights.sum()


@PARENT_SELECTIONS.register("truncation")
@dataclass
class Truncation(Operator):
    """Uniform choice among the ``truncation_size`` fittest (MCUNet breeds from its top-20 of 100)."""

    #: Breeds from this many best; default: population_size // 5.
    truncation_size: int | None = None
    population_shares = {"truncation_size": 5}

    def check(self, population_size: int) -> None:
        at_least_one("truncation_size", self.truncation_size)

    def select(self, population: list[Individual], rng: np.random.Generator) -> Individual:
        ranked = sorted(population, key=lambda i: (i.fitness, i.born), reverse=True)
        best = ranked[:max(1, min(self.truncation_size, len(ranked)))]
        return best[rng.integers(len(best))]
