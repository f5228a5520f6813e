"""The ``blocks`` space: variable-length sequences of blocks, as in CNN-GA (Y. Sun, B. Xue, M. Zhang,
G. Yen, J. Lv, "Automatically designing CNN architectures using the genetic algorithm for image
classification", IEEE Transactions on Cybernetics 2020) and its block-based sibling AE-CNN.

A network is a sequence of units, then global average pooling and a dense classifier (implied):

- ``conv``: ConvBlock, a convolution (``channels``, ``kernel``, stride 1) + batch norm + relu;
- ``res``: ResBlock (He et al. 2016, CNN-GA's skip layer): two 3x3 conv + batch norm (the first with
  ``stride`` and relu), plus a shortcut, then relu; the shortcut is the input itself, or a 1x1
  projection conv + batch norm where the channels or the stride change;
- ``dense``: DenseBlock (Huang et al. 2017): ``layers`` layers of ``growth`` channels, each a 3x3
  conv + batch norm + relu of the concat of the block's input and every earlier layer's output;
  the block's output is that concat too (input channels + layers * growth). The running concat is
  built as a chain of two-input concats (each holds the one before plus the newest layer);
- ``pool``: a 2x2 max or average pooling unit, stride 2, 'same' padding (CNN-GA's pooling layer).

Pooling units and stride-2 ResBlocks halve the feature map (rounding up); one on a map already
1x1 is invalid (it could not reduce it), so a 12x12 input takes at most four of them. A genome
holds at most ``max_units`` units; one with none is the classifier alone (the trivial
initialization of Real et al. 2017, ``smallest``).

A genome is a JSON list of units, e.g.::

    [{"type": "res", "channels": 16, "stride": 1}, {"type": "pool", "pool": "max"},
     {"type": "dense", "layers": 3, "growth": 8}, {"type": "conv", "channels": 32, "kernel": 3}]

and reads ``res_c16-pool_max-dense_k3_g8-conv_c32_k3`` in logs (``describe``/``parse``; a stride-2
ResBlock reads ``res_c16_s2``, the empty genome ``empty``). The key is the architecture's
fingerprint, so genomes of one network (the same units written in another key order, or read
from their string) share it.

Variation as in CNN-GA (``mutation="space"``, ``crossover="space"`` in an evolution config):

- mutation, one of (uniformly among those possible): add a random unit at a random position
  (not beyond ``max_units``), remove the unit at a random position, or modify the parameters of
  the unit at a random position (one field: channels, kernel, stride, layers, growth, or max/avg);
- crossover: CNN-GA's one-point crossover for parents of unequal length. Each parent is cut at a
  point of its own (0 to its length), and the child is the first part of the first parent joined
  to the second part of the second (CNN-GA's first offspring; the second is the same operator
  with the parents swapped), so the child's length may differ from both parents'. A child with
  too many units or reductions is retried (``SearchSpace.crossover``).

``mutation="auto"`` and ``crossover="auto"`` (the defaults of ``evolution`` and ``nsga2``) pick
these too; the encoding has no fixed-length vector, so the vector operators (one_gene, per_gene,
one_point, uniform) do not apply.
"""
from __future__ import annotations

import re

import numpy as np

from tinyevo.arch import Architecture, GraphBuilder
from tinyevo.errors import InvalidArchitecture, TinyevoError
from tinyevo.spaces.base import SPACES, Genome, SearchSpace

FIELDS = {"conv": ("channels", "kernel"), "res": ("channels", "stride"),
          "dense": ("layers", "growth"), "pool": ("pool",)}
POOL_KINDS = ("max", "avg")
UNIT_JOIN, EMPTY = "-", "empty"
TOKEN = re.compile(r"^(?:conv_c(\d+)_k(\d+)|res_c(\d+)(?:_s(\d+))?|dense_k(\d+)_g(\d+)|pool_(max|avg))$")
EXAMPLE = "res_c16-pool_max-dense_k3_g8-conv_c32_k3"


# --- checking genomes --------------------------------------------------------------------------
def reduces(unit: dict) -> bool:
    """Whether the unit halves the feature map (a pooling unit or a stride-2 ResBlock)."""
    return unit["type"] == "pool" or (unit["type"] == "res" and unit["stride"] == 2)


def halved(size: tuple[int, int]) -> tuple[int, int]:
    """The height and width after a 'same' 2x2 pool or a stride-2 'same' conv."""
    return (-(-size[0] // 2), -(-size[1] // 2))


def check_unit(unit, index: int) -> dict:
    """Validate one unit's type and fields; raises InvalidArchitecture naming what is wrong."""
    if not isinstance(unit, dict) or unit.get("type") not in FIELDS:
        raise InvalidArchitecture(f"blocks unit #{index}: expected an object with type conv, res, "
                                  f"dense or pool, got {unit!r:.60}")
    kind = unit["type"]
    if set(unit) != {"type", *FIELDS[kind]}:
        raise InvalidArchitecture(f"blocks unit #{index} ({kind}): fields must be "
                                  f"{['type', *FIELDS[kind]]}, got {sorted(unit)}")
    if kind == "pool":
        if unit["pool"] not in POOL_KINDS:
            raise InvalidArchitecture(f"blocks unit #{index}: pool must be 'max' or 'avg', "
                                      f"got {unit['pool']!r:.20}")
        return unit
    for name in FIELDS[kind]:
        value = unit[name]
        if type(value) is not int or value < 1:
            raise InvalidArchitecture(f"blocks unit #{index} ({kind}): {name} must be a positive "
                                      f"int, got {value!r:.20}")
    if kind == "res" and unit["stride"] not in (1, 2):
        raise InvalidArchitecture(f"blocks unit #{index}: stride must be 1 or 2, got {unit['stride']}")
    return unit


def check_units(genome: Genome, input_shape, max_units: int) -> list[dict]:
    """Validate a genome: a list of at most ``max_units`` units, none reducing a 1x1 map."""
    if not isinstance(genome, list):
        raise InvalidArchitecture(f"a blocks genome is a list of unit objects (e.g. the units of "
                                  f"{EXAMPLE!r}), got {genome!r:.80}")
    if len(genome) > max_units:
        raise InvalidArchitecture(f"a blocks genome holds at most {max_units} units (max_units), "
                                  f"got {len(genome)}")
    size = tuple(input_shape[:2])
    for index, unit in enumerate(genome):
        if reduces(check_unit(unit, index)):
            if size == (1, 1):
                raise InvalidArchitecture(f"blocks unit #{index} ({_token(unit)}) would reduce a "
                                          f"1x1 feature map; a {input_shape[0]}x{input_shape[1]} "
                                          f"input takes at most {reductions_allowed(input_shape)} "
                                          f"pooling units and stride-2 ResBlocks")
            size = halved(size)
    return genome


def reductions_allowed(input_shape) -> int:
    """How many halvings take the input's feature map to 1x1."""
    size, count = tuple(input_shape[:2]), 0
    while size != (1, 1):
        size, count = halved(size), count + 1
    return count


# --- the space ---------------------------------------------------------------------------------
def _choices(value, name: str, allowed=None) -> list[int]:
    values = list(value) if isinstance(value, (list, tuple)) else None
    if (not values or any(type(v) is not int or v < 1 for v in values)
            or (allowed is not None and set(values) - set(allowed))):
        within = f" from {sorted(allowed)}" if allowed is not None else ""
        raise TinyevoError(f"blocks option {name} must be a non-empty list of positive ints"
                           f"{within}, got {value!r}")
    return values


@SPACES.register("blocks")
class BlocksSpace(SearchSpace):
    """CNN-GA's block-based variable-length space. The choice lists bound what ``sample`` and the
    mutations pick: ``channels`` (ConvBlock and ResBlock widths), ``kernels`` (ConvBlock),
    ``strides`` (ResBlock; 1 and/or 2), ``layers`` and ``growth`` (DenseBlock); ``max_units`` bounds
    a genome's length and ``max_initial_units`` a sample's. Defaults sized for MCUs at 32x32x3."""

    name = "blocks"
    encoding = "variable"

    def __init__(self, input_shape=(32, 32, 3), num_classes: int = 10, channels=(8, 16, 24, 32),
                 kernels=(1, 3, 5), strides=(1, 2), layers=(2, 3, 4), growth=(4, 8, 12),
                 max_units: int = 8, max_initial_units: int = 4):
        super().__init__(input_shape, num_classes)
        self.channels, self.kernels = _choices(channels, "channels"), _choices(kernels, "kernels")
        self.strides = _choices(strides, "strides", allowed=(1, 2))
        self.layers, self.growth = _choices(layers, "layers"), _choices(growth, "growth")
        if type(max_units) is not int or max_units < 1:
            raise TinyevoError(f"blocks option max_units must be a positive int, got {max_units!r}")
        if type(max_initial_units) is not int or not 1 <= max_initial_units <= max_units:
            raise TinyevoError(f"blocks option max_initial_units must be an int from 1 to max_units "
                               f"({max_units}), got {max_initial_units!r}")
        self.max_units, self.max_initial_units = max_units, max_initial_units

    def options(self) -> dict:
        return {**super().options(), "channels": self.channels, "kernels": self.kernels,
                "strides": self.strides, "layers": self.layers, "growth": self.growth,
                "max_units": self.max_units, "max_initial_units": self.max_initial_units}

    def check(self, genome: Genome) -> list[dict]:
        return check_units(genome, self.input_shape, self.max_units)

    # --- sampling ------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Genome:
        """CNN-GA's initialization: a length from 1 to ``max_initial_units``, then each unit a
        pooling unit (1 in 4, while the map can still be halved) or a conv, res or dense block."""
        length = int(rng.integers(1, self.max_initial_units + 1))
        genome, size = [], tuple(self.input_shape[:2])
        for _ in range(length):
            unit = self.random_unit(rng, can_reduce=size != (1, 1))
            if reduces(unit):
                size = halved(size)
            genome.append(unit)
        return genome

    def random_unit(self, rng: np.random.Generator, can_reduce: bool = True) -> dict:
        if can_reduce and rng.random() < 0.25:
            return {"type": "pool", "pool": _pick(rng, list(POOL_KINDS))}
        kind = _pick(rng, ["conv", "res", "dense"])
        if kind == "conv":
            return {"type": "conv", "channels": _pick(rng, self.channels),
                    "kernel": _pick(rng, self.kernels)}
        if kind == "res":
            strides = self.strides if can_reduce else [1]
            return {"type": "res", "channels": _pick(rng, self.channels), "stride": _pick(rng, strides)}
        return {"type": "dense", "layers": _pick(rng, self.layers), "growth": _pick(rng, self.growth)}

    def smallest(self) -> list[Genome]:
        """No unit: global average pooling and the classifier (Real et al. 2017's trivial start)."""
        return [[]]

    # --- variation -----------------------------------------------------------------------------
    def _mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """CNN-GA's mutation: add, remove or modify one unit, each at a random position."""
        self.check(genome)
        moves = (["add_unit"] if len(genome) < self.max_units else []) + (
            ["remove_unit", "modify_unit"] if genome else [])
        return getattr(self, _pick(rng, moves))(genome, rng)

    def add_unit(self, genome: Genome, rng: np.random.Generator) -> Genome:
        genome.insert(int(rng.integers(0, len(genome) + 1)), self.random_unit(rng))
        return genome

    def remove_unit(self, genome: Genome, rng: np.random.Generator) -> Genome:
        del genome[int(rng.integers(0, len(genome)))]
        return genome

    def modify_unit(self, genome: Genome, rng: np.random.Generator) -> Genome:
        """Change one field of one unit to another of its choices (max <-> avg for a pool)."""
        unit = genome[int(rng.integers(0, len(genome)))]
        field = _pick(rng, list(FIELDS[unit["type"]]))
        options = {"channels": self.channels, "kernel": self.kernels, "stride": self.strides,
                   "layers": self.layers, "growth": self.growth, "pool": list(POOL_KINDS)}[field]
        unit[field] = _pick(rng, [v for v in options if v != unit[field]] or options)
        return genome

    def _crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        """CNN-GA's one-point crossover of unequal-length parents: a cut in each, ``a``'s first
        part then ``b``'s second part."""
        self.check(a)
        self.check(b)
        cut_a, cut_b = int(rng.integers(0, len(a) + 1)), int(rng.integers(0, len(b) + 1))
        return a[:cut_a] + b[cut_b:]

    # --- decoding ------------------------------------------------------------------------------
    def decode(self, genome: Genome) -> Architecture:
        g = GraphBuilder(self.input_shape, name="blocks")
        x = g.input
        for unit in self.check(genome):
            x = BUILDERS[unit["type"]](g, x, unit)
        return g.build(g.dense(g.global_avg_pool(x), self.num_classes),
                       meta={"space": self.name, "genome": self.describe(genome)})

    # --- readable strings ----------------------------------------------------------------------
    def describe(self, genome: Genome) -> str:
        return UNIT_JOIN.join(_token(unit) for unit in self.check(genome)) or EMPTY

    def parse(self, text: str) -> Genome:
        """The genome of a ``describe`` string such as ``res_c16-pool_max-dense_k3_g8-conv_c32_k3``."""
        if not isinstance(text, str):
            raise InvalidArchitecture(f"a blocks genome string is text, got {text!r:.80}")
        text = text.strip()
        genome = [] if text == EMPTY else [_unit(token) for token in text.split(UNIT_JOIN)]
        return self.check(genome)


# --- building the units ------------------------------------------------------------------------
def conv_block(g: GraphBuilder, x: str, unit: dict) -> str:
    return g.conv_bn_act(x, unit["channels"], unit["kernel"])


def res_block(g: GraphBuilder, x: str, unit: dict) -> str:
    """Two 3x3 convs (the first strided) and a shortcut: identity, or a 1x1 projection + BN."""
    channels, stride = unit["channels"], unit["stride"]
    y = g.conv_bn_act(x, channels, 3, stride)
    y = g.conv_bn_act(y, channels, 3, act=None)
    same = stride == 1 and g.shapes[x][2] == channels
    shortcut = x if same else g.conv_bn_act(x, channels, 1, stride, act=None)
    return g.relu(g.add(y, shortcut))


def dense_block(g: GraphBuilder, x: str, unit: dict) -> str:
    """Each layer convolves the running concat (the block's input and all earlier outputs)."""
    for _ in range(unit["layers"]):
        x = g.concat(x, g.conv_bn_act(x, unit["growth"], 3))
    return x


def pool_unit(g: GraphBuilder, x: str, unit: dict) -> str:
    pool = g.max_pool if unit["pool"] == "max" else g.avg_pool
    return pool(x, 2, 2, padding="same")


BUILDERS = {"conv": conv_block, "res": res_block, "dense": dense_block, "pool": pool_unit}


# --- readable strings --------------------------------------------------------------------------
def _token(unit: dict) -> str:
    kind = unit["type"]
    if kind == "conv":
        return f"conv_c{unit['channels']}_k{unit['kernel']}"
    if kind == "res":
        return f"res_c{unit['channels']}" + ("_s2" if unit["stride"] == 2 else "")
    if kind == "dense":
        return f"dense_k{unit['layers']}_g{unit['growth']}"
    return f"pool_{unit['pool']}"


def _unit(token: str) -> dict:
    match = TOKEN.match(token)
    if match is None:
        raise InvalidArchitecture(f"cannot read blocks unit {token!r:.40}: write e.g. conv_c32_k3, "
                                  f"res_c16, res_c16_s2, dense_k3_g8, pool_max or pool_avg, joined "
                                  f"by '-' (e.g. {EXAMPLE!r}), or 'empty'")
    conv_c, conv_k, res_c, res_s, dense_k, dense_g, pool = match.groups()
    if conv_c:
        return {"type": "conv", "channels": int(conv_c), "kernel": int(conv_k)}
    if res_c:
        return {"type": "res", "channels": int(res_c), "stride": int(res_s or 1)}
    if dense_k:
        return {"type": "dense", "layers": int(dense_k), "growth": int(dense_g)}
    return {"type": "pool", "pool": pool}


def _pick(rng: np.random.Generator, choices: list):
    """One element of ``choices`` as a plain Python value (JSON-friendly, not a numpy scalar)."""
    return choices[int(rng.integers(0, len(choices)))]
