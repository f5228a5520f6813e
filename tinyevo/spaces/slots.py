"""A fixed-length encoding of a variable number of blocks: the base of the ``kws`` and ``tcn`` spaces.

A genome is a JSON object of *head genes* (one value each, e.g. the first convolution's kernel),
a count gene ``blocks`` (how many blocks the network has) and, for each *slot gene* (e.g. a
block's channels), a list of one value per block slot, ``max_blocks`` long, whether the slot is
active or not -- the count-gated encoding of Once-for-All's and MCUNet's depth genes (see
``mbv2``)::

    {"stem_channels": 64, "blocks": 2, "channels": [64, 32, 8], "kernel": [3, 5, 3]}

Slots past ``blocks`` are inactive: they do not change the network (nor its key, the fingerprint
of the decoded architecture), so a later mutation of the count can switch them back on as they
were. Every value is one of the space's choices; ``dimensions``/``to_vector``/``from_vector``
give the genome as a vector of choice indices, so NSGA-II, REINFORCE and the generic vector
operators apply. The space's own mutation re-draws one active gene; its crossover is uniform.

A space with front-end genes (``frontend_genes``, ``tinyevo.spaces.frontend_genes``) has them among
its head genes (``frontend_kind``, ...); settings that do not fit together do not decode, so
``sample`` redraws until the genome decodes.
"""
from __future__ import annotations

import json

import numpy as np

from tinyevo.audio.features import frontend_of, with_frontend_cost
from tinyevo.errors import InvalidArchitecture, TinyevoError
from tinyevo.hardware.cost import estimate_cost
from tinyevo.spaces.base import Genome, SearchSpace, redraw_gene
from tinyevo.spaces.frontend_genes import FrontEndGenes

COUNT = "blocks"


def int_choices(value, name: str, space: str, least: int = 1) -> list[int]:
    """A list of distinct ints >= ``least`` from an int or a sequence, else a one-line TinyevoError."""
    values = [value] if type(value) is int else list(value) if isinstance(value, (list, tuple)) else None
    if (not values or any(type(v) is not int or v < least for v in values)
            or len(set(values)) != len(values)):
        raise TinyevoError(f"{space} option {name} must be a list of distinct ints >= {least}, "
                           f"got {value!r}")
    return values


def pair_choices(value, name: str, space: str) -> list[list[int]]:
    """A list of distinct (height, width) pairs of positive ints; an int n stands for (n, n)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise TinyevoError(f"{space} option {name} must be a list of [height, width] pairs, "
                           f"got {value!r}")
    pairs = []
    for item in value:
        pair = [item, item] if type(item) is int else list(item) if isinstance(item, (list, tuple)) else []
        if len(pair) != 2 or any(type(v) is not int or v < 1 for v in pair) or pair in pairs:
            raise TinyevoError(f"{space} option {name} must be a list of distinct [height, width] "
                               f"pairs of positive ints, got {value!r}")
        pairs.append(pair)
    return pairs


def _token(value):
    """A hashable stand-in for a gene value that keeps its type: True is not 1, 1.0 is not 1, and a
    pair is the same as a list or a tuple."""
    if isinstance(value, (list, tuple)):
        return tuple(_token(v) for v in value)
    return (type(value).__name__, value)


class SlottedSpace(SearchSpace):
    """Head genes, a block count, and per-slot genes. Subclasses set ``head_genes`` and
    ``slot_genes`` (lists of (name, choices)) and ``block_counts`` in their constructor."""

    head_genes: list[tuple[str, list]]
    slot_genes: list[tuple[str, list]]
    block_counts: list[int]
    #: The searched audio front-end (its genes are head genes too); None: the input is fixed.
    frontend_genes: FrontEndGenes | None = None

    @property
    def searches_frontend(self) -> bool:
        return self.frontend_genes is not None and self.frontend_genes.active

    @property
    def max_blocks(self) -> int:
        return max(self.block_counts)

    # --- the fixed-length encoding -------------------------------------------------------------
    def dimensions(self) -> list[tuple[str, list]]:
        dims = list(self.head_genes) + [(COUNT, list(self.block_counts))]
        return dims + [(f"block{slot + 1}_{gene}", choices) for slot in range(self.max_blocks)
                       for gene, choices in self.slot_genes]

    def _indices(self) -> list[dict]:
        """Per gene of ``dimensions``, each choice's token -> its index (built once)."""
        if getattr(self, "_index_tables", None) is None:
            self._index_tables = [{_token(c): i for i, c in enumerate(choices)}
                                  for _, choices in self.dimensions()]
        return self._index_tables

    def to_vector(self, genome: Genome) -> list[int]:
        return self._vector(genome)

    def from_vector(self, vector: list[int]) -> Genome:
        dims = self.dimensions()
        if (not isinstance(vector, (list, tuple)) or len(vector) != len(dims)
                or any(type(i) is bool or not 0 <= int(i) < len(c) for i, (_, c) in zip(vector, dims))):
            raise InvalidArchitecture(f"a {self.name} vector has {len(dims)} genes, each an index "
                                      f"into its choices, got {vector!r:.80}")
        values = [choices[int(i)] for i, (_, choices) in zip(vector, dims)]
        heads = len(self.head_genes)
        genome = {gene: values[i] for i, (gene, _) in enumerate(self.head_genes)}
        genome[COUNT] = values[heads]
        slots = values[heads + 1:]
        for g, (gene, _) in enumerate(self.slot_genes):
            genome[gene] = slots[g::len(self.slot_genes)]
        return json.loads(json.dumps(genome))  # lists, never tuples: equal to its JSON round trip

    def check(self, genome: Genome) -> None:
        """Raise InvalidArchitecture unless ``genome`` has this space's keys and every value is one
        of its choices."""
        self._vector(genome)

    def _vector(self, genome: Genome) -> list[int]:
        """Every gene's choice index in ``dimensions`` order, the genome checked on the way."""
        keys = [gene for gene, _ in self.head_genes] + [COUNT] + [gene for gene, _ in self.slot_genes]
        if not isinstance(genome, dict) or set(genome) != set(keys):
            raise InvalidArchitecture(f"a {self.name} genome is an object with keys {keys}, "
                                      f"got {genome!r:.80}")
        for gene, _ in self.slot_genes:
            if not isinstance(genome[gene], list) or len(genome[gene]) != self.max_blocks:
                raise InvalidArchitecture(f"{self.name} genome: {gene!r} must be a list of "
                                          f"{self.max_blocks} values (one per block slot)")
        values = [genome[gene] for gene, _ in self.head_genes] + [genome[COUNT]]
        values += [genome[gene][slot] for slot in range(self.max_blocks) for gene, _ in self.slot_genes]
        vector = []
        for value, table, (name, choices) in zip(values, self._indices(), self.dimensions()):
            try:
                vector.append(table[_token(value)])
            except (KeyError, TypeError):
                raise InvalidArchitecture(f"{self.name} genome: {name}={value!r:.40} is not one of "
                                          f"{choices}") from None
        return vector

    def active_genes(self, genome: Genome) -> list[int]:
        """Vector positions that change the network: the genes of inactive slots are left out."""
        first_slot = len(self.head_genes) + 1
        active = range(first_slot + genome[COUNT] * len(self.slot_genes))
        if not self.searches_frontend:
            return list(active)
        inactive = self.frontend_genes.inactive_genes(genome)
        return [i for i in active if i >= len(self.head_genes) or self.head_genes[i][0] not in inactive]

    def genome(self, blocks: int, **genes) -> Genome:
        """A genome from head values and slot lists; a slot list shorter than ``max_blocks`` is
        padded with its gene's first choice (the inactive slots); front-end genes not given take
        their first choice."""
        out = {gene: genes[gene] if gene in genes or not gene.startswith("frontend_") else choices[0]
               for gene, choices in self.head_genes}
        out[COUNT] = blocks
        for gene, choices in self.slot_genes:
            given = list(genes[gene])
            out[gene] = given + [choices[0]] * (self.max_blocks - len(given))
        return json.loads(json.dumps(out))

    def cheapest_frontends(self, network: Genome) -> list[Genome]:
        """``network`` (the genome of the smallest network) behind each front-end whose total, network
        + front-end (``FrontEnd.cost``), is on the Pareto front of peak SRAM and flash, least
        SRAM + flash first: the front-end's input shape changes the network's cost, so the cheapest
        front-end alone is not the cheapest whole (``smallest`` of a space with front-end genes)."""
        totals = []
        for genes in self.frontend_genes.assignments():
            genome = {**network, **genes}
            try:
                arch = self.decode(genome)
            except InvalidArchitecture:
                continue
            cost = with_frontend_cost(estimate_cost(arch), frontend_of(arch))
            totals.append(((cost["peak_sram_bytes"], cost["flash_bytes"]), genome))
        if not totals:
            raise TinyevoError(f"{self.name}: no choice of front-end genes decodes behind the smallest "
                               f"network; give front-end choices with hop_ms <= frame_ms <= clip_ms")
        front = [(cost, genome) for cost, genome in totals
                 if not any(other[0] <= cost[0] and other[1] <= cost[1] and other != cost
                            for other, _ in totals)]
        front.sort(key=lambda item: (sum(item[0]), item[0]))
        unique = {}
        for cost, genome in front:  # one genome per total
            unique.setdefault(cost, genome)
        return list(unique.values())

    # --- sampling and variation ----------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Genome:
        """Every gene uniformly from its choices (the count too, so every depth is as likely); with
        front-end genes, drawn again (up to ``max_tries`` times) until the genome decodes."""
        for _ in range(self.max_tries if self.searches_frontend else 1):
            genome = self.from_vector([int(rng.integers(len(choices))) for _, choices in self.dimensions()])
            if not self.searches_frontend or self.is_valid(genome):
                break
        return genome

    def _mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """One active gene re-drawn among its other choices (a gene with one choice cannot change:
        ``mutate`` retries)."""
        vector, dims = self.to_vector(genome), self.dimensions()
        active = self.active_genes(genome)
        gene = active[int(rng.integers(len(active)))]
        return self.from_vector(redraw_gene(vector, dims, gene, rng))

    def _crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        """Uniform crossover of the choice vectors: each gene from either parent."""
        va, vb = self.to_vector(a), self.to_vector(b)
        return self.from_vector([y if rng.random() < 0.5 else x for x, y in zip(va, vb)])

    def active_blocks(self, genome: Genome) -> list[dict]:
        """The slot genes of each active block, e.g. ``[{"channels": 64, "kernel": 3}, ...]``."""
        self.check(genome)
        return [{gene: genome[gene][slot] for gene, _ in self.slot_genes}
                for slot in range(genome[COUNT])]
