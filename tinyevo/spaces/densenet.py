"""The ``densenet`` space: human knowledge injection, a fixed DenseNet-BC macro whose dense blocks
alone are searched (the survey's DenseNet example; Cai et al. 2018, "Path-Level Network
Transformation for Efficient Architecture Search"; G. Huang et al., "Densely Connected
Convolutional Networks", CVPR 2017).

The macro is DenseNet-BC's for CIFAR, fixed:

- a stem: 3x3 convolution (no bias) to 2k channels, k the growth rate of the first block;
- D dense blocks (``blocks``); layer l of a block reads the block's running feature map x
  (C channels) and computes BN-relu-1x1 conv to b*k channels (the bottleneck), BN-relu-kxk conv to
  k channels (k the growth rate), which is concatenated to x: x becomes C + k channels. The
  running map is a chain of two-input concats, as Keras writes DenseNet and the int8 graph runs
  it, so the search counts the memory of each copy;
- between blocks a transition: BN-relu-1x1 conv to floor(0.5 C) channels (compression 0.5), then
  2x2 average pooling, stride 2 ('valid': an odd side loses its last row and column, as
  ``nn.AvgPool2d(2)`` does);
- after the last block BN-relu, global average pooling and a dense classifier.

The search sets, per block, four genes and nothing else: the layer count L, the growth rate k,
the bottleneck multiple b (the bottleneck is b*k channels; DenseNet-BC uses 4) and the kernel of
the kxk conv (DenseNet: 3). A genome is a JSON list with one string per block, e.g.
``["L6_g12_b4_k3", "L12_g12_b4_k3"]``, and reads ``L6_g12_b4_k3-L12_g12_b4_k3`` in logs
(``describe``/``parse``). Each gene is one of the space's choices (options ``layers``,
``growth``, ``bottleneck``, ``kernels``, shared by every block), so the encoding is a fixed-length
vector of 4D choice indices (``dimensions``/``to_vector``/``from_vector``): the generic operators
and NSGA-II apply, and so do this space's own (one gene re-drawn; each gene from either parent).
Every gene changes the network's shapes, so two genomes are one network only when they are equal;
the key is the architecture's fingerprint.

Batch-norm ordering: DenseNet-BC's pre-activation (BN before each conv) is kept, because the
deploy path runs it: a batch norm after a conv folds into it (``tinyevo.hardware.folding``), and
one that cannot fold (here the BN of each layer and transition, which reads a concat, and the final
BN) is exported as a 1x1 depthwise convolution, a per-channel scale and offset, with the relu
fused into it (``tinyevo.deploy.fold``; the cost model counts it so: 2 parameters per channel and
its int8 weight, int32 bias and quantization bytes in flash, no MACs). The parameter count is
therefore DenseNet-BC's exactly: 769,162 for L=100, k=12 on CIFAR-10 (the paper's 0.8M;
tests/test_densenet.py counts it by hand). The post-activation ordering of MCU ports
(conv-BN-relu, every BN folded) is not offered: it is another network, with 2k instead of 2C BN
parameters per layer.
"""
from __future__ import annotations

import re

import numpy as np

from tinyevo.arch import Architecture, GraphBuilder
from tinyevo.errors import InvalidArchitecture, TinyevoError
from tinyevo.spaces.base import SPACES, Genome, SearchSpace, redraw_gene

COMPRESSION = 0.5  # DenseNet-BC's theta
GENES = ("layers", "growth", "bottleneck", "kernel")
BLOCK_JOIN = "-"
BLOCK_PATTERN = re.compile(r"L(\d+)_g(\d+)_b(\d+)_k(\d+)")


def format_block(layers: int, growth: int, bottleneck: int, kernel: int) -> str:
    """One block's string, e.g. ``L6_g12_b4_k3``."""
    return f"L{layers}_g{growth}_b{bottleneck}_k{kernel}"


def _choices(value, name: str) -> list[int]:
    values = [value] if isinstance(value, int) else list(value) if isinstance(value, (list, tuple)) else None
    if (not values or any(type(v) is not int or v < 1 for v in values)
            or len(set(values)) != len(values)):
        raise TinyevoError(f"densenet option {name} must be a list of distinct positive ints, "
                           f"got {value!r}")
    return values


@SPACES.register("densenet")
class DenseNetSpace(SearchSpace):
    """DenseNet-BC with searched dense blocks. ``blocks`` is D; ``layers``, ``growth``,
    ``bottleneck`` and ``kernels`` are each block's choices. Defaults: three blocks (DenseNet's
    CIFAR macro) with MCU-sized choices: 1-6 layers, growth 4-12, bottleneck 1-4 x k, kernel 3 or 5."""

    name = "densenet"

    def __init__(self, input_shape=(32, 32, 3), num_classes: int = 10, blocks: int = 3,
                 layers=(1, 2, 3, 4, 6), growth=(4, 6, 8, 12), bottleneck=(1, 2, 4), kernels=(3, 5)):
        super().__init__(input_shape, num_classes)
        if type(blocks) is not int or blocks < 1:
            raise TinyevoError(f"densenet option blocks must be a positive int, got {blocks!r}")
        if min(self.input_shape[:2]) < 2 ** (blocks - 1):
            raise TinyevoError(f"densenet: {blocks} blocks halve the input {blocks - 1} times, so "
                               f"its sides need at least {2 ** (blocks - 1)} pixels, got "
                               f"{self.input_shape[0]}x{self.input_shape[1]}; use fewer blocks")
        self.blocks = blocks
        self.choices = {"layers": _choices(layers, "layers"), "growth": _choices(growth, "growth"),
                        "bottleneck": _choices(bottleneck, "bottleneck"),
                        "kernel": _choices(kernels, "kernels")}

    def options(self) -> dict:
        c = self.choices
        return {**super().options(), "blocks": self.blocks, "layers": c["layers"],
                "growth": c["growth"], "bottleneck": c["bottleneck"], "kernels": c["kernel"]}

    # --- genomes -------------------------------------------------------------------------------
    def block_genes(self, genome: Genome) -> list[tuple[int, int, int, int]]:
        """(layers, growth, bottleneck, kernel) of each block; raises InvalidArchitecture unless
        ``genome`` is a valid genome."""
        if not isinstance(genome, list) or len(genome) != self.blocks:
            raise InvalidArchitecture(f"a densenet genome is a list of {self.blocks} block strings "
                                      f"(e.g. {self.smallest()[0]!r}), got {genome!r:.80}")
        return [self._parse_block(text, b) for b, text in enumerate(genome)]

    def _parse_block(self, text, block: int) -> tuple[int, int, int, int]:
        match = BLOCK_PATTERN.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidArchitecture(f"densenet block {block + 1}: {text!r:.60} is not a block "
                                      f"string; write L<layers>_g<growth>_b<bottleneck>_k<kernel>, "
                                      f"e.g. 'L6_g12_b4_k3'")
        genes = tuple(int(v) for v in match.groups())
        for gene, value in zip(GENES, genes):
            if value not in self.choices[gene]:
                raise InvalidArchitecture(f"densenet block {block + 1}: {gene} {value} is not one "
                                          f"of this space's choices {self.choices[gene]}")
        return genes

    def describe(self, genome: Genome) -> str:
        return BLOCK_JOIN.join(format_block(*genes) for genes in self.block_genes(genome))

    def parse(self, text: str) -> Genome:
        """The genome of a ``describe`` string such as ``L6_g12_b4_k3-L12_g12_b4_k3``."""
        if not isinstance(text, str):
            raise InvalidArchitecture(f"a densenet genome string is text, got {text!r:.80}")
        genome = text.strip().split(BLOCK_JOIN)
        self.block_genes(genome)
        return genome

    def smallest(self) -> list[Genome]:
        """Every gene at its smallest choice: the fewest, thinnest layers."""
        return [[format_block(*(min(self.choices[g]) for g in GENES))] * self.blocks]

    # --- the fixed-length encoding -------------------------------------------------------------
    def dimensions(self) -> list[tuple[str, list]]:
        return [(f"block{b + 1}_{gene}", list(self.choices[gene]))
                for b in range(self.blocks) for gene in GENES]

    def to_vector(self, genome: Genome) -> list[int]:
        return [self.choices[gene].index(value)
                for genes in self.block_genes(genome) for gene, value in zip(GENES, genes)]

    def from_vector(self, vector: list[int]) -> Genome:
        dims = self.dimensions()
        if (not isinstance(vector, (list, tuple)) or len(vector) != len(dims)
                or any(not 0 <= int(i) < len(choices) for i, (_, choices) in zip(vector, dims))):
            raise InvalidArchitecture(f"a densenet vector has {len(dims)} genes, each an index "
                                      f"into its choices, got {vector!r:.80}")
        values = [choices[int(i)] for i, (_, choices) in zip(vector, dims)]
        return [format_block(*values[4 * b:4 * b + 4]) for b in range(self.blocks)]

    # --- sampling and variation ----------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Genome:
        """Every gene uniformly from its choices."""
        return self.from_vector([int(rng.integers(len(choices))) for _, choices in self.dimensions()])

    def _mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """One gene of one block re-drawn among its other choices (a gene with one choice cannot
        change: ``mutate`` retries)."""
        vector = self.to_vector(genome)
        dims = self.dimensions()
        gene = int(rng.integers(len(vector)))
        return self.from_vector(redraw_gene(vector, dims, gene, rng))

    def _crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        """Uniform crossover: each gene from either parent."""
        va, vb = self.to_vector(a), self.to_vector(b)
        return self.from_vector([y if rng.random() < 0.5 else x for x, y in zip(va, vb)])

    # --- decoding ------------------------------------------------------------------------------
    def decode(self, genome: Genome) -> Architecture:
        blocks = self.block_genes(genome)
        g = GraphBuilder(self.input_shape, name="densenet")
        x = g.conv2d(g.input, 2 * blocks[0][1], 3, bias=False)
        for index, (layers, growth, bottleneck, kernel) in enumerate(blocks):
            if index:
                x = _transition(g, x)
            for _ in range(layers):
                x = _dense_layer(g, x, growth, bottleneck, kernel)
        x = g.relu(g.batch_norm(x))
        return g.build(g.dense(g.global_avg_pool(x), self.num_classes),
                       meta={"space": self.name, "genome": self.describe(genome)})


def _dense_layer(g: GraphBuilder, x: str, growth: int, bottleneck: int, kernel: int) -> str:
    """BN-relu-1x1 conv to bottleneck*growth channels, BN-relu-kxk conv to growth channels, the
    result concatenated to the running map ``x``."""
    y = g.conv2d(g.relu(g.batch_norm(x)), bottleneck * growth, 1, bias=False)
    y = g.conv2d(g.relu(g.batch_norm(y)), growth, kernel, bias=False)
    return g.concat(x, y)


def _transition(g: GraphBuilder, x: str) -> str:
    """BN-relu-1x1 conv to floor(0.5 C) channels, 2x2 average pooling with stride 2."""
    channels = int(g.shapes[x][2] * COMPRESSION)  # C >= 2: the stem alone has 2k
    y = g.conv2d(g.relu(g.batch_norm(x)), channels, 1, bias=False)
    return g.avg_pool(y, 2, 2, padding="valid")
