"""The ``tcn`` space: temporal convolutional networks over 1-D sequences (raw signals or features).

The generic TCN of Bai, Kolter & Koltun 2018 ("An Empirical Evaluation of Generic Convolutional
and Recurrent Networks for Sequence Modeling", github.com/locuslab/TCN), for classification:

- a chain of N blocks (N searched); block i has a kernel k, a dilation d, C channels and whether it
  is residual (each searched per block), and an optional max pooling by p after it (searched);
- a block is two dilated convolutions of kernel k, dilation d, C channels (no bias), each followed
  by batch norm, the first by relu; a residual block adds its input (through a 1x1 convolution
  with bias where the channels change: Bai et al.'s ``downsample``) and then applies relu, a plain
  block applies relu to the second convolution directly;
- global average pooling over time and a dense classifier.

A sequence of T steps with C features is a (1, T, C) map, height 1 (the IR's 1-D layout; MNIST-1D
is (1, 40, 1)), and a convolution is 1 x k with dilation (1, d). Differences from Bai et al.: the
padding is 'same' (centred, TensorFlow's rule), not causal -- the classifier pools the whole
sequence, so no step has to wait for its future -- and batch norm replaces weight norm and
dropout, since batch norm folds into the int8 convolutions at export. The receptive field of a
block is 2 (k - 1) d steps more than its input's, times the product of the poolings before it;
``receptive_field`` computes it, tests/test_kws_tcn.py checks it by hand and with PyTorch.

A pooling gene on a sequence already shorter than its window leaves the sequence as it is (the
genome stays valid; the network does not change). The genome is a fixed-length object with a
count gene (``tinyevo.spaces.slots``)::

    {"blocks": 2, "kernel": [3, 5, 3], "dilation": [1, 2, 1], "channels": [16, 32, 8],
     "residual": [true, false, false], "pool": [1, 2, 1]}

and reads ``k3d1c16r-k5d2c32p2`` in logs (``r``: residual; ``p2``: pooled by 2 after the block).

With ``frontend="search"`` (or an object of genes to choices) and ``frontend_base`` (the data's
rate and clip length), the genome also carries front-end genes (``tinyevo.spaces.frontend_genes``)
and the network reads that front-end's features of the raw clips as a (1, frames, coefficients)
sequence: one step per frame, the coefficients as its features.
"""
from __future__ import annotations

import re

from tinyevo.arch import Architecture, GraphBuilder
from tinyevo.errors import InvalidArchitecture, TinyevoError
from tinyevo.spaces.base import SPACES, Genome
from tinyevo.spaces.frontend_genes import FrontEndGenes
from tinyevo.spaces.slots import SlottedSpace, int_choices

BLOCK = re.compile(r"k(\d+)d(\d+)c(\d+)(r?)(?:p(\d+))?")
NO_BLOCKS = "gap"  # the string of a genome with no block: pooling and the classifier alone


@SPACES.register("tcn")
class TcnSpace(SlottedSpace):
    """Temporal convolutional networks (Bai et al. 2018) over (1, T, C) sequences: N blocks of two
    dilated convolutions, each block's kernel, dilation, channels, residual and pooling searched."""

    name = "tcn"
    inputs = "sequence"

    def __init__(self, input_shape=(1, 40, 1), num_classes: int = 10, blocks=(1, 2, 3, 4, 5, 6),
                 kernels=(3, 5, 7), dilations=(1, 2, 4, 8), channels=(8, 16, 24, 32, 48, 64),
                 residual=(False, True), pools=(1, 2), frontend=None, frontend_base=None):
        super().__init__(input_shape, num_classes)
        self.frontend_genes = FrontEndGenes(frontend, frontend_base, "sequence", "tcn")
        if self.input_shape[0] != 1 and not self.searches_frontend:
            raise TinyevoError(f"tcn convolves 1-D sequences, shape (1, length, features); got "
                               f"input_shape {list(self.input_shape)}: put the features in the "
                               f"last axis, or use the kws space for 2-D (time x coefficient) maps")
        residual = [residual] if isinstance(residual, bool) else list(residual)
        if not residual or any(type(r) is not bool for r in residual) or len(set(residual)) != len(residual):
            raise TinyevoError(f"tcn option residual must be a list of distinct booleans, got {residual!r}")
        self.head_genes = self.frontend_genes.head_genes()
        self.block_counts = int_choices(blocks, "blocks", "tcn", least=0)
        self.slot_genes = [("kernel", int_choices(kernels, "kernels", "tcn")),
                           ("dilation", int_choices(dilations, "dilations", "tcn")),
                           ("channels", int_choices(channels, "channels", "tcn")),
                           ("residual", residual), ("pool", int_choices(pools, "pools", "tcn"))]

    def options(self) -> dict:
        kernels, dilations, channels, residual, pools = (choices for _, choices in self.slot_genes)
        return {**super().options(), "blocks": self.block_counts, "kernels": kernels,
                "dilations": dilations, "channels": channels, "residual": residual, "pools": pools,
                **self.frontend_genes.options()}

    def smallest(self) -> list[Genome]:
        """The fewest blocks, the smallest kernel, dilation and channels, no residual (no 1x1
        shortcut) where the space allows, and the coarsest pooling (with front-end genes, that
        network behind each front-end of least total cost: ``cheapest_frontends``)."""
        kernels, dilations, channels, residual, pools = (choices for _, choices in self.slot_genes)
        n = min(self.block_counts)
        network = self.genome(n, kernel=[min(kernels)] * n, dilation=[min(dilations)] * n,
                              channels=[min(channels)] * n, residual=[min(residual)] * n,
                              pool=[max(pools)] * n)
        return self.cheapest_frontends(network) if self.searches_frontend else [network]

    # --- readable strings ----------------------------------------------------------------------
    def describe(self, genome: Genome) -> str:
        parts = [f"k{b['kernel']}d{b['dilation']}c{b['channels']}{'r' if b['residual'] else ''}"
                 f"{'p%d' % b['pool'] if b['pool'] > 1 else ''}" for b in self.active_blocks(genome)]
        return self.frontend_genes.describe(genome, "-".join(parts) or NO_BLOCKS)

    def parse(self, text: str) -> Genome:
        """The genome of a ``describe`` string (inactive slots at their first choice)."""
        frontend, text = self.frontend_genes.parse(text.strip() if isinstance(text, str) else text)
        parts = [] if text == NO_BLOCKS else text.strip().split("-") if isinstance(text, str) else [""]
        blocks = [BLOCK.fullmatch(p) for p in parts]
        if not all(blocks) or len(blocks) > self.max_blocks:
            raise InvalidArchitecture(f"{text!r:.60} is not a tcn genome string; write up to "
                                      f"{self.max_blocks} blocks k<kernel>d<dilation>c<channels>, "
                                      f"then r if residual and p<n> if pooled, joined by '-', "
                                      f"e.g. 'k3d1c16r-k5d2c32p2'")
        values = [m.groups() for m in blocks]
        genome = self.genome(len(values), kernel=[int(v[0]) for v in values],
                             dilation=[int(v[1]) for v in values], channels=[int(v[2]) for v in values],
                             residual=[v[3] == "r" for v in values],
                             pool=[int(v[4] or 1) for v in values], **frontend)
        self.check(genome)
        return genome

    def receptive_field(self, genome: Genome) -> int:
        """The span of input steps one output step of the last block sees: 1 + sum over blocks of
        2 (k - 1) d j, plus (p - 1) j for each pooling, j the product of the poolings before. A
        dilation wider than what each tap sees leaves steps inside the span unseen (gridding)."""
        field, jump, length = 1, 1, self.frontend_genes.input_shape(genome, self.input_shape)[1]
        for block in self.active_blocks(genome):
            field += 2 * (block["kernel"] - 1) * block["dilation"] * jump
            if 1 < block["pool"] <= length:
                field += (block["pool"] - 1) * jump
                jump, length = jump * block["pool"], length // block["pool"]
        return field

    # --- decoding ------------------------------------------------------------------------------
    def decode(self, genome: Genome) -> Architecture:
        blocks = self.active_blocks(genome)
        g = GraphBuilder(self.frontend_genes.input_shape(genome, self.input_shape), name="tcn")
        x = g.input
        for block in blocks:
            x = _temporal_block(g, x, block["kernel"], block["dilation"], block["channels"],
                                block["residual"])
            if 1 < block["pool"] <= g.shapes[x][1]:
                x = g.max_pool(x, kernel=(1, block["pool"]), stride=(1, block["pool"]))
        return g.build(g.dense(g.global_avg_pool(x), self.num_classes),
                       meta={"space": self.name, "genome": self.describe(genome)},
                       frontend=self.frontend_genes.record(genome))


def _temporal_block(g: GraphBuilder, x: str, kernel: int, dilation: int, channels: int,
                    residual: bool) -> str:
    """Two 1 x k convolutions of dilation d, batch norm after each, relu after the first; then the
    residual sum (the input through a 1x1 conv with bias where the channels change) and relu."""
    y = g.conv2d(x, channels, kernel=(1, kernel), dilation=(1, dilation), bias=False)
    y = g.conv2d(g.relu(g.batch_norm(y)), channels, kernel=(1, kernel), dilation=(1, dilation), bias=False)
    y = g.batch_norm(y)
    if residual:
        shortcut = x if g.shapes[x][2] == channels else g.conv2d(x, channels, kernel=1, bias=True)
        y = g.add(y, shortcut)
    return g.relu(y)
