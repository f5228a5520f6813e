"""The ``dag`` space: multi-branch stages in Genetic CNN's binary encoding (L. Xie, A. Yuille,
"Genetic CNN", ICCV 2017).

A network is S stages joined by 2x2 max pooling (stride 2, SAME padding), then global average
pooling and a dense classifier. Stage s has K_s ordered nodes; its K_s(K_s-1)/2 bits say, for each
pair i < j, whether node i feeds node j. A node sums its inputs (a chain of two-input adds, as
the int8 graph runs them), then applies the node op with the stage's channel count: a convolution,
batch norm and relu (``op`` picks conv 1x1, 3x3, 5x5 or depthwise-separable 3x3, 5x5). As in the
paper:

- a default input node convolves the stage's input and feeds every node without a predecessor;
  a default output node sums every node without a successor and convolves the sum; neither is
  encoded, and the input node makes the stage's channel count;
- an isolated node (no edge at all) is dropped;
- a stage without any edge (all bits 0) is a single convolution: the input node alone.

A genome is a JSON list with one Genetic CNN string per stage: group j (dash separated) holds the
bits of node j+1's inputs from nodes 1..j, e.g. ``["1-01", "1-00-111", "0-11-010-0111"]``; it reads
``1-01_1-00-111_0-11-010-0111`` in logs (``describe``/``parse``).

Which genomes are one network: a stage is a DAG of identical node ops, so relabelling its nodes
(with its edges) does not change the network, nor do the bits of isolated nodes. Each stage is
built in a canonical node order, the relabelling whose bit string is largest (``canonical``), so
genomes of one network decode to the same architecture, op order and memory figures included,
and share a key. (The key is the architecture's fingerprint, which also merges some networks
that are not the same: see ``Architecture.fingerprint`` and tests/test_dag.py.)

Variation as in the paper (``mutation="space"``, ``crossover="space"`` in an evolution config):
each bit flips with probability 0.05 (q_M; at least one bit flips), and crossover takes whole
stages from either parent. The bits are also a fixed-length vector (``to_vector``), so the
generic operators (one_gene, uniform, per_gene) and NSGA-II apply too.
"""
from __future__ import annotations

import functools

import numpy as np

from tinyevo.arch import Architecture, GraphBuilder
from tinyevo.errors import InvalidArchitecture, TinyevoError
from tinyevo.spaces.base import SPACES, Genome, SearchSpace

#: Node ops: (kind, kernel). "conv": conv + batch norm + relu; "ds": depthwise conv + batch norm +
#: relu, then pointwise 1x1 conv + batch norm + relu.
NODE_OPS = {"conv1x1": ("conv", 1), "conv3x3": ("conv", 3), "conv5x5": ("conv", 5),
            "ds3x3": ("ds", 3), "ds5x5": ("ds", 5)}
MIN_NODES, MAX_NODES = 2, 10
BIT_FLIP_RATE = 0.05  # Genetic CNN's q_M
STAGE_JOIN = "_"


# --- one stage's bits --------------------------------------------------------------------------
def bit_count(nodes: int) -> int:
    return nodes * (nodes - 1) // 2


def predecessors(nodes: int, bits: tuple) -> list[frozenset]:
    """The inputs of each node (0-based): bit ``j(j-1)/2 + i`` says whether node i feeds node j."""
    return [frozenset(i for i in range(j) if bits[bit_count(j) + i]) for j in range(nodes)]


def format_stage(bits, nodes: int) -> str:
    """Genetic CNN's string of a stage, e.g. ``1-01-001`` for a chain of four nodes."""
    return "-".join("".join(str(int(b)) for b in bits[bit_count(j):bit_count(j + 1)])
                    for j in range(1, nodes))


def parse_stage(text, nodes: int, stage: int) -> tuple:
    """The bits of a stage string; raises InvalidArchitecture on any other text."""
    groups = text.split("-") if isinstance(text, str) else None
    if (groups is None or len(groups) != nodes - 1
            or any(len(group) != j + 1 or set(group) - {"0", "1"} for j, group in enumerate(groups))):
        example = format_stage([1] * bit_count(nodes), nodes)
        raise InvalidArchitecture(f"dag stage {stage + 1}: {text!r:.60} is not the string of a "
                                  f"{nodes}-node stage; write {nodes - 1} dash-separated groups of "
                                  f"1 to {nodes - 1} bits (0 or 1), e.g. {example!r}")
    return tuple(int(b) for group in groups for b in group)


@functools.lru_cache(maxsize=1 << 15)
def canonical_stage(nodes: int, bits: tuple) -> tuple:
    """The bits of the same stage with its nodes relabelled in a canonical order: connected nodes
    first, in the topological order whose bit string is largest; isolated nodes last (all zeros).

    Two stages get the same canonical bits exactly when their DAGs of connected nodes are
    isomorphic. The search tries topological orders branch and bound; of two interchangeable
    nodes (same inputs, same outputs) it tries one.
    """
    preds = predecessors(nodes, bits)
    succs = [frozenset(j for j in range(nodes) if i in preds[j]) for i in range(nodes)]
    active = [n for n in range(nodes) if preds[n] or succs[n]]
    best: list[tuple] = [()]

    def extend(order: list[int], code: tuple) -> None:
        if code < best[0][:len(code)]:
            return  # no completion of this prefix can beat the best string so far
        if len(order) == len(active):
            best[0] = max(best[0], code)
            return
        placed, tried = set(order), set()
        for n in active:
            if n in placed or not preds[n] <= placed or (preds[n], succs[n]) in tried:
                continue
            tried.add((preds[n], succs[n]))
            extend(order + [n], code + tuple(int(m in preds[n]) for m in order))

    extend([], ())
    return best[0] + (0,) * (len(bits) - len(best[0]))


def _per_stage(value, stages: int, name: str, kind: type) -> list:
    values = [value] * stages if isinstance(value, (int, str)) else list(value)
    if len(values) != stages or any(type(v) is not kind for v in values):
        raise TinyevoError(f"dag option {name} must be one {kind.__name__} or a list of one per "
                           f"stage ({stages}), got {value!r}")
    return values


@SPACES.register("dag")
class GeneticCnnSpace(SearchSpace):
    """Genetic CNN's fixed-length binary space. ``nodes`` (K per stage), ``channels`` and ``op``
    take one value or one per stage; S is their length (or ``stages`` when all are single values).
    Defaults: Genetic CNN's CIFAR-10 stages K = (3, 4, 5); 8, 16, 32 channels for MCU budgets."""

    name = "dag"

    def __init__(self, input_shape=(32, 32, 3), num_classes: int = 10, nodes=(3, 4, 5),
                 channels=(8, 16, 32), op="conv3x3", stages: int | None = None):
        super().__init__(input_shape, num_classes)
        lists = [len(v) for v in (nodes, channels, op) if not isinstance(v, (int, str))]
        count = stages if stages is not None else (lists[0] if lists else 1)
        if type(count) is not int or count < 1:
            raise TinyevoError(f"dag option stages must be a positive int, got {stages!r}")
        self.nodes = _per_stage(nodes, count, "nodes", int)
        self.channels = _per_stage(channels, count, "channels", int)
        self.ops = _per_stage(op, count, "op", str)
        if any(not MIN_NODES <= k <= MAX_NODES for k in self.nodes):
            raise TinyevoError(f"dag option nodes: each stage holds {MIN_NODES} to {MAX_NODES} "
                               f"nodes, got {self.nodes}")
        if any(c < 1 for c in self.channels):
            raise TinyevoError(f"dag option channels must be positive, got {self.channels}")
        if set(self.ops) - set(NODE_OPS):
            raise TinyevoError(f"dag option op: {sorted(set(self.ops) - set(NODE_OPS))[0]!r} is "
                               f"not a node op; choose from {', '.join(NODE_OPS)}")

    def options(self) -> dict:
        return {**super().options(), "nodes": self.nodes, "channels": self.channels,
                "op": self.ops}

    # --- genomes -------------------------------------------------------------------------------
    def stage_bits(self, genome: Genome) -> list[tuple]:
        """The bits of each stage; raises InvalidArchitecture unless ``genome`` is a valid genome."""
        if not isinstance(genome, list) or len(genome) != len(self.nodes):
            raise InvalidArchitecture(f"a dag genome is a list of {len(self.nodes)} stage strings "
                                      f"(e.g. {self.smallest()[0]!r}), got {genome!r:.80}")
        return [parse_stage(text, k, s) for s, (text, k) in enumerate(zip(genome, self.nodes))]

    def canonical(self, genome: Genome) -> Genome:
        """The representative genome of the network: every stage in its canonical node order."""
        return [format_stage(canonical_stage(k, bits), k)
                for bits, k in zip(self.stage_bits(genome), self.nodes)]

    def describe(self, genome: Genome) -> str:
        return STAGE_JOIN.join(format_stage(bits, k)
                               for bits, k in zip(self.stage_bits(genome), self.nodes))

    def parse(self, text: str) -> Genome:
        """The genome of a ``describe`` string such as ``1-01_1-00-111_0-11-010-0111``."""
        if not isinstance(text, str):
            raise InvalidArchitecture(f"a dag genome string is text, got {text!r:.80}")
        genome = text.strip().split(STAGE_JOIN)
        self.stage_bits(genome)
        return genome

    def smallest(self) -> list[Genome]:
        """No edge anywhere: one convolution per stage."""
        return [[format_stage([0] * bit_count(k), k) for k in self.nodes]]

    # --- the fixed-length encoding -------------------------------------------------------------
    def dimensions(self) -> list[tuple[str, list]]:
        return [(f"stage{s + 1}_node{i + 1}_to_node{j + 1}", [0, 1])
                for s, k in enumerate(self.nodes) for j in range(1, k) for i in range(j)]

    def to_vector(self, genome: Genome) -> list[int]:
        return [b for bits in self.stage_bits(genome) for b in bits]

    def from_vector(self, vector: list[int]) -> Genome:
        total = sum(bit_count(k) for k in self.nodes)
        if len(vector) != total or any(int(v) not in (0, 1) for v in vector):
            raise InvalidArchitecture(f"a dag vector has {total} genes of 0 or 1, got {vector!r:.80}")
        genome, start = [], 0
        for k in self.nodes:
            genome.append(format_stage(vector[start:start + bit_count(k)], k))
            start += bit_count(k)
        return genome

    # --- sampling and variation ----------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Genome:
        """Every bit 0 or 1 with probability 1/2 (Genetic CNN's initialization)."""
        return self.from_vector(rng.integers(0, 2, size=len(self.dimensions())).tolist())

    def _mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """Genetic CNN's mutation: each bit flips with probability q_M = 0.05, at least one."""
        vector = self.to_vector(genome)
        flips = rng.random(len(vector)) < BIT_FLIP_RATE
        if not flips.any():
            flips[rng.integers(len(vector))] = True
        return self.from_vector([bit ^ int(flip) for bit, flip in zip(vector, flips)])

    def _crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        """Genetic CNN's crossover at stage boundaries: whole stages from either parent, at least
        one from each (with a single stage: one parent's, at random)."""
        self.stage_bits(a)
        self.stage_bits(b)
        count = len(self.nodes)
        if count == 1:
            return list(b if rng.random() < 0.5 else a)
        from_b = set(rng.permutation(count)[:rng.integers(1, count)].tolist())
        return [b[s] if s in from_b else a[s] for s in range(count)]

    # --- decoding ------------------------------------------------------------------------------
    def decode(self, genome: Genome) -> Architecture:
        stages = self.stage_bits(genome)
        g = GraphBuilder(self.input_shape, name="dag")
        x = g.input
        for stage, bits in enumerate(stages):
            if stage:
                x = g.max_pool(x, 2, 2, padding="same")
            x = self._stage(g, x, stage, canonical_stage(self.nodes[stage], bits))
        return g.build(g.dense(g.global_avg_pool(x), self.num_classes),
                       meta={"space": self.name, "genome": self.describe(genome)})

    def _stage(self, g: GraphBuilder, x: str, stage: int, bits: tuple) -> str:
        """A stage from canonical bits: its connected nodes come first, in topological order."""
        preds = predecessors(self.nodes[stage], bits)
        active = [j for j in range(len(preds)) if preds[j] or any(j in p for p in preds)]
        start = self._node(g, x, stage)
        if not active:
            return start
        outputs: dict[int, str] = {}
        for j in active:
            inputs = [outputs[i] for i in sorted(preds[j])] or [start]
            outputs[j] = self._node(g, _sum(g, inputs), stage)
        sinks = [outputs[j] for j in active if not any(j in p for p in preds)]
        return self._node(g, _sum(g, sinks), stage)

    def _node(self, g: GraphBuilder, x: str, stage: int) -> str:
        kind, kernel = NODE_OPS[self.ops[stage]]
        channels = self.channels[stage]
        if kind == "conv":
            return g.conv_bn_act(x, channels, kernel)
        return g.depthwise_separable(x, channels, kernel)


def _sum(g: GraphBuilder, tensors: list[str]) -> str:
    """The sum as a chain of two-input adds, as the int8 graph runs it (TFLite's ADD takes two),
    so that the search counts the partial sums' memory that deployment needs."""
    total = tensors[0]
    for tensor in tensors[1:]:
        total = g.add(total, tensor)
    return total
