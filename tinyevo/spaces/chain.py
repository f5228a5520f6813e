"""The ``chain`` space: a variable-length sequence of layers (survey section II-A, chain-structured).

The encoding of Real et al. 2017 ("Large-scale evolution of image classifiers") and Sun et al. 2019
("Evolving deep CNNs for image classification"): a list of feature layers (convolution,
depthwise-separable convolution, max or average pooling), one head (global average pooling or
flatten), then dense layers. The classifier (a dense layer of ``num_classes`` units) is implied.
Mutations add, remove and alter layers with no maximum depth (Irwin-Harris et al. 2019), and
crossover cuts each parent at its own point, so a child's length may differ from both parents'.

A genome is a JSON list of layers, e.g.::

    [{"type": "conv", "filters": 16, "kernel": 3, "stride": 1},
     {"type": "ds", "filters": 32, "kernel": 3, "stride": 2},
     {"type": "max_pool", "kernel": 2}, {"type": "gap"}, {"type": "dense", "units": 64}]

and reads ``c16k3s1-ds32k3s2-mp2-gap-f64`` in logs. Convolutions and pools use 'same' padding, so
a feature map never shrinks below 1x1 however deep the chain grows.
"""
from __future__ import annotations

import re

import numpy as np

from tinyevo.arch import Architecture, GraphBuilder
from tinyevo.errors import InvalidArchitecture
from tinyevo.spaces.base import SPACES, Genome, SearchSpace

CONVS = ("conv", "ds")
POOLS = ("max_pool", "avg_pool")
FEATURES = CONVS + POOLS
HEADS = ("gap", "flatten")
FIELDS = {"conv": ("filters", "kernel", "stride"), "ds": ("filters", "kernel", "stride"),
          "max_pool": ("kernel",), "avg_pool": ("kernel",), "gap": (), "flatten": (),
          "dense": ("units",)}
PREFIX = {"conv": "c", "ds": "ds", "max_pool": "mp", "avg_pool": "ap", "dense": "f"}
TOKEN = re.compile(r"^(?:(c|ds)(\d+)k(\d+)s(\d+)|(mp|ap)(\d+)|(gap|flat)|f(\d+))$")


def head_index(genome: Genome) -> int:
    """Position of the head layer; raises InvalidArchitecture unless there is exactly one."""
    if not isinstance(genome, list) or not all(isinstance(layer, dict) for layer in genome):
        raise InvalidArchitecture(f"a chain genome is a list of layer objects, got {genome!r:.80}")
    heads = [i for i, layer in enumerate(genome) if layer.get("type") in HEADS]
    if len(heads) != 1:
        raise InvalidArchitecture(f"a chain genome needs exactly one head layer (gap or flatten), "
                                  f"got {len(heads)}")
    return heads[0]


def check_layers(genome: Genome) -> int:
    """Validate the layer list (types, fields, order); returns the head's position."""
    head = head_index(genome)
    for i, layer in enumerate(genome):
        kind = layer.get("type")
        allowed = FEATURES if i < head else HEADS if i == head else ("dense",)
        if kind not in allowed:
            raise InvalidArchitecture(f"chain layer #{i}: type {kind!r} not allowed here; "
                                      f"expected one of {', '.join(allowed)}")
        if set(layer) != {"type", *FIELDS[kind]}:
            raise InvalidArchitecture(f"chain layer #{i} ({kind}): fields must be "
                                      f"{['type', *FIELDS[kind]]}, got {sorted(layer)}")
    return head


@SPACES.register("chain")
class ChainSpace(SearchSpace):
    """Chain-structured CNNs of any depth. Choice lists bound what ``sample`` and mutations pick."""

    name = "chain"
    encoding = "variable"

    def __init__(self, input_shape=(28, 28, 1), num_classes: int = 10,
                 filters=(8, 16, 24, 32, 48, 64, 96, 128), kernels=(1, 3, 5, 7), strides=(1, 2),
                 pool_kernels=(2, 3), units=(16, 32, 64, 128, 256), max_initial_layers: int = 4,
                 max_initial_dense: int = 1):
        super().__init__(input_shape, num_classes)
        self.filters, self.kernels, self.strides = list(filters), list(kernels), list(strides)
        self.pool_kernels, self.units = list(pool_kernels), list(units)
        self.max_initial_layers, self.max_initial_dense = int(max_initial_layers), int(max_initial_dense)

    def options(self) -> dict:
        return {**super().options(), "filters": self.filters, "kernels": self.kernels,
                "strides": self.strides, "pool_kernels": self.pool_kernels, "units": self.units,
                "max_initial_layers": self.max_initial_layers,
                "max_initial_dense": self.max_initial_dense}

    # --- sampling ------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Genome:
        depth = int(rng.integers(1, self.max_initial_layers + 1))
        dense = int(rng.integers(0, self.max_initial_dense + 1))
        head = {"type": str(rng.choice(HEADS))}
        return ([self.random_feature(rng) for _ in range(depth)] + [head]
                + [self.random_dense(rng) for _ in range(dense)])

    def random_feature(self, rng: np.random.Generator, kind: str | None = None) -> dict:
        """A random conv / ds (3 in 4) or pooling layer (1 in 4)."""
        if kind is None:
            kind = str(rng.choice(FEATURES, p=[0.375, 0.375, 0.125, 0.125]))
        if kind in POOLS:
            return {"type": kind, "kernel": _pick(rng, self.pool_kernels)}
        return {"type": kind, "filters": _pick(rng, self.filters),
                "kernel": _pick(rng, self.kernels), "stride": _pick(rng, self.strides)}

    def random_dense(self, rng: np.random.Generator) -> dict:
        return {"type": "dense", "units": _pick(rng, self.units)}

    def smallest(self) -> list[Genome]:
        """Real et al. 2017's trivial initialization: no convolution, a linear classifier."""
        return [[{"type": "gap"}]]

    # --- variation -----------------------------------------------------------------------------
    def _mutate(self, genome: Genome, rng: np.random.Generator) -> Genome:
        head = head_index(genome)
        moves = ["add_layer", "alter_layer", "change_head"]
        if len(genome) > 1:
            moves.append("remove_layer")
        return getattr(self, str(rng.choice(moves)))(genome, head, rng)

    def add_layer(self, genome: Genome, head: int, rng: np.random.Generator) -> Genome:
        """Insert a random feature layer before the head or a dense layer after it."""
        if rng.random() < 0.75:
            genome.insert(int(rng.integers(0, head + 1)), self.random_feature(rng))
        else:
            genome.insert(int(rng.integers(head + 1, len(genome) + 1)), self.random_dense(rng))
        return genome

    def remove_layer(self, genome: Genome, head: int, rng: np.random.Generator) -> Genome:
        choices = [i for i in range(len(genome)) if i != head]
        del genome[_pick(rng, choices)]
        return genome

    def alter_layer(self, genome: Genome, head: int, rng: np.random.Generator) -> Genome:
        """Change one field (type, filters, kernel, stride or units) of one non-head layer."""
        choices = [i for i in range(len(genome)) if i != head]
        if not choices:
            return self.add_layer(genome, head, rng)
        i = _pick(rng, choices)
        layer = genome[i]
        field = _pick(rng, ["type", *FIELDS[layer["type"]]] if i < head else ["units"])
        if field == "type":
            genome[i] = self._retyped(layer, rng)
        else:
            options = {"filters": self.filters, "stride": self.strides, "units": self.units,
                       "kernel": self.pool_kernels if layer["type"] in POOLS else self.kernels}
            layer[field] = _pick(rng, [v for v in options[field] if v != layer[field]]
                                 or options[field])
        return genome

    def _retyped(self, layer: dict, rng: np.random.Generator) -> dict:
        """The layer as another feature type, keeping the fields both types share."""
        kind = str(rng.choice([k for k in FEATURES if k != layer["type"]]))
        new = self.random_feature(rng, kind)
        same_family = (kind in POOLS) == (layer["type"] in POOLS)
        return {**new, **{k: layer[k] for k in FIELDS[kind] if same_family and k in layer}}

    def change_head(self, genome: Genome, head: int, rng: np.random.Generator) -> Genome:
        genome[head] = {"type": "flatten" if genome[head]["type"] == "gap" else "gap"}
        return genome

    def _crossover(self, a: Genome, b: Genome, rng: np.random.Generator) -> Genome:
        """One cut in each parent, both among the feature layers or both among the dense layers."""
        head_a, head_b = head_index(a), head_index(b)
        if rng.random() < 0.5:  # features: a's first layers, b's last layers, b's head and dense
            cut_a, cut_b = int(rng.integers(0, head_a + 1)), int(rng.integers(0, head_b + 1))
        else:  # dense: a's features, head and first dense layers, then b's last dense layers
            cut_a = int(rng.integers(head_a + 1, len(a) + 1))
            cut_b = int(rng.integers(head_b + 1, len(b) + 1))
        return a[:cut_a] + b[cut_b:]

    # --- decoding ------------------------------------------------------------------------------
    def decode(self, genome: Genome) -> Architecture:
        head = check_layers(genome)
        g = GraphBuilder(self.input_shape, name="chain")
        x = g.input
        for layer in genome[:head]:
            x = self._feature(g, x, layer)
        x = g.global_avg_pool(x) if genome[head]["type"] == "gap" else g.flatten(x)
        for layer in genome[head + 1:]:
            x = g.relu(g.dense(x, layer["units"]))
        return g.build(g.dense(x, self.num_classes), meta={"space": self.name,
                                                          "genome": self.describe(genome)})

    @staticmethod
    def _feature(g: GraphBuilder, x: str, layer: dict) -> str:
        kind = layer["type"]
        if kind == "conv":
            return g.conv_bn_act(x, layer["filters"], layer["kernel"], layer["stride"])
        if kind == "ds":
            return g.depthwise_separable(x, layer["filters"], layer["kernel"], layer["stride"])
        pool = g.max_pool if kind == "max_pool" else g.avg_pool
        return pool(x, layer["kernel"], 2, padding="same")

    # --- readable strings ----------------------------------------------------------------------
    def describe(self, genome: Genome) -> str:
        return "-".join(_token(layer) for layer in genome)

    def parse(self, text: str) -> Genome:
        """The genome of a ``describe`` string such as ``c16k3s1-mp2-gap-f64``."""
        genome = [_layer(token) for token in text.strip().split("-")]
        check_layers(genome)
        return genome


def _token(layer: dict) -> str:
    kind = layer.get("type")
    if kind in CONVS:
        return f"{PREFIX[kind]}{layer['filters']}k{layer['kernel']}s{layer['stride']}"
    if kind in POOLS:
        return f"{PREFIX[kind]}{layer['kernel']}"
    if kind == "dense":
        return f"f{layer['units']}"
    return "flat" if kind == "flatten" else str(kind)


def _layer(token: str) -> dict:
    match = TOKEN.match(token)
    if match is None:
        raise InvalidArchitecture(f"cannot read chain layer {token!r}: write e.g. c16k3s1, ds32k3s2, "
                                  f"mp2, ap2, gap, flat or f64")
    conv, filters, kernel, stride, pool, pool_kernel, head, units = match.groups()
    if conv:
        return {"type": "conv" if conv == "c" else "ds", "filters": int(filters),
                "kernel": int(kernel), "stride": int(stride)}
    if pool:
        return {"type": "max_pool" if pool == "mp" else "avg_pool", "kernel": int(pool_kernel)}
    if head:
        return {"type": "gap" if head == "gap" else "flatten"}
    return {"type": "dense", "units": int(units)}


def _pick(rng: np.random.Generator, choices: list):
    """One element of ``choices`` as a plain Python value (JSON-friendly, not a numpy scalar)."""
    return choices[int(rng.integers(0, len(choices)))]
