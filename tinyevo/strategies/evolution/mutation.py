"""Mutation (survey section II-B2): a child that differs from its parent by a small change.

Each method is a small ``Operator`` (its parameters are its fields) with ``mutate(genome, rng) ->
genome``, bound to the space it mutates (``bind``); registered by name:
``mutation = "one_gene" | "per_gene" | "space" | "auto"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyevo.registry import Registry
from tinyevo.spaces.base import Genome, SearchSpace
from tinyevo.strategies.evolution.genes import choice_counts, first_valid, is_fixed_length, require_fixed
from tinyevo.strategies.evolution.operator import Operator, probability

MUTATIONS: Registry = Registry("mutation")


@MUTATIONS.register("one_gene")
@dataclass
class OneGeneMutation(Operator):
    """Exactly one gene changes to another of its choices (regularized evolution on NAS-Bench)."""

    def bind(self, space: SearchSpace) -> "OneGeneMutation":
        require_fixed(space, "one_gene mutation")
        self.space = space
        self.counts = choice_counts(space)
        self.mutable = [g for g, count in enumerate(self.counts) if count > 1]
        return self

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


@MUTATIONS.register("per_gene")
@dataclass
class PerGeneMutation(Operator):
    """Each gene changes to another choice with probability ``gene_mutation_rate`` (MCUNet /
    Once-for-All: 0.1).

    A child may come out equal to its parent when no gene is drawn; the runner treats it as a
    duplicate.
    """

    #: Per-gene change probability.
    gene_mutation_rate: float = 0.1

    def check(self, population_size: int) -> None:
        probability("gene_mutation_rate", self.gene_mutation_rate)

    def bind(self, space: SearchSpace) -> "PerGeneMutation":
        require_fixed(space, "per_gene mutation")
        self.space = space
        self.counts = choice_counts(space)
        return self

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        vector = self.space.to_vector(genome)
        return first_valid(self.space, lambda: self.space.from_vector(self._change(vector, rng)),
                           genome)

    def _change(self, vector: list[int], rng: np.random.Generator) -> list[int]:
        child = list(vector)
        for gene, draw in enumerate(rng.random(len(vector))):
            if draw < self.gene_mutation_rate and self.counts[gene] > 1:
                child = change_gene(child, gene, self.counts[gene], rng)
        return child


@MUTATIONS.register("space")
@dataclass
class SpaceMutation(Operator):
    """The space's own ``mutate``: one random change that the space defines."""

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        return self.space.mutate(genome, rng)


@MUTATIONS.register("auto")
@dataclass
class AutoMutation(Operator):
    """One-gene mutation for fixed-length spaces, the space's own for variable-length ones."""

    def bind(self, space: SearchSpace) -> Operator:
        chosen = OneGeneMutation() if is_fixed_length(space) else SpaceMutation()
        return chosen.bind(space)
