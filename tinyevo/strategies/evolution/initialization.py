"""Initialization (survey section II-B1): where the first population comes from.

Each method is a small ``Operator`` (its parameters are its fields) with ``candidate(index, rng) ->
Candidate``, the ``index``-th member of the initial population, bound to the space (``bind``).
Registered by name: ``initialization = "random" | "trivial" | "rich"``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinyevo.errors import TinyevoError
from tinyevo.registry import Registry
from tinyevo.strategies.base import Candidate
from tinyevo.strategies.evolution.operator import Operator
from tinyevo.spaces.base import SearchSpace

INITIALIZATIONS: Registry = Registry("initialization")


@INITIALIZATIONS.register("random")
@dataclass
class RandomInitialization(Operator):
    """Genomes drawn uniformly from the space: the initial space is the search space."""

    def candidate(self, index: int, rng: np.random.Generator) -> Candidate:
        return Candidate(self.space.sample(rng), origin="sample")


@INITIALIZATIONS.register("trivial")
@dataclass
class TrivialInitialization(Operator):
    """The smallest architectures of the space, then mutants of them (Real et al. 2017 start
    from one-layer models).

    Evolution then grows them by mutation; the search carries no human bias, at the cost of
    more evaluations before it reaches good models.
    """

    def bind(self, space: SearchSpace) -> "TrivialInitialization":
        self.space = space
        try:
            self.genomes = list(space.smallest())
        except NotImplementedError:
            raise TinyevoError(f"space {space.name!r} has no smallest architectures; use "
                               "initialization='random' or 'rich'") from None
        if not self.genomes:
            raise TinyevoError(f"space {space.name!r} lists no smallest architectures")
        return self

    def candidate(self, index: int, rng: np.random.Generator) -> Candidate:
        genome = self.genomes[index % len(self.genomes)]
        if index < len(self.genomes):
            return Candidate(genome, origin="trivial")
        # A copy would be a duplicate, which a run answers from its store and learns nothing from:
        # the other places get mutants of the smallest, as Real et al. mutate their trivial start.
        return Candidate(self.space.mutate(genome, rng), origin="trivial+mutation")


@INITIALIZATIONS.register("rich")
@dataclass
class RichInitialization(Operator):
    """Seeded from given genomes (a well-designed space); random samples fill the remaining places."""

    #: Genomes (or their JSON) to start from.
    seeds: list = field(default_factory=list)

    def bind(self, space: SearchSpace) -> "RichInitialization":
        if not self.seeds:
            raise TinyevoError("initialization='rich' needs seeds=[genome, ...]: the architectures "
                               "to start from")
        self.space = space
        self.genomes = [seed_genome(space, seed) for seed in self.seeds]
        return self

    def candidate(self, index: int, rng: np.random.Generator) -> Candidate:
        if index < len(self.genomes):
            return Candidate(self.genomes[index], origin="seeded")
        return Candidate(self.space.sample(rng), origin="sample")


def seed_genome(space: SearchSpace, seed) -> object:
    """A seed given as a genome, or as the JSON text of one (a string genome, such as an nb201
    cell string, is taken as it is when it is valid)."""
    if space.is_valid(seed):
        return seed
    try:
        return space.from_json(seed)
    except ValueError:  # not JSON either
        raise TinyevoError(f"seed {str(seed)[:80]!r} is neither a valid {space.name} genome nor "
                           f"the JSON text of one") from None
