"""The ``mbv2`` space: MCUNet's TinyNAS space of MobileNetV2 blocks (Lin et al. 2020, MCUNet).

The layout is that of MCUNet's ``OFAProxylessNASNets`` with ``base_stage_width='google'``
(github.com/mit-han-lab/mcunet, ``tinynas/elastic_nn/networks/ofa_proxyless.py``), itself the
Once-for-All MobileNetV2 space (Cai et al. 2020):

- a 3x3 stride-2 stem of 32 channels, then a fixed first block (depthwise 3x3, no expansion, 16
  channels, no residual);
- six stages of inverted-residual blocks with 24, 32, 64, 96, 160 and 320 channels and strides
  2, 2, 2, 1, 2, 1; the first five hold 2, 3 or 4 blocks (``depth``), the last one block;
- each searchable block has a kernel size in {3, 5, 7} and an expand ratio in {3, 4, 6}; a block
  has a residual when its stride is 1 and its input and output channels agree;
- a 1x1 "feature mix" convolution to 1280 channels (scaled only for widths above 1.0), global
  average pooling and a dense classifier.

Every channel count is ``make_divisible(base * width, 8)``. MCUNet scales the whole space by an
input resolution R in {48, 64, ..., 224} and a width multiplier W in {0.2, 0.3, ..., 1.0}; the
defaults here keep its steps and stop at R = 160, since MCU-sized SRAM rarely fits more. The
original MobileNetV2 is the point R=224, W=1.0, depth (2, 3, 4, 3, 3), all blocks k3 e6.

A genome is OFA's fixed-length encoding with readable names, one kernel and expand ratio per
block slot (21), whether the slot is active or not::

    {"resolution": 96, "width": 0.5, "depth": [2, 3, 4, 2, 3],
     "kernel": [3, 5, ...], "expand": [6, 3, ...]}

and reads ``r96-w0.5-s1:k3e6,k5e3|s2:...`` in logs (active blocks only).
"""
from __future__ import annotations

import numpy as np

from tinyevo.arch import Architecture, GraphBuilder
from tinyevo.errors import InvalidArchitecture
from tinyevo.spaces.base import SPACES, Genome, SearchSpace, redraw_gene

STEM_CHANNELS, FIRST_BLOCK_CHANNELS, MIX_CHANNELS = 32, 16, 1280
STAGE_CHANNELS = (24, 32, 64, 96, 160, 320)
STAGE_STRIDES = (2, 2, 2, 1, 2, 1)
MAX_DEPTHS = (4, 4, 4, 4, 4, 1)  # the last stage always holds one block
SEARCHED_STAGES = 5
BLOCK_SLOTS = sum(MAX_DEPTHS)
GENOME_KEYS = ("resolution", "width", "depth", "kernel", "expand")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round to the nearest multiple of ``divisor``, never down by more than 10% (TF/OFA rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def stage_slots(stage: int) -> range:
    """Flat indices, into the ``kernel``/``expand`` lists, of the block slots of ``stage``."""
    start = sum(MAX_DEPTHS[:stage])
    return range(start, start + MAX_DEPTHS[stage])


@SPACES.register("mbv2")
class MobileNetV2Space(SearchSpace):
    """Fixed-length MobileNetV2 block space. ``input_shape`` gives the input channels; each genome
    picks its own square resolution (the data loader resizes to it)."""

    name = "mbv2"

    def __init__(self, input_shape=(160, 160, 3), num_classes: int = 10,
                 resolutions=(48, 64, 80, 96, 112, 128, 144, 160),
                 widths=(0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), depths=(2, 3, 4),
                 kernels=(3, 5, 7), expands=(3, 4, 6), feature_mix_layer: bool = True):
        super().__init__(input_shape, num_classes)
        self.resolutions, self.widths = [int(r) for r in resolutions], [float(w) for w in widths]
        self.depths, self.kernels = [int(d) for d in depths], [int(k) for k in kernels]
        self.expands, self.feature_mix_layer = [int(e) for e in expands], bool(feature_mix_layer)
        if not self.depths or max(self.depths) > MAX_DEPTHS[0] or min(self.depths) < 1:
            raise InvalidArchitecture(f"mbv2 depths must lie in 1..{MAX_DEPTHS[0]}, got {depths}")

    def options(self) -> dict:
        return {**super().options(), "resolutions": self.resolutions, "widths": self.widths,
                "depths": self.depths, "kernels": self.kernels, "expands": self.expands,
                "feature_mix_layer": self.feature_mix_layer}

    # --- the fixed-length encoding -------------------------------------------------------------
    def dimensions(self) -> list[tuple[str, list]]:
        dims = [("resolution", self.resolutions), ("width", self.widths)]
        dims += [(f"depth_{s + 1}", self.depths) for s in range(SEARCHED_STAGES)]
        for gene, choices in (("kernel", self.kernels), ("expand", self.expands)):
            dims += [(f"{gene}_{s + 1}_{b + 1}", choices)
                     for s, depth in enumerate(MAX_DEPTHS) for b in range(depth)]
        return dims

    def to_vector(self, genome: Genome) -> list[int]:
        self.check(genome)
        values = [genome["resolution"], genome["width"], *genome["depth"], *genome["kernel"],
                  *genome["expand"]]
        return [choices.index(v) for v, (_, choices) in zip(values, self.dimensions())]

    def from_vector(self, vector: list[int]) -> Genome:
        dims = self.dimensions()
        if len(vector) != len(dims):
            raise InvalidArchitecture(f"an mbv2 vector has {len(dims)} genes, got {len(vector)}")
        values = [choices[int(i)] for i, (_, choices) in zip(vector, dims)]
        depth_end = 2 + SEARCHED_STAGES
        return {"resolution": values[0], "width": values[1], "depth": values[2:depth_end],
                "kernel": values[depth_end:depth_end + BLOCK_SLOTS],
                "expand": values[depth_end + BLOCK_SLOTS:]}

    def check(self, genome: Genome) -> None:
        """Raise InvalidArchitecture unless every gene is one of this space's choices."""
        if not isinstance(genome, dict) or set(genome) != set(GENOME_KEYS):
            raise InvalidArchitecture(f"an mbv2 genome is an object with keys {list(GENOME_KEYS)}")
        lists = {"depth": SEARCHED_STAGES, "kernel": BLOCK_SLOTS, "expand": BLOCK_SLOTS}
        for key, length in lists.items():
            if not isinstance(genome[key], list) or len(genome[key]) != length:
                raise InvalidArchitecture(f"mbv2 genome: {key!r} must be a list of {length} values")
        values = [genome["resolution"], genome["width"], *genome["depth"], *genome["kernel"],
                  *genome["expand"]]
        for value, (name, choices) in zip(values, self.dimensions()):
            if isinstance(value, bool) or value not in choices:
                raise InvalidArchitecture(f"mbv2 genome: {name}={value!r} is not one of {choices}")

    def active_genes(self, genome: Genome) -> list[int]:
        """Vector positions that change the network: inactive block slots are left out."""
        first_kernel = 2 + SEARCHED_STAGES
        active = list(range(first_kernel))
        for slot in self.active_slots(genome):
            active += [first_kernel + slot, first_kernel + BLOCK_SLOTS + slot]
        return active

    @staticmethod
    def active_slots(genome: Genome) -> list[int]:
        depths = [*genome["depth"], MAX_DEPTHS[-1]]
        return [slot for stage, depth in enumerate(depths) for slot in stage_slots(stage)[:depth]]

    # --- sampling and variation ----------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Genome:
        return self.from_vector([int(rng.integers(len(c))) for _, c in self.dimensions()])

    def smallest(self) -> list[Genome]:
        return [self.from_vector([0] * len(self.dimensions()))]

    def _mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """Resample one active gene to another of its choices."""
        vector, dims = self.to_vector(genome), self.dimensions()
        active = self.active_genes(genome)
        gene = active[int(rng.integers(len(active)))]
        return self.from_vector(redraw_gene(vector, dims, gene, rng))

    def _crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        """Uniform crossover of the choice vectors (as in OFA's and MCUNet's evolution)."""
        va, vb = self.to_vector(a), self.to_vector(b)
        take_b = rng.random(len(va)) < 0.5
        return self.from_vector([y if t else x for x, y, t in zip(va, vb, take_b)])

    # --- decoding ------------------------------------------------------------------------------
    def decode(self, genome: Genome) -> Architecture:
        self.check(genome)
        width, resolution = genome["width"], genome["resolution"]
        g = GraphBuilder((resolution, resolution, self.input_shape[2]), name="mbv2")
        stem = make_divisible(STEM_CHANNELS * width)
        x = g.conv_bn_act(g.input, stem, 3, 2, act="relu6")
        x = g.conv_bn_act(x, stem, 3, 1, groups=stem, act="relu6")  # first block: no expansion,
        x = g.conv_bn_act(x, make_divisible(FIRST_BLOCK_CHANNELS * width), 1, act=None)  # no skip
        depths = [*genome["depth"], MAX_DEPTHS[-1]]
        for stage, (channels, stride) in enumerate(zip(STAGE_CHANNELS, STAGE_STRIDES)):
            for i, slot in enumerate(stage_slots(stage)[:depths[stage]]):
                x = g.inverted_residual(x, make_divisible(channels * width), genome["kernel"][slot],
                                        stride if i == 0 else 1, genome["expand"][slot])
        if self.feature_mix_layer:
            mix = make_divisible(MIX_CHANNELS * width) if width > 1.0 else MIX_CHANNELS
            x = g.conv_bn_act(x, mix, 1, act="relu6")
        return g.build(g.dense(g.global_avg_pool(x), self.num_classes),
                       meta={"space": self.name, "genome": self.describe(genome)})

    def describe(self, genome: Genome) -> str:
        depths = [*genome["depth"], MAX_DEPTHS[-1]]
        stages = []
        for stage, depth in enumerate(depths):
            blocks = [f"k{genome['kernel'][s]}e{genome['expand'][s]}"
                      for s in stage_slots(stage)[:depth]]
            stages.append(f"s{stage + 1}:" + ",".join(blocks))
        return f"r{genome['resolution']}-w{genome['width']:g}-" + "|".join(stages)
