"""The ``SearchSpace`` interface (survey section II-A) and the registry of spaces.

A genome is plain JSON data (dicts, lists, strings, numbers) that a space decodes into an
``Architecture``. Spaces with a fixed-length encoding also expose it as a vector of choice indices,
so that generic operators (one-point and uniform crossover) and peers such as Optuna can use it.
"""
from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from tinyevo.arch import Architecture
from tinyevo.errors import InvalidArchitecture, TinyevoError
from tinyevo.registry import Registry

Genome = Any  # JSON data: dict | list | str
SPACES: Registry["SearchSpace"] = Registry("search space")


class SearchSpace(ABC):
    """Samples, varies and decodes genomes. Every method takes an explicit ``numpy`` Generator."""

    name: str = ""
    #: What the space's networks read: "image" (height x width x channels), "features" (a time x
    #: coefficient map of an audio front-end) or "sequence" (1 x time x channels).
    inputs: str = "image"
    #: "fixed" (a vector of choices, ``dimensions`` lists them) or "variable" (any length).
    encoding: str = "fixed"
    #: How many times ``mutate``/``crossover`` retry before giving up on producing a valid genome.
    max_tries: int = 100

    def __init__(self, input_shape=(32, 32, 3), num_classes: int = 10):
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = int(num_classes)

    # --- what each space writes ----------------------------------------------------------------
    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Genome:
        """A uniformly random genome (rich/random initialization)."""

    @abstractmethod
    def _mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """One random change; may return an invalid genome (``mutate`` retries)."""

    @abstractmethod
    def _crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        """A child of two parents; may return an invalid genome (``crossover`` retries)."""

    @abstractmethod
    def decode(self, genome: Genome) -> Architecture:
        """The network a genome stands for; raises InvalidArchitecture if it cannot be built."""

    @abstractmethod
    def describe(self, genome: Genome) -> str:
        """A short readable string for logs, e.g. ``ir_k3_e6_c24``."""

    def smallest(self) -> list[Genome]:
        """The smallest architectures of the space (trivial initialization, Real et al. 2017)."""
        raise NotImplementedError(f"space {self.name!r} has no trivial initialization")

    def options(self) -> dict:
        """Constructor arguments that rebuild this space (stored with a run)."""
        return {"input_shape": list(self.input_shape), "num_classes": self.num_classes}

    # --- shared behaviour ----------------------------------------------------------------------
    def is_valid(self, genome: Genome) -> bool:
        try:
            self.decode(genome)
            return True
        except (InvalidArchitecture, ValueError, KeyError, TypeError, IndexError):
            return False

    def mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        return self._retry(lambda: self._mutate(copy_genome(genome), rng), genome, "mutation")

    def crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        return self._retry(lambda: self._crossover(copy_genome(a), copy_genome(b), rng), a,
                           "crossover")

    def _retry(self, make, fallback: Genome, what: str) -> Genome:
        for _ in range(self.max_tries):
            child = make()
            if self.is_valid(child):
                return child
        return copy_genome(fallback)  # a valid parent is a valid (if unoriginal) child

    def key(self, genome: Genome) -> str:
        """Canonical identity: two genomes that decode to the same network share a key."""
        return self.decode(genome).fingerprint()

    def to_json(self, genome: Genome) -> str:
        return json.dumps(genome, sort_keys=True, separators=(",", ":"))

    def from_json(self, text: str | Genome) -> Genome:
        genome = json.loads(text) if isinstance(text, str) else text
        if not self.is_valid(genome):
            raise TinyevoError(f"not a valid {self.name} genome: {str(text)[:80]}")
        return genome

    # --- fixed-length encodings ----------------------------------------------------------------
    def dimensions(self) -> list[tuple[str, list]]:
        """(name, choices) of each gene; empty for variable-length spaces."""
        return []

    def to_vector(self, genome: Genome) -> list[int]:
        raise NotImplementedError(f"space {self.name!r} has a variable-length encoding")

    def from_vector(self, vector: list[int]) -> Genome:
        raise NotImplementedError(f"space {self.name!r} has a variable-length encoding")


def copy_genome(genome: Genome) -> Genome:
    """A copy of a JSON-like genome (its dicts, lists and tuples new, the leaves shared): what
    ``copy.deepcopy`` gives for one, without its memo (a genome holds no object twice that must
    stay one object), so a pool of many draws copies its parents fast."""
    if isinstance(genome, dict):
        return {name: copy_genome(value) for name, value in genome.items()}
    if isinstance(genome, list):
        return [copy_genome(value) for value in genome]
    if isinstance(genome, tuple):
        return tuple(copy_genome(value) for value in genome)
    if isinstance(genome, (str, int, float, bool, type(None))):
        return genome
    return copy.deepcopy(genome)


def redraw_gene(vector: list[int], dims: list[tuple[str, list]], gene: int,
                rng: np.random.Generator) -> list[int]:
    """``vector`` with choice ``gene`` moved to another of its choices, drawn uniformly (unchanged
    when the gene has one choice): the one-gene mutation of the fixed-length spaces."""
    others = [i for i in range(len(dims[gene][1])) if i != vector[gene]]
    if others:
        vector[gene] = others[int(rng.integers(len(others)))]
    return vector
