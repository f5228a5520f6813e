"""Crossover (survey section II-B2): a child made from two parents.

Fixed-length genomes are crossed as vectors of choice indices (``space.to_vector``/``from_vector``);
variable-length genomes need the space's own operator, which knows how to splice them. Each method
is a small ``Operator`` with ``cross(a, b, rng) -> genome``, bound to the space it crosses
(``bind``); registered by name: ``crossover = "one_point"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyevo.registry import Registry
from tinyevo.spaces.base import Genome, SearchSpace
from tinyevo.strategies.evolution.genes import first_valid, is_fixed_length, require_fixed
from tinyevo.strategies.evolution.operator import Operator

CROSSOVERS: Registry = Registry("crossover")


@CROSSOVERS.register("one_point")
@dataclass
class OnePointCrossover(Operator):
    """Genes before a random cut point come from the first parent, the rest from the second."""

    def bind(self, space: SearchSpace) -> "OnePointCrossover":
        require_fixed(space, "one_point crossover")
        self.space = space
        return self

    def cross(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        va, vb = self.space.to_vector(a), self.space.to_vector(b)
        return first_valid(self.space, lambda: self.space.from_vector(one_point(va, vb, rng)), a)


def one_point(va: list[int], vb: list[int], rng: np.random.Generator) -> list[int]:
    if len(va) < 2:
        return list(va)
    cut = int(rng.integers(1, len(va)))  # both parents give at least one gene
    return list(va[:cut]) + list(vb[cut:])


@CROSSOVERS.register("uniform")
@dataclass
class UniformCrossover(Operator):
    """Each gene comes from either parent with probability 1/2."""

    def bind(self, space: SearchSpace) -> "UniformCrossover":
        require_fixed(space, "uniform crossover")
        self.space = space
        return self

    def cross(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        va, vb = self.space.to_vector(a), self.space.to_vector(b)
        return first_valid(self.space, lambda: self.space.from_vector(uniform(va, vb, rng)), a)


def uniform(va: list[int], vb: list[int], rng: np.random.Generator) -> list[int]:
    from_b = rng.random(len(va)) < 0.5
    return [int(y) if take else int(x) for x, y, take in zip(va, vb, from_b)]


@CROSSOVERS.register("space")
@dataclass
class SpaceCrossover(Operator):
    """The space's own ``crossover`` (for variable-length genomes, or a space-specific splice)."""

    def cross(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        return self.space.crossover(a, b, rng)


@CROSSOVERS.register("auto")
@dataclass
class AutoCrossover(Operator):
    """Uniform crossover for fixed-length spaces, the space's own for variable-length ones."""

    def bind(self, space: SearchSpace) -> Operator:
        chosen = UniformCrossover() if is_fixed_length(space) else SpaceCrossover()
        return chosen.bind(space)
