"""Mutation (survey section II-B2): a child that differs from its parent by a small change.

Each method is an object with ``mutate(genome, rng) -> genome``; registered by name:
``mutation = "one_gene" | "per_gene" | "space" | "auto"``.
"""
from __future__ import annotations

import numpy as np

from tinyevo.registry import Registry
from tinyevo.spaces.base import Genome, SearchSpace
from tinyevo.search.evolution.genes import choice_counts, first_valid, is_fixed_length, require_fixed

MUTATIONS: Registry = Registry("mutation")


class OneGeneMutation:
    """Exactly one gene changes to another of its choices (regularized evolution on NAS-Bench)."""

    def __init__(self, space: SearchSpace):
        require_fixed(space, "one_gene mutation")
        self.space = space
        self.counts = choice_counts(space)
        self.mutable = [g for g, count in enumerate(self.counts) if count > 1]

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        if not self.mutable:
            return genome
        vector = self.space.to_vector(genome)
        return first_valid(self.space, lambda: self.space.from_vector(self._change(vector, rng)),
                           genome)

    def _change(self, vector: list[int], rng: np.random.Generator) -> list[int]:
        gene = self.mutable[rng.integers(len(self.mutable))]
        return change_gene(vector, gene, self.counts[gene], rng)


def change_gene(vector: list[int], gene: int, count: int, rng: np.random.Generator) -> list[int]:
    """A copy of ``vector`` whose ``gene`` takes another value, uniformly among the others."""
    child = list(vector)
    child[gene] = int((vector[gene] + rng.integers(1, count)) % count)
    return child


class PerGeneMutation:
    """Each gene changes to another choice with probability ``rate`` (MCUNet / Once-for-All: 0.1).

    A child may come out equal to its parent when no gene is drawn; the runner treats it as a
    duplicate.
    """

    def __init__(self, space: SearchSpace, rate: float):
        require_fixed(space, "per_gene mutation")
        self.space, self.rate = space, rate
        self.counts = choice_counts(space)

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        vector = self.space.to_vector(genome)
        return first_valid(self.space, lambda: self.space.from_vector(self._change(vector, rng)),
                           genome)

    def _change(self, vector: list[int], rng: np.random.Generator) -> list[int]:
        child = list(vector)
        for gene, draw in enumerate(rng.random(len(vector))):
            if draw < self.rate and self.counts[gene] > 1:
                child = change_gene(child, gene, self.counts[gene], rng)
        return child


class SpaceMutation:
    """The space's own ``mutate``: one random change that the space defines."""

    def __init__(self, space: SearchSpace):
        self.space = space

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        return self.space.mutate(genome, rng)


@MUTATIONS.register("one_gene")
def _one_gene(config, space) -> OneGeneMutation:
    return OneGeneMutation(space)


@MUTATIONS.register("per_gene")
def _per_gene(config, space) -> PerGeneMutation:
    return PerGeneMutation(space, config.gene_mutation_rate)


@MUTATIONS.register("space")
def _space(config, space) -> SpaceMutation:
    return SpaceMutation(space)


@MUTATIONS.register("auto")
def _auto(config, space):
    """One-gene mutation for fixed-length spaces, the space's own for variable-length ones."""
    fixed = is_fixed_length(space)
    return OneGeneMutation(space) if fixed else SpaceMutation(space)
