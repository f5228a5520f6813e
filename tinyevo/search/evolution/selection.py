"""Parent selection (survey section II-B3): which members of the population breed.

Each method is a small object with ``select(population, rng) -> Individual``; the population is a
list of ``Individual`` whose ``fitness`` is larger-is-better. Methods are registered by name so a
configuration can choose one: ``parent_selection = "tournament"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyevo.registry import Registry
from tinyevo.search.evolution.individual import Individual, fittest

PARENT_SELECTIONS: Registry = Registry("parent selection")


@dataclass
class Tournament:
    """Draw ``size`` distinct individuals at random; the fittest of them is the parent.

    Regularized evolution (Real et al. 2019) uses it with a sample size S. With ``size`` equal to
    the population it always picks the best; with ``size = 1`` it is uniform random choice.
    """

    size: int

    def select(self, population: list[Individual], rng: np.random.Generator) -> Individual:
        count = min(self.size, len(population))
        picked = rng.choice(len(population), size=count, replace=False)
        return fittest([population[i] for i in picked])


@dataclass
class Roulette:
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


@dataclass
class Truncation:
    """Uniform choice among the ``size`` fittest (MCUNet breeds from its top-20 of 100)."""

    size: int

    def select(self, population: list[Individual], rng: np.random.Generator) -> Individual:
        ranked = sorted(population, key=lambda i: (i.fitness, i.born), reverse=True)
        best = ranked[:max(1, min(self.size, len(ranked)))]
        return best[rng.integers(len(best))]


@PARENT_SELECTIONS.register("tournament")
def _tournament(config, space) -> Tournament:
    return Tournament(config.tournament_size)


@PARENT_SELECTIONS.register("roulette")
def _roulette(config, space) -> Roulette:
    return Roulette()


@PARENT_SELECTIONS.register("truncation")
def _truncation(config, space) -> Truncation:
    return Truncation(config.truncation_size)
