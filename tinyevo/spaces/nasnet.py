"""The ``nasnet`` space: a normal and a reduction cell in a macro skeleton (B. Zoph, V. Vasudevan,
J. Shlens, Q. V. Le, "Learning Transferable Architectures for Scalable Image Recognition", CVPR
2018), micro and macro searched together (or the macro fixed).

Skeleton: a 3x3 conv stem of C channels (conv, batch norm, relu), then ``reductions`` + 1 stages of
N normal cells, a reduction cell between two stages (it halves height and width and doubles the
channels), then global average pooling and a dense classifier. The macro genes are N
(``cells_per_stage``), the number of reductions and C (``channels``); each is searched over a list
of choices, or fixed by giving one int, and ``macro="fixed"`` fixes all three (at the first value
of each list).

A cell reads two states, h_{i-2} and h_{i-1} (the outputs of the two cells before it; the stem's
output stands in for both before the first cell). Each of its B blocks takes two states, applies
an op to each and sums the two; a block may read the two cell inputs (states 0 = h_{i-2} and
1 = h_{i-1}) and the output of any earlier block (state 2 + b for block b). The cell's output
concatenates the outputs of the blocks no other block reads, as in NASNet. Ops (``OPS``, all with
C output channels; ``ops`` picks a subset): ``sep3``/``sep5`` (depthwise-separable 3x3 / 5x5),
``dil3`` (depthwise 3x3 with dilation 2, then pointwise 1x1), ``max3``/``avg3`` (3x3 pooling,
SAME padding; the average excludes padded pixels), ``id`` (identity) and ``conv1`` (1x1 conv). In
the reduction cell every op on a cell input has stride 2.

Shapes as in NASNet: each cell input is first projected to the cell's C channels by a 1x1 conv
(only the inputs some block reads), and h_{i-2}, when it is twice the size of h_{i-1} (the cell
follows a reduction), by a stride-2 1x1 conv; an identity with stride 2 is the same stride-2 1x1
conv. NASNet reduces h_{i-2} by a "factorized reduction" instead: two stride-2 1x1 convs of C/2
channels, the second on the input shifted by one pixel, concatenated. The single stride-2 conv has
the same parameters and MACs and needs no shift op (which the IR and the int8 runtimes lack); it
samples one of the two pixel grids.

Two deliberate differences from NASNet for microcontrollers: every conv is conv, batch norm, relu
(NASNet: relu, conv, batch norm), so that each folds into one int8 kernel with a fused activation
instead of needing a standalone RELU before it; and a separable op is one depthwise-separable conv
(NASNet applies it twice), half the cost.

A genome is a JSON object: ``normal`` and ``reduce``, B block strings each, and the searched macro
genes (``cells_per_stage``, ``reductions``, ``channels``; a fixed one is left out). A block string
is ``op~state+op~state``, e.g. ``sep3~1+id~0``. It reads
``N2-R1-C8/sep3~1+id~0,max3~2+sep5~0/max3~0+sep5~1,id~2+avg3~0`` in logs (``describe``/``parse``):
the macro, then the normal cell's blocks, then the reduction cell's.

Which genomes are one network: the two terms of a block's sum can be written in either order;
each block is decoded in a canonical order (``canonical``), so both genomes decode to the same
architecture, op order and memory figures included, and share a key. The genes make a
fixed-length vector (``to_vector``): the macro genes, then for each block its two states and ops;
the choices of a block's states are the states before it. Mutation, as in regularized evolution
on this space (Real et al. 2019), changes one gene: a block's state or op, or a macro gene.
Crossover takes each block and each macro gene from either parent.
"""
from __future__ import annotations

import numpy as np

from tinyevo.arch import Architecture, GraphBuilder
from tinyevo.errors import InvalidArchitecture, TinyevoError
from tinyevo.spaces.base import SPACES, Genome, SearchSpace

#: Block ops: (kind, kernel, dilation).
OPS = {"sep3": ("sep", 3, 1), "sep5": ("sep", 5, 1), "dil3": ("sep", 3, 2), "max3": ("max_pool", 3, 1),
       "avg3": ("avg_pool", 3, 1), "id": ("identity", 1, 1), "conv1": ("conv", 1, 1)}
CELLS = ("normal", "reduce")
MACRO = ("cells_per_stage", "reductions", "channels")
MACRO_LETTERS = {"cells_per_stage": "N", "reductions": "R", "channels": "C"}
INPUTS = 2  # h_{i-2} and h_{i-1}
MAX_BLOCKS = 10
KEY_CACHE = 1 << 14


def _choices(value, name: str, least: int) -> list[int]:
    values = [value] if isinstance(value, int) else value
    if (not isinstance(values, (list, tuple)) or not values
            or any(type(v) is not int or v < least for v in values) or len(set(values)) != len(values)):
        raise TinyevoError(f"nasnet option {name} must be an int >= {least} or a list of distinct "
                           f"ones, got {value!r}")
    return list(values)


def format_block(block) -> str:
    """``op~state+op~state`` of a block given as (state, op, state, op)."""
    return f"{block[1]}~{block[0]}+{block[3]}~{block[2]}"


def canonical_block(block: tuple) -> tuple:
    """The same block with its two terms in a fixed order: the sum does not depend on it."""
    first, second = sorted([(block[0], block[1]), (block[2], block[3])])
    return (*first, *second)


@SPACES.register("nasnet")
class NasNetSpace(SearchSpace):
    """NASNet's cells with the macro searched. ``blocks`` is B (NASNet: 5); ``ops`` the block ops;
    ``cells_per_stage``, ``reductions`` and ``channels`` each an int (fixed) or a list of choices;
    ``macro="fixed"`` fixes each at its first choice. Defaults fit MCU budgets at 32x32x3."""

    name = "nasnet"

    def __init__(self, input_shape=(32, 32, 3), num_classes: int = 10, blocks: int = 5,
                 ops=tuple(OPS), cells_per_stage=(1, 2, 3), reductions=(1, 2), channels=(8, 12, 16),
                 macro: str = "search"):
        super().__init__(input_shape, num_classes)
        if type(blocks) is not int or not 1 <= blocks <= MAX_BLOCKS:
            raise TinyevoError(f"nasnet option blocks must be an int from 1 to {MAX_BLOCKS}, got {blocks!r}")
        ops = [ops] if isinstance(ops, str) else ops
        if not isinstance(ops, (list, tuple)) or not ops or len(set(ops)) != len(ops):
            raise TinyevoError(f"nasnet option ops must be a list of distinct ops, got {ops!r}")
        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise TinyevoError(f"nasnet option ops: {unknown[0]!r} is not a block op; choose from "
                               f"{', '.join(OPS)}")
        if macro not in ("search", "fixed"):
            raise TinyevoError(f"nasnet option macro must be 'search' or 'fixed', got {macro!r}")
        self.blocks, self.ops, self.macro = blocks, list(ops), macro
        self.macro_choices = {"cells_per_stage": _choices(cells_per_stage, "cells_per_stage", 1),
                              "reductions": _choices(reductions, "reductions", 0),
                              "channels": _choices(channels, "channels", 1)}
        if macro == "fixed":
            self.macro_choices = {k: v[:1] for k, v in self.macro_choices.items()}
        #: the searched macro genes (more than one choice), in vector order
        self.searched = [k for k in MACRO if len(self.macro_choices[k]) > 1]
        self._keys: dict[str, str] = {}

    def is_valid(self, genome: Genome) -> bool:
        """Whether ``genome`` is well formed: every well-formed genome decodes (SAME padding keeps
        each map at least 1x1), so mutation's retries need not build the network."""
        try:
            self.parts(genome)
            return True
        except InvalidArchitecture:
            return False

    def key(self, genome: Genome) -> str:
        """The fingerprint, remembered per canonical genome (strategies ask for it often)."""
        text = self.to_json(self.canonical(genome))
        if text not in self._keys:
            if len(self._keys) >= KEY_CACHE:
                self._keys.clear()
            self._keys[text] = self.decode(genome).fingerprint()
        return self._keys[text]

    def options(self) -> dict:
        return {**super().options(), "blocks": self.blocks, "ops": self.ops,
                **{k: v if len(v) > 1 else v[0] for k, v in self.macro_choices.items()}}

    # --- genomes -------------------------------------------------------------------------------
    def _block(self, text, cell: str, b: int) -> tuple:
        """(state, op, state, op) of a block string; raises InvalidArchitecture on other text."""
        try:
            terms = [term.split("~") for term in text.split("+")]
            if len(terms) != 2 or any(len(t) != 2 for t in terms):
                raise ValueError
            block = (int(terms[0][1]), terms[0][0], int(terms[1][1]), terms[1][0])
            if (any(op not in self.ops for op in block[1::2])
                    or any(not 0 <= s < INPUTS + b or str(s) != t[1] for s, t in zip(block[::2], terms))):
                raise ValueError
        except (AttributeError, ValueError):
            raise InvalidArchitecture(
                f"nasnet {cell} cell block {b + 1}: {text!r:.60} is not 'op~state+op~state' with "
                f"ops from {', '.join(self.ops)} and states 0 to {INPUTS + b - 1} (0, 1: the cell "
                f"inputs; 2 + k: block k+1), e.g. '{self.ops[0]}~1+{self.ops[-1]}~0'") from None
        return block

    def parts(self, genome: Genome) -> tuple[dict, dict]:
        """({cell: [block tuples]}, {macro gene: value}); raises InvalidArchitecture unless
        ``genome`` is a valid genome."""
        keys = set(CELLS) | set(self.searched)
        if not isinstance(genome, dict) or set(genome) != keys:
            raise InvalidArchitecture(f"a nasnet genome is an object with keys {sorted(keys)} "
                                      f"(e.g. {self._example()!r:.120}), got {genome!r:.80}")
        cells = {}
        for cell in CELLS:
            blocks = genome[cell]
            if not isinstance(blocks, list) or len(blocks) != self.blocks:
                raise InvalidArchitecture(f"nasnet {cell} cell: a list of {self.blocks} block strings, "
                                          f"got {blocks!r:.80}")
            cells[cell] = [self._block(text, cell, b) for b, text in enumerate(blocks)]
        macro = {}
        for key in MACRO:
            value = genome.get(key, self.macro_choices[key][0])
            if type(value) is not int or value not in self.macro_choices[key]:
                raise InvalidArchitecture(f"nasnet {key} must be one of {self.macro_choices[key]}, "
                                          f"got {value!r:.40}")
            macro[key] = value
        return cells, macro

    def _genome(self, cells: dict, macro: dict) -> Genome:
        genome = {cell: [format_block(block) for block in cells[cell]] for cell in CELLS}
        genome.update({key: macro[key] for key in self.searched})
        return genome

    def canonical(self, genome: Genome) -> Genome:
        """The representative genome of the network: each block's two terms in canonical order."""
        cells, macro = self.parts(genome)
        return self._genome({c: [canonical_block(b) for b in blocks] for c, blocks in cells.items()},
                            macro)

    def describe(self, genome: Genome) -> str:
        cells, macro = self.parts(genome)
        head = "-".join(f"{MACRO_LETTERS[k]}{macro[k]}" for k in MACRO)
        return "/".join([head] + [",".join(format_block(b) for b in cells[c]) for c in CELLS])

    def parse(self, text: str) -> Genome:
        """The genome of a ``describe`` string such as ``N1-R1-C8/id~1+id~1/max3~1+max3~1``."""
        parts = text.strip().split("/") if isinstance(text, str) else []
        head = parts[0].split("-") if len(parts) == 3 else []
        letters = [MACRO_LETTERS[k] for k in MACRO]
        if (len(head) != len(MACRO) or any(h[:1] != x or not h[1:].isdigit() for h, x in zip(head, letters))):
            raise InvalidArchitecture(f"a nasnet genome string is 'N<cells>-R<reductions>-C<channels>/"
                                      f"<normal blocks>/<reduction blocks>', blocks comma-separated, "
                                      f"e.g. {self.describe(self._example())!r}; got {text!r:.80}")
        macro = {k: int(h[1:]) for k, h in zip(MACRO, head)}
        for key in set(MACRO) - set(self.searched):
            if macro[key] != self.macro_choices[key][0]:
                raise InvalidArchitecture(f"nasnet {key} is fixed at {self.macro_choices[key][0]} in "
                                          f"this space, got {macro[key]} in {text!r:.80}")
        genome = {cell: part.split(",") for cell, part in zip(CELLS, parts[1:])}
        genome.update({key: macro[key] for key in self.searched})
        self.parts(genome)
        return genome

    def smallest(self) -> list[Genome]:
        """The cheapest networks: fewest, narrowest cells; every block a free op (identity; a pool
        on the reduction cell's inputs), each block reading the one before, so one block is
        concatenated. Each cell reads one input, h_{i-1} or h_{i-2} (a cell that reads h_{i-2}
        alone leaves the cell before it dead): the cheapest of the four choices comes first."""
        macro = {k: min(v) for k, v in self.macro_choices.items()}
        genomes = [self._genome({"normal": self._free_chain("normal", normal),
                                 "reduce": self._free_chain("reduce", reduce)}, macro)
                   for normal in (1, 0) for reduce in (1, 0)]
        return sorted(genomes, key=lambda g: (self.decode(g).trainable_params(), self.describe(g)))[:1]

    def _example(self) -> Genome:
        return self._genome({c: self._free_chain(c, 1) for c in CELLS},
                            {k: v[0] for k, v in self.macro_choices.items()})

    def _free_chain(self, cell: str, read: int) -> list[tuple]:
        pool = next((op for op in ("max3", "avg3") if op in self.ops), None)
        chain = "id" if "id" in self.ops else (pool or self.ops[0])
        first = pool if cell == "reduce" and pool else chain
        return [(read, first, read, first)] + [(1 + b, chain, 1 + b, chain) for b in range(1, self.blocks)]

    # --- the fixed-length encoding -------------------------------------------------------------
    def dimensions(self) -> list[tuple[str, list]]:
        dims = [(key, list(self.macro_choices[key])) for key in self.searched]
        for cell in CELLS:
            for b in range(self.blocks):
                for term in (1, 2):
                    dims.append((f"{cell}_block{b + 1}_state{term}", list(range(INPUTS + b))))
                    dims.append((f"{cell}_block{b + 1}_op{term}", list(self.ops)))
        return dims

    def to_vector(self, genome: Genome) -> list[int]:
        cells, macro = self.parts(genome)
        vector = [self.macro_choices[key].index(macro[key]) for key in self.searched]
        for cell in CELLS:
            for state1, op1, state2, op2 in cells[cell]:
                vector += [state1, self.ops.index(op1), state2, self.ops.index(op2)]
        return vector

    def from_vector(self, vector: list[int]) -> Genome:
        dims = self.dimensions()
        if (not isinstance(vector, (list, tuple)) or len(vector) != len(dims)
                or any(not 0 <= int(v) < len(choices) for v, (_, choices) in zip(vector, dims))):
            raise InvalidArchitecture(f"a nasnet vector has {len(dims)} genes, each an index into its "
                                      f"choices (see dimensions()), got {vector!r:.80}")
        values = [choices[int(v)] for v, (_, choices) in zip(vector, dims)]
        macro = {key: values[i] for i, key in enumerate(self.searched)}
        macro.update({k: self.macro_choices[k][0] for k in MACRO if k not in macro})
        start, cells = len(self.searched), {}
        for cell in CELLS:
            cells[cell] = [tuple(values[start + 4 * b:start + 4 * b + 4]) for b in range(self.blocks)]
            start += 4 * self.blocks
        return self._genome(cells, macro)

    # --- sampling and variation ----------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Genome:
        """Every gene uniformly from its choices."""
        return self.from_vector([int(rng.integers(len(choices))) for _, choices in self.dimensions()])

    def _mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """One gene (a block's state or op, or a macro gene) to another of its choices."""
        vector, dims = self.to_vector(genome), self.dimensions()
        gene = int(rng.integers(len(vector)))
        while len(dims[gene][1]) < 2:  # an op gene when ``ops`` holds a single op
            gene = int(rng.integers(len(vector)))
        vector[gene] = (vector[gene] + int(rng.integers(1, len(dims[gene][1])))) % len(dims[gene][1])
        return self.from_vector(vector)

    def _crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        """Each block (its four genes) and each macro gene from either parent."""
        va, vb = self.to_vector(a), self.to_vector(b)
        macro = len(self.searched)
        groups = [[i] for i in range(macro)] + [list(range(start, start + 4))
                                                for start in range(macro, len(va), 4)]
        child = list(va)
        for group, take_b in zip(groups, rng.random(len(groups)) < 0.5):
            if take_b:
                for i in group:
                    child[i] = vb[i]
        return self.from_vector(child)

    # --- decoding ------------------------------------------------------------------------------
    def decode(self, genome: Genome) -> Architecture:
        cells, macro = self.parts(genome)
        normal = [canonical_block(b) for b in cells["normal"]]
        reduce = [canonical_block(b) for b in cells["reduce"]]
        g = GraphBuilder(self.input_shape, name="nasnet")
        channels = macro["channels"]
        prev = prev_prev = g.conv_bn_act(g.input, channels, 3)
        for stage in range(macro["reductions"] + 1):
            if stage:
                channels *= 2
                prev_prev, prev = prev, self._cell(g, reduce, prev_prev, prev, channels, reduction=True)
            for _ in range(macro["cells_per_stage"]):
                prev_prev, prev = prev, self._cell(g, normal, prev_prev, prev, channels, reduction=False)
        arch = g.build(g.dense(g.global_avg_pool(prev), self.num_classes),
                       meta={"space": self.name, "genome": self.describe(genome)})
        live = arch.live_nodes()
        if len(live) == len(arch.nodes):
            return arch
        # a cell no later cell reads (the next one reads h_{i-2} alone, the one after h_{i-1}) is dropped
        return Architecture(arch.input_shape, live, arch.output, arch.name, arch.meta, arch.frontend)

    def _cell(self, g: GraphBuilder, blocks: list[tuple], prev_prev: str, prev: str, channels: int,
              reduction: bool) -> str:
        """One cell: the inputs a block reads projected to ``channels``, the blocks, the concat of
        the blocks no block reads."""
        inputs: dict[int, str] = {}

        def state(index: int) -> str:
            if index >= INPUTS:
                return outputs[index - INPUTS]
            if index not in inputs:  # project a cell input when a block first reads it
                source = prev_prev if index == 0 else prev
                stride = 2 if g.shapes[source][0] > g.shapes[prev][0] else 1  # h_{i-2} before a reduction
                inputs[index] = g.conv_bn_act(source, channels, 1, stride)
            return inputs[index]

        outputs: list[str] = []
        for state1, op1, state2, op2 in blocks:
            terms = [self._op(g, state(s), op, 2 if reduction and s < INPUTS else 1, channels)
                     for s, op in ((state1, op1), (state2, op2))]
            outputs.append(g.add(*terms))
        read = {s for block in blocks for s in block[::2]}
        unused = [out for b, out in enumerate(outputs) if INPUTS + b not in read]
        return unused[0] if len(unused) == 1 else g.concat(*unused)

    @staticmethod
    def _op(g: GraphBuilder, x: str, op: str, stride: int, channels: int) -> str:
        kind, kernel, dilation = OPS[op]
        if kind == "sep":
            y = g.conv2d(x, channels, kernel, stride, groups=channels, dilation=dilation, bias=False)
            return g.conv_bn_act(g.relu(g.batch_norm(y)), channels, 1)
        if kind == "max_pool":
            return g.max_pool(x, kernel, stride, padding="same")
        if kind == "avg_pool":
            return g.avg_pool(x, kernel, stride, padding="same")
        if kind == "identity" and stride == 1:
            return x
        return g.conv_bn_act(x, channels, 1, stride)  # conv1, or an identity with stride 2
