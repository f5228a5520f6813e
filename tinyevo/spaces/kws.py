"""The ``kws`` space: depthwise-separable CNNs over (time x coefficient) maps for keyword spotting.

The DS-CNN family of "Hello Edge" (Zhang et al. 2017), MLPerf Tiny's keyword-spotting reference
(Banbury et al. 2021, github.com/mlcommons/tiny, ``benchmark/training/keyword_spotting``) and
MicroNets-KWS (Banbury et al. 2021), whose sizes are searched here:

- a first convolution (kernel, stride and channels searched; 'same' padding, no bias) with batch
  norm and relu, over the MFCC or log-mel map (time rows, coefficient columns, one channel);
- N depthwise-separable blocks (N searched): a depthwise kxk convolution (k searched), batch norm,
  relu, a pointwise 1x1 convolution to C channels (C searched per block), batch norm, relu;
- global average pooling, flatten and a dense classifier.

Convolutions carry no bias: the batch norm after each has the offset (MLPerf's Keras model has
both, one bias per conv more, which folding merges into the batch norm anyway). MLPerf Tiny's
DS-CNN is the genome ``c64_k10x4_s2x2-ds64_k3-ds64_k3-ds64_k3-ds64_k3`` on a 49x10x1 map (its
graph is ``tinyevo.zoo.ds_cnn``'s, node for node; tests/test_kws_tcn.py counts its parameters and
MACs by hand). Its dropout layers are training-only and left out.

The genome is a fixed-length object with a count gene (``tinyevo.spaces.slots``)::

    {"stem_kernel": [10, 4], "stem_stride": [2, 2], "stem_channels": 64, "blocks": 4,
     "channels": [64, 64, 64, 64, 8, 8], "kernel": [3, 3, 3, 3, 3, 3]}

and reads ``c64_k10x4_s2x2-ds64_k3-ds64_k3-ds64_k3-ds64_k3`` in logs (active blocks only; ``parse``
reads it back). Defaults: a 49x10x1 input (MLPerf Tiny's 49 frames of 10 MFCCs) and 12 classes.

With ``frontend="search"`` (or an object of genes to choices) and ``frontend_base`` (the data's
rate and clip length), the genome also carries front-end genes (``tinyevo.spaces.frontend_genes``)
and the network reads that front-end's (frames, coefficients, 1) map of the raw clips.
"""
from __future__ import annotations

import re

from tinyevo.arch import Architecture, GraphBuilder
from tinyevo.errors import InvalidArchitecture
from tinyevo.spaces.base import SPACES, Genome
from tinyevo.spaces.frontend_genes import FrontEndGenes
from tinyevo.spaces.slots import SlottedSpace, int_choices, pair_choices

STEM = re.compile(r"c(\d+)_k(\d+)x(\d+)_s(\d+)x(\d+)")
BLOCK = re.compile(r"ds(\d+)_k(\d+)")


@SPACES.register("kws")
class KwsSpace(SlottedSpace):
    """DS-CNN keyword-spotting networks (MLPerf Tiny, MicroNets-KWS): a searched first conv, N
    depthwise-separable blocks of searched channels and kernels, pooling and a dense layer."""

    name = "kws"
    inputs = "features"

    def __init__(self, input_shape=(49, 10, 1), num_classes: int = 12,
                 stem_kernels=((3, 3), (5, 3), (10, 4)), stem_strides=((1, 1), (2, 1), (2, 2)),
                 stem_channels=(16, 32, 48, 64), blocks=(1, 2, 3, 4, 5), channels=(8, 16, 32, 48, 64),
                 kernels=(3, 5), frontend=None, frontend_base=None):
        super().__init__(input_shape, num_classes)
        self.frontend_genes = FrontEndGenes(frontend, frontend_base, "map", "kws")
        self.head_genes = [("stem_kernel", pair_choices(stem_kernels, "stem_kernels", "kws")),
                           ("stem_stride", pair_choices(stem_strides, "stem_strides", "kws")),
                           ("stem_channels", int_choices(stem_channels, "stem_channels", "kws"))]
        self.head_genes += self.frontend_genes.head_genes()
        self.block_counts = int_choices(blocks, "blocks", "kws", least=0)
        self.slot_genes = [("channels", int_choices(channels, "channels", "kws")),
                           ("kernel", int_choices(kernels, "kernels", "kws"))]

    def options(self) -> dict:
        (_, kernels), (_, strides), (_, stem) = self.head_genes[:3]
        (_, channels), (_, block_kernels) = self.slot_genes
        return {**super().options(), "stem_kernels": kernels, "stem_strides": strides,
                "stem_channels": stem, "blocks": self.block_counts, "channels": channels,
                "kernels": block_kernels, **self.frontend_genes.options()}

    def smallest(self) -> list[Genome]:
        """The fewest blocks, the thinnest channels, the smallest kernels and the largest stride (and
        with front-end genes, that network behind each front-end of least total cost, network +
        front-end: ``cheapest_frontends``)."""
        (_, kernels), (_, strides), (_, stem) = self.head_genes[:3]
        (_, channels), (_, block_kernels) = self.slot_genes
        fewest = min(self.block_counts)
        network = self.genome(fewest, stem_kernel=min(kernels, key=lambda k: (k[0] * k[1], k)),
                               stem_stride=max(strides, key=lambda s: (s[0] * s[1], s)),
                               stem_channels=min(stem), channels=[min(channels)] * fewest,
                               kernel=[min(block_kernels)] * fewest)
        return self.cheapest_frontends(network) if self.searches_frontend else [network]

    # --- readable strings ----------------------------------------------------------------------
    def describe(self, genome: Genome) -> str:
        self.check(genome)
        (kh, kw), (sh, sw) = genome["stem_kernel"], genome["stem_stride"]
        parts = [f"c{genome['stem_channels']}_k{kh}x{kw}_s{sh}x{sw}"]
        parts += [f"ds{b['channels']}_k{b['kernel']}" for b in self.active_blocks(genome)]
        return self.frontend_genes.describe(genome, "-".join(parts))

    def parse(self, text: str) -> Genome:
        """The genome of a ``describe`` string (inactive slots at their first choice)."""
        frontend, text = self.frontend_genes.parse(text.strip() if isinstance(text, str) else text)
        parts = text.strip().split("-") if isinstance(text, str) else [None]
        stem = STEM.fullmatch(parts[0]) if parts[0] is not None else None
        blocks = [BLOCK.fullmatch(p) for p in parts[1:]]
        if stem is None or not all(blocks) or len(blocks) > self.max_blocks:
            raise InvalidArchitecture(f"{text!r:.60} is not a kws genome string; write "
                                      f"c<channels>_k<h>x<w>_s<h>x<w> then up to {self.max_blocks} "
                                      f"ds<channels>_k<kernel>, joined by '-', e.g. "
                                      f"'c64_k10x4_s2x2-ds64_k3'")
        c, kh, kw, sh, sw = (int(v) for v in stem.groups())
        genome = self.genome(len(blocks), stem_kernel=[kh, kw], stem_stride=[sh, sw], stem_channels=c,
                             channels=[int(m.group(1)) for m in blocks],
                             kernel=[int(m.group(2)) for m in blocks], **frontend)
        self.check(genome)
        return genome

    # --- decoding ------------------------------------------------------------------------------
    def decode(self, genome: Genome) -> Architecture:
        self.check(genome)
        g = GraphBuilder(self.frontend_genes.input_shape(genome, self.input_shape), name="kws")
        x = g.conv_bn_act(g.input, genome["stem_channels"], kernel=tuple(genome["stem_kernel"]),
                          stride=tuple(genome["stem_stride"]))
        for block in self.active_blocks(genome):
            x = g.depthwise_separable(x, block["channels"], kernel=block["kernel"])
        return g.build(g.dense(g.flatten(g.global_avg_pool(x)), self.num_classes),
                       meta={"space": self.name, "genome": self.describe(genome)},
                       frontend=self.frontend_genes.record(genome))
