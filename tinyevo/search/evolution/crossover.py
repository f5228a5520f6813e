"""Crossover (survey section II-B2): a child made from two parents.

Fixed-length genomes are crossed as vectors of choice indices (``space.to_vector``/``from_vector``);
variable-length genomes need the space's own operator, which knows how to splice them. Each method
is an object with ``cross(a, b, rng) -> genome``; registered by name: ``crossover = "one_point"``.
"""
from __future__ import annotations

import numpy as np

from tinyevo.registry import Registry
from tinyevo.spaces.base import Genome, SearchSpace
from tinyevo.search.evolution.genes import first_valid, is_fixed_length, require_fixed

CROSSOVERS: Registry = Registry("crossover")


class OnePointCrossover:
    """Genes before a random cut point come from the first parent, the rest from the second."""

    def __init__(self, space: SearchSpace):
        require_fixed(space, "one_point crossover")
        self.space = space

    def cross(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        va, vb = self.space.to_vector(a), self.space.to_vector(b)
        return first_valid(self.space, lambda: self.space.from_vector(one_point(va, vb, rng)), a)


def one_point(va: list[int], vb: list[int], rng: np.random.Generator) -> list[int]:
    if len(va) < 2:
        return list(va)
    cut = int(rng.integers(1, len(va)))  # both parents give at least one gene
    return list(va[:cut]) + list(vb[cut:])


class UniformCrossover:
    """Each gene comes from either parent with probability 1/2."""

    def __init__(self, space: SearchSpace):
        require_fixed(space, "uniform crossover")
        self.space = space

    def cross(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        va, vb = self.space.to_vector(a), self.space.to_vector(b)
        return first_valid(self.space, lambda: self.space.from_vector(uniform(va, vb, rng)), a)


def uniform(va: list[int], vb: list[int], rng: np.random.Generator) -> list[int]:
    from_b = rng.random(len(va)) < 0.5
    return [int(y) if take else int(x) for x, y, take in zip(va, vb, from_b)]


class SpaceCrossover:
    """The space's own ``crossover`` (for variable-length genomes, or a space-specific splice)."""

    def __init__(self, space: SearchSpace):
        self.space = space

    def cross(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        return self.space.crossover(a, b, rng)


@CROSSOVERS.register("one_point")
def _one_point(config, space) -> OnePointCrossover:
    return OnePointCrossover(space)


@CROSSOVERS.register("uniform")
def _uniform(config, space) -> UniformCrossover:
    return UniformCrossover(space)


@CROSSOVERS.register("space")
def _space(config, space) -> SpaceCrossover:
    return SpaceCrossover(space)


@CROSSOVERS.register("auto")
def _auto(config, space):
    """Uniform crossover for fixed-length spaces, the space's own for variable-length ones."""
    fixed = is_fixed_length(space)
    return UniformCrossover(space) if fixed else SpaceCrossover(space)
