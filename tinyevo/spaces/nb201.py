"""The ``nb201`` space: the NAS-Bench-201 cell (Dong & Yang, ICLR 2020) in its fixed skeleton.

A cell is a 4-node DAG; each of its 6 edges (j <- i, i < j) carries one of 5 ops. Node j is the
sum of its incoming edges. The genome is NAS-Bench-201's own cell string, e.g.
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``,
so that results can be looked up in the benchmark's table (``../shared/datasets/nb201_12epoch.csv.gz``).

The skeleton follows NAS-Bench-201's ``TinyNetwork``: a 3x3 conv stem of C=16 channels with
batch norm; N=5 cells; a residual reduction block to 2C (ReLU-conv3x3 stride 2-BN, ReLU-conv3x3-BN,
shortcut 2x2 average pool + 1x1 conv without bias); N cells; a reduction to 4C; N cells; batch
norm, ReLU, global average pooling and a dense classifier. Cell ops: ``none`` (contributes
nothing), ``skip_connect`` (identity), ``nor_conv_1x1`` / ``nor_conv_3x3`` (ReLU, conv without
bias, batch norm) and ``avg_pool_3x3`` (stride 1, padding not counted in the average).

One difference from the benchmark's PyTorch code: the IR pads by TensorFlow's SAME rule, so the
stride-2 3x3 conv of a reduction block pads (0, 1) where PyTorch pads (1, 1). Shapes, parameter
counts and MACs are the same; the sampled pixel grid is shifted by one.
"""
from __future__ import annotations

import numpy as np

from tinyevo.arch import Architecture, GraphBuilder
from tinyevo.errors import InvalidArchitecture
from tinyevo.spaces.base import SPACES, Genome, SearchSpace

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (to, from) of each edge, in the order of the cell string.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
CELL_NODES = 4
#: Ops whose output is zero when their input is zero (so they can be dropped like ``none``).
ZERO_PRESERVING = ("skip_connect", "avg_pool_3x3")


def format_cell(ops) -> str:
    """The NAS-Bench-201 string of a cell given the op of each edge in ``EDGES`` order."""
    nodes = []
    for j in range(1, CELL_NODES):
        edges = [f"{op}~{i}" for (to, i), op in zip(EDGES, ops) if to == j]
        nodes.append("|" + "|".join(edges) + "|")
    return "+".join(nodes)


def parse_cell(text: Genome) -> list[str]:
    """The op of each edge, in ``EDGES`` order; raises InvalidArchitecture on any other string."""
    if not isinstance(text, str):
        raise InvalidArchitecture(f"an nb201 genome is a cell string, got {text!r:.80}")
    ops = []
    for part in text.split("+"):
        for edge in part.strip("|").split("|"):
            ops.append(edge.split("~")[0])
    if len(ops) != len(EDGES) or any(op not in NB201_OPS for op in ops) or format_cell(ops) != text:
        raise InvalidArchitecture(f"not a NAS-Bench-201 cell string: {text!r:.120}; expected e.g. "
                                  f"{format_cell(['nor_conv_3x3'] * len(EDGES))!r}")
    return ops


@SPACES.register("nb201")
class NasBench201Space(SearchSpace):
    """The 15,625 cells of NAS-Bench-201. Other channel counts and cells per stage are allowed,
    but only the defaults (C=16, N=5, 32x32x3 input) match the benchmark's table."""

    name = "nb201"

    def __init__(self, input_shape=(32, 32, 3), num_classes: int = 10, channels: int = 16,
                 cells_per_stage: int = 5):
        super().__init__(input_shape, num_classes)
        self.channels, self.cells_per_stage = int(channels), int(cells_per_stage)
        self._keys: dict[str, str] = {}  # at most 15,625 cells

    def key(self, genome: Genome) -> str:
        """The fingerprint, remembered per cell string (strategies on the table ask often)."""
        if not isinstance(genome, str) or genome not in self._keys:
            key = super().key(genome)  # raises on anything that is not a cell string
            self._keys[genome] = key
        return self._keys[genome]

    def is_valid(self, genome: Genome) -> bool:
        """Decodes, remembered per cell string with its key (mutation checks every child)."""
        try:
            self.key(genome)
            return True
        except (InvalidArchitecture, ValueError, KeyError, TypeError, IndexError):
            return False

    def options(self) -> dict:
        return {**super().options(), "channels": self.channels,
                "cells_per_stage": self.cells_per_stage}

    # --- the fixed-length encoding -------------------------------------------------------------
    def dimensions(self) -> list[tuple[str, list]]:
        return [(f"edge_{to}_{source}", list(NB201_OPS)) for to, source in EDGES]

    def to_vector(self, genome: Genome) -> list[int]:
        return [NB201_OPS.index(op) for op in parse_cell(genome)]

    def from_vector(self, vector: list[int]) -> Genome:
        if len(vector) != len(EDGES):
            raise InvalidArchitecture(f"an nb201 vector has {len(EDGES)} genes, got {len(vector)}")
        return format_cell([NB201_OPS[int(i)] for i in vector])

    # --- sampling and variation ----------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Genome:
        return self.from_vector(rng.integers(0, len(NB201_OPS), size=len(EDGES)).tolist())

    def smallest(self) -> list[Genome]:
        """The cell whose output is its input: no cell op costs a parameter or a MAC."""
        return [format_cell(["none", "none", "none", "skip_connect", "none", "none"])]

    def _mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """Give one edge another op (the mutation of NAS-Bench-201's regularized evolution)."""
        vector = self.to_vector(genome)
        edge = int(rng.integers(len(EDGES)))
        vector[edge] = (vector[edge] + int(rng.integers(1, len(NB201_OPS)))) % len(NB201_OPS)
        return self.from_vector(vector)

    def _crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        """Uniform crossover: each edge's op from either parent."""
        va, vb = self.to_vector(a), self.to_vector(b)
        take_b = rng.random(len(EDGES)) < 0.5
        return self.from_vector([y if t else x for x, y, t in zip(va, vb, take_b)])

    # --- decoding ------------------------------------------------------------------------------
    def decode(self, genome: Genome) -> Architecture:
        ops = parse_cell(genome)
        g = GraphBuilder(self.input_shape, name="nb201")
        zeros: set[str] = set()  # tensors known to be all zeros
        x = g.conv_bn_act(g.input, self.channels, 3, act=None)
        for stage in range(3):
            if stage:
                x = self._reduction(g, x, self.channels * 2 ** stage)
            for _ in range(self.cells_per_stage):
                x = self._cell(g, x, ops, zeros)
        x = g.relu(g.batch_norm(x))
        return g.build(g.dense(g.global_avg_pool(x), self.num_classes),
                       meta={"space": self.name, "genome": genome})

    @staticmethod
    def _reduction(g: GraphBuilder, x: str, channels: int) -> str:
        """NAS-Bench-201's ResNetBasicblock with stride 2."""
        y = g.conv_bn_act(g.relu(x), channels, 3, 2, act=None)
        y = g.conv_bn_act(g.relu(y), channels, 3, 1, act=None)
        shortcut = g.conv2d(g.avg_pool(x, 2, 2), channels, 1, bias=False)
        return g.add(y, shortcut)

    def _cell(self, g: GraphBuilder, x: str, ops: list[str], zeros: set[str]) -> str:
        nodes = [x]
        for j in range(1, CELL_NODES):
            terms = [self._edge(g, nodes[i], op, zeros)
                     for (to, i), op in zip(EDGES, ops) if to == j]
            terms = [t for t in terms if t is not None]
            if not terms:  # every edge into node j is none: its value is zero
                nodes.append(g.zero(x))
                zeros.add(nodes[-1])
            else:
                nodes.append(terms[0] if len(terms) == 1 else g.add(*terms))
        return nodes[-1]

    @staticmethod
    def _edge(g: GraphBuilder, source: str, op: str, zeros: set[str]) -> str | None:
        """The edge's output tensor, or None when it is zero (none, or skip / pool of zeros)."""
        if op == "none" or (source in zeros and op in ZERO_PRESERVING):
            return None
        if op == "skip_connect":
            return source
        if op == "avg_pool_3x3":
            return g.avg_pool(source, 3, 1, padding="same")
        kernel = 1 if op == "nor_conv_1x1" else 3
        return g.conv_bn_act(g.relu(source), g.shapes[source][2], kernel, act=None)

    def describe(self, genome: Genome) -> str:
        return str(genome)
