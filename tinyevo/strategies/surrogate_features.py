"""Features of a genome for a surrogate model: one encoding that works on every space.

- Fixed-length spaces (``dimensions``/``to_vector``): the one-hot encoding of the choice vector,
  one column per (gene, choice), as BANANAS and NPENAS use for NAS-Bench cells (White et al. 2021,
  Wei et al. 2022).
- Variable-length spaces (chains of layers, blocks): a bag of the genome's JSON leaves. Each leaf
  becomes a token ``path=value``, the path with its list indices left out (so a chain of three
  ``conv k=3`` layers counts the token ``layers.kernel=3`` three times), plus a token per list
  for its length; the counts are hashed into ``HASHED_FEATURES`` columns (scikit-learn's
  ``FeatureHasher``, a fixed hash: the same genome gives the same features in every process) and
  scaled by ``log1p``, so that depth and the mix of operations are what the model sees.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from tinyevo.spaces.base import Genome, SearchSpace
from tinyevo.strategies.evolution.genes import is_fixed_length

HASHED_FEATURES = 256


class GenomeEncoder:
    """``GenomeEncoder(space).encode([genome, ...]) -> array (n, features)``."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.fixed = is_fixed_length(space)
        if self.fixed:
            counts = [len(choices) for _, choices in space.dimensions()]
            self.offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)
            self.width = int(sum(counts))
        else:
            from sklearn.feature_extraction import FeatureHasher
            self.hasher = FeatureHasher(n_features=HASHED_FEATURES, input_type="dict",
                                        alternate_sign=False)
            self.width = HASHED_FEATURES

    def encode(self, genomes: list[Genome]) -> np.ndarray:
        if not genomes:
            return np.zeros((0, self.width))
        if self.fixed:
            rows = np.zeros((len(genomes), self.width))
            for row, genome in enumerate(genomes):
                rows[row, self.offsets + np.asarray(self.space.to_vector(genome), dtype=int)] = 1.0
            return rows
        bags = [dict(tokens(genome)) for genome in genomes]
        return np.log1p(self.hasher.transform(bags).toarray())


def tokens(genome: Genome, path: str = "") -> Counter:
    """The bag of ``path=value`` tokens of a JSON genome (list indices left out of the path)."""
    bag: Counter = Counter()
    if isinstance(genome, dict):
        for name in sorted(genome):
            bag.update(tokens(genome[name], f"{path}.{name}" if path else str(name)))
    elif isinstance(genome, (list, tuple)):
        bag[f"{path}#len={len(genome)}"] += 1
        for item in genome:
            bag.update(tokens(item, path))
    else:
        bag[f"{path}={genome}"] += 1
    return bag
