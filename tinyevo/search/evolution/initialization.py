"""Initialization (survey section II-B1): where the first population comes from.

Each method is a small object with ``candidate(index, rng) -> Candidate``, the ``index``-th member
of the initial population. Registered by name: ``initialization = "random" | "trivial" | "rich"``.
"""
from __future__ import annotations

import numpy as np

from tinyevo.errors import TinyevoError
from tinyevo.registry import Registry
from tinyevo.search.base import Candidate
from tinyevo.spaces.base import SearchSpace

INITIALIZATIONS: Registry = Registry("initialization")


class RandomInitialization:
    """Genomes drawn uniformly from the space: the initial space is the search space."""

    def __init__(self, space: SearchSpace):
        self.space = space

    def candidate(self, index: int, rng: np.random.Generator) -> Candidate:
        return Candidate(self.space.sample(rng), origin="sample")


class TrivialInitialization:
    """The smallest architectures of the space, then mutants of them (Real et al. 2017 start
    from one-layer models).

    Evolution then grows them by mutation; the search carries no human bias, at the cost of
    more evaluations before it reaches good models.
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        try:
            self.genomes = list(space.smallest())
        except NotImplementedError:
            raise TinyevoError(f"space {space.name!r} has no smallest architectures; use "
                               "initialization='random' or 'rich'") from None
        if not self.genomes:
            raise TinyevoError(f"space {space.name!r} lists no smallest architectures")

    def candidate(self, index: int, rng: np.random.Generator) -> Candidate:
        genome = self.genomes[index % len(self.genomes)]
        if index < len(self.genomes):
            return Candidate(genome, origin="trivial")
        # A copy would be a duplicate, which a run answers from its store and learns nothing from:
        # the other places get mutants of the smallest, as Real et al. mutate their trivial start.
        return Candidate(self.space.mutate(genome, rng), origin="trivial+mutation")


class RichInitialization:
    """Seeded from given genomes (a well-designed space); random samples fill the remaining places."""

    def __init__(self, space: SearchSpace, seeds):
        if not seeds:
            raise TinyevoError("initialization='rich' needs seeds=[genome, ...]: the architectures "
                               "to start from")
        self.space = space
        self.genomes = [seed_genome(space, seed) for seed in seeds]

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


@INITIALIZATIONS.register("random")
def _random(config, space) -> RandomInitialization:
    return RandomInitialization(space)


@INITIALIZATIONS.register("trivial")
def _trivial(config, space) -> TrivialInitialization:
    return TrivialInitialization(space)


@INITIALIZATIONS.register("rich")
def _rich(config, space) -> RichInitialization:
    return RichInitialization(space, config.seeds)
