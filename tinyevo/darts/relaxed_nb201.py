"""The continuous relaxation of the ``nb201`` cell (Liu et al. 2019, DARTS, section 2.2).

Every edge of the cell carries a *mixed op*: the softmax of that edge's architecture weights
``alpha`` (one row of 5 logits per edge, shared by every cell as NAS-Bench-201's single cell type)
weighs the outputs of the 5 ops, ``sum_o softmax(alpha)_o * o(x)``. The skeleton is the one
``NasBench201Space.decode`` builds (stem, three stages of cells, residual reduction blocks, batch
norm, ReLU, global pooling, dense) with the same padding rules, so for a one-hot ``alpha`` the relaxed
network computes what ``tinyevo.nn.build(space.decode(genome))`` computes with the weights
``discrete_state(net, genome)`` hands it.

Ops can be masked out of an edge (``op_mask``, False = dropped): the softmax then runs over the ops
left, which is how progressive shrinking drops ops and how perturbation-based selection removes an op
or fixes an edge (``tinyevo.darts.remedies``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinyevo.estimate.supernet_layers import ConvBnAct, ElasticConv2d
from tinyevo.spaces.nb201 import CELL_NODES, EDGES, NB201_OPS, NasBench201Space, format_cell

CONV_KERNELS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
SKIP = NB201_OPS.index("skip_connect")
NONE = NB201_OPS.index("none")


class MixedEdge(nn.Module):
    """The 5 ops of one edge, with their own weights (the two convolutions; the rest have none)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.convs = nn.ModuleDict({op: ConvBnAct(channels, channels, (k,), act=False)
                                    for op, k in CONV_KERNELS.items()})

    def op_output(self, op: str, x: torch.Tensor) -> torch.Tensor | None:
        """One op's output; None for ``none`` (its output is zero)."""
        if op == "none":
            return None
        if op == "skip_connect":
            return x
        if op == "avg_pool_3x3":
            return F.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False)
        kernel = CONV_KERNELS[op]
        return self.convs[op](F.relu(x), self.channels, kernel)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``sum_o weights[o] * o(x)`` over the ops of nonzero weight."""
        total = torch.zeros_like(x)
        for index, op in enumerate(NB201_OPS):
            if op != "none" and bool(weights[index] != 0):
                total = total + weights[index] * self.op_output(op, x)
        return total


class RelaxedCell(nn.Module):
    """A 4-node cell whose 6 edges are mixed ops; node j is the sum of its incoming edges."""

    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(channels) for _ in EDGES)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, CELL_NODES):
            terms = [edge(nodes[i], weights[e]) for e, ((to, i), edge) in enumerate(zip(EDGES, self.edges))
                     if to == j]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[-1]


class Reduction(nn.Module):
    """NAS-Bench-201's residual reduction block, as ``NasBench201Space._reduction``."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.in_channels, self.channels = in_channels, channels
        self.conv_a = ConvBnAct(in_channels, channels, (3,), 2, act=False)
        self.conv_b = ConvBnAct(channels, channels, (3,), 1, act=False)
        self.shortcut = ElasticConv2d(in_channels, channels, (1,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_b(F.relu(self.conv_a(F.relu(x), self.channels, 3)), self.channels, 3)
        return y + self.shortcut(F.avg_pool2d(x, 2, 2), self.channels, 1)


class RelaxedNb201(nn.Module):
    """The relaxed nb201 network of ``space`` (its channels and cells per stage) with ``alpha``."""

    def __init__(self, space: NasBench201Space):
        super().__init__()
        self.space, c = space, space.channels
        self.alpha = nn.Parameter(torch.zeros(len(EDGES), len(NB201_OPS)))
        self.register_buffer("op_mask", torch.ones(len(EDGES), len(NB201_OPS), dtype=torch.bool))
        #: ``genome`` never picks ``none`` on an edge that keeps another op (Liu et al.'s rule).
        self.exclude_none = False
        self.stem = ConvBnAct(space.input_shape[2], c, (3,), act=False)
        parts = []
        for stage in range(3):
            if stage:
                parts.append(Reduction(c * 2 ** (stage - 1), c * 2 ** stage))
            parts += [RelaxedCell(c * 2 ** stage) for _ in range(space.cells_per_stage)]
        self.parts = nn.ModuleList(parts)
        self.last_bn = nn.BatchNorm2d(c * 4)
        self.classifier = nn.Linear(c * 4, space.num_classes)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def weight_parameters(self) -> list[nn.Parameter]:
        """The network's weights ``w`` (everything but ``alpha``)."""
        return [p for name, p in self.named_parameters() if name != "alpha"]

    def edge_weights(self, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """softmax(alpha) per edge over the ops ``op_mask`` keeps (dropped ops weigh 0)."""
        alpha = self.alpha if alpha is None else alpha
        return torch.softmax(alpha.masked_fill(~self.op_mask, float("-inf")), dim=1)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        weights = self.edge_weights() if weights is None else weights
        x = self.stem(x, self.space.channels, 3)
        for part in self.parts:
            x = part(x, weights) if isinstance(part, RelaxedCell) else part(x)
        x = F.relu(self.last_bn(x))
        return self.classifier(x.mean(dim=(2, 3)))

    def genome(self) -> str:
        """The discretized cell: argmax of the kept ops on each edge (Liu et al.: the strongest op;
        NAS-Bench-201 keeps ``none`` as a candidate, so it may win an edge, unless ``exclude_none``)."""
        weights = self.edge_weights().detach().clone()
        if self.exclude_none:
            others = self.op_mask.clone()
            others[:, NONE] = False
            weights[:, NONE] = torch.where(others.any(dim=1), -1.0, weights[:, NONE])
        return format_cell([NB201_OPS[int(i)] for i in weights.argmax(dim=1)])


def one_hot(genome: str) -> torch.Tensor:
    """Edge weights of a cell string: 1 for each edge's op, 0 elsewhere."""
    vector = NasBench201Space().to_vector(genome)
    return F.one_hot(torch.tensor(vector), len(NB201_OPS)).to(torch.float32)


def skip_count(genome: str) -> int:
    """Edges of the cell that are skip-connections (the DARTS collapse shows as many)."""
    return sum(1 for v in NasBench201Space().to_vector(genome) if v == SKIP)
