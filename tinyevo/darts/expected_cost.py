"""A differentiable expected hardware cost of the relaxed nb201 network (FBNet, Wu et al. 2019;
ProxylessNAS, Cai et al. 2019; MicroNets, Banbury et al. 2021: the cost of a relaxed network is the
expectation of its ops' costs under the architecture weights).

Each edge's op is read as drawn from ``softmax(alpha)`` of that edge, independently of the others;
the expected cost is ``sum_g P(g) cost(g)`` over the 15,625 cells, ``P(g) = prod_e w[e, g_e]``: the
multilinear extension of the cost, exact when ``w`` is one-hot and differentiable in ``w``.

- ``macs`` and ``flash_bytes``: ``cost(g)`` is the fixed part (stem, reductions, last batch norm,
  classifier: the cost model's figure for the cell that only passes its input on) plus each *live*
  convolution of the cells (the cost model's per-op figure of a conv at that stage). Live as the IR
  builds it: a conv on an edge into a node the cell's output does not depend on is dead code, and a
  skip or pool of a node that is all zeros is dropped (and so, in turn, may be its target).
- ``peak_sram_bytes``: the peak depends on the best execution order of each cell's DAG
  (``tinyevo.hardware.memory.schedule``), which has no closed form per op. Its value here is the cost
  model's figure for the argmax cell (so exact for one-hot ``w``, and what the discretized network
  will be checked against); its gradient is that of the multilinear extension of the largest stage's
  activation bytes times the buffers a cell holds (its input, its output and one per live conv or
  pool): a straight-through estimator (Bengio et al. 2013).
"""
from __future__ import annotations

import functools
import itertools

import numpy as np
import torch

from tinyevo.arch import OPS
from tinyevo.hardware.cost import BIAS_BYTES, QUANT_BYTES_PER_CHANNEL, WEIGHT_BYTES, estimate_cost
from tinyevo.spaces.nb201 import CELL_NODES, EDGES, NB201_OPS, NasBench201Space, format_cell

METRICS = ("macs", "flash_bytes", "peak_sram_bytes")
CONVS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
PASSES_ZEROS = ("skip_connect", "avg_pool_3x3")  # dropped when their source is all zeros


def live_edges(cells: np.ndarray, input_is_zero: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For cells given as op indices (rows of 6), which edges' ops the cell's output depends on
    (rows of 6 booleans), and whether the output is all zeros; ``input_is_zero`` per row."""
    none, passes = NB201_OPS.index("none"), [NB201_OPS.index(op) for op in PASSES_ZEROS]
    passes_zeros = np.isin(cells, passes)
    zero = [np.asarray(input_is_zero, dtype=bool)]
    for j in range(1, CELL_NODES):
        dropped = [(cells[:, e] == none) | (passes_zeros[:, e] & zero[i])
                   for e, (to, i) in enumerate(EDGES) if to == j]
        zero.append(np.logical_and.reduce(dropped))
    creates = np.stack([~passes_zeros[:, e] & (cells[:, e] != none) | (passes_zeros[:, e] & ~zero[i])
                        for e, (_, i) in enumerate(EDGES)], axis=1)
    live = [None] * CELL_NODES
    live[-1] = np.ones(len(cells), dtype=bool)
    for j in range(CELL_NODES - 2, 0, -1):  # a node is live when a created edge reads it into a live node
        live[j] = np.logical_or.reduce([creates[:, e] & live[to] for e, (to, i) in enumerate(EDGES) if i == j])
    targets = np.stack([live[to] for to, _ in EDGES], axis=1)
    return creates & targets, zero[-1]


@functools.lru_cache(maxsize=1)
def all_cells() -> np.ndarray:
    """The 15,625 cells as op indices, in C order of the (5,) * 6 tables."""
    return np.array(list(itertools.product(range(len(NB201_OPS)), repeat=len(EDGES))))


def stage_shapes(space: NasBench201Space) -> list[tuple[int, int, int]]:
    """(height, width, channels) of the cells of each stage (SAME stride-2 reductions)."""
    h, w, _ = space.input_shape
    shapes = []
    for stage in range(3):
        shapes.append((h, w, space.channels * 2 ** stage))
        h, w = -(-h // 2), -(-w // 2)
    return shapes


def conv_cost(shape, kernel: int) -> tuple[int, int]:
    """(MACs, flash bytes) of one cell conv (no bias; the batch norm folds into it as a bias)."""
    attrs = dict(out_channels=shape[2], kernel=(kernel, kernel), stride=(1, 1), padding="same",
                 groups=1, dilation=(1, 1), bias=False)
    macs = OPS["conv2d"].macs(attrs, [shape], shape)
    weights = OPS["conv2d"].weight_count(attrs, [shape])
    return macs, weights * WEIGHT_BYTES + shape[2] * (BIAS_BYTES + QUANT_BYTES_PER_CHANNEL)


@functools.lru_cache(maxsize=8)
def cost_tables(space: NasBench201Space) -> dict[str, np.ndarray]:
    """``macs``, ``flash_bytes`` and the SRAM proxy of every cell, as arrays of shape (5,) * 6."""
    fixed = estimate_cost(space.decode(space.smallest()[0]))
    shapes = stage_shapes(space)
    per_op = {op: [conv_cost(s, k) for s in shapes] for op, k in CONVS.items()}
    largest = max(h * w * c for h, w, c in shapes)
    cells = all_cells()
    first, output_zero = live_edges(cells, np.zeros(len(cells), dtype=bool))
    later, _ = live_edges(cells, output_zero)  # the cells after a zero output see zeros
    count = first + (space.cells_per_stage - 1) * later.astype(int)
    macs = np.full(len(cells), float(fixed.macs))
    flash = np.full(len(cells), float(fixed.flash_bytes))
    for op, costs in per_op.items():
        uses = ((cells == NB201_OPS.index(op)) * count).sum(axis=1)
        macs += uses * sum(m for m, _ in costs)
        flash += uses * sum(f for _, f in costs)
    buffers = 2 + (first & (cells != NB201_OPS.index("skip_connect"))).sum(axis=1)
    shape = (len(NB201_OPS),) * len(EDGES)
    return {"macs": macs.reshape(shape), "flash_bytes": flash.reshape(shape),
            "sram": (largest * buffers).astype(float).reshape(shape)}


def multilinear(weights: torch.Tensor, table: np.ndarray) -> torch.Tensor:
    """``sum_g prod_e weights[e, g_e] * table[g]``: the expectation of ``table`` under ``weights``
    (contracted one edge at a time, last edge first)."""
    total = torch.as_tensor(table, dtype=weights.dtype)
    for edge in range(len(EDGES) - 1, -1, -1):
        total = total @ weights[edge]
    return total


def expected_cost(space: NasBench201Space, weights: torch.Tensor) -> dict[str, torch.Tensor]:
    """Expected MACs, flash and peak SRAM of ``space``'s network under edge weights (6 x 5 rows
    summing to 1); differentiable in ``weights``, the cost model's figures when they are one-hot."""
    tables = cost_tables(space)
    cost = {name: multilinear(weights, tables[name]) for name in ("macs", "flash_bytes")}
    cell = format_cell([NB201_OPS[int(i)] for i in weights.detach().argmax(dim=1)])
    peak = float(estimate_cost(space.decode(cell)).peak_sram_bytes)
    proxy = multilinear(weights, tables["sram"])
    cost["peak_sram_bytes"] = peak + proxy - proxy.detach()  # value: the argmax's; gradient: the proxy's
    return cost
