"""Remedies for DARTS's collapse to parameter-free ops (NAS-Bench-201, Dong & Yang 2020, Table 5:
DARTS on CIFAR-10 ends on all skip-connections, 54.30 % test accuracy). Each is an option of the
search (``DartsSettings.remedy``):

- ``early_stop``: DARTS+ (Liang et al. 2019, criterion 1): stop the search once the argmax cell
  holds ``max_skips`` or more skip-connections (they use 2 for DARTS's 14-edge cell); the cell kept
  is the last one before that (the current one when the first epoch already has them).
- ``shrink``: progressive search-space shrinking in the manner of P-DARTS (Chen et al. 2019, section
  3.2.1): every ``shrink_every`` epochs each edge drops its op of lowest weight, until ``shrink_to``
  ops are left per edge; the argmax of the rest is the cell.
- ``perturbation``: perturbation-based architecture selection (Wang et al. 2021, "Rethinking
  architecture selection in differentiable NAS", Algorithm 1): after the search, the edges are
  taken in a random order; on each, every op still there is masked out in turn and the supernet's
  validation accuracy without it measured; the op whose removal hurts most is kept alone on that
  edge, and the supernet's weights are tuned ``tune_steps`` steps before the next edge. The
  ``alpha`` magnitudes are not used for the choice. With ``exclude_none`` (Liu et al.'s rule) the
  ``none`` op is neither measured nor kept: the choice is among the other ops of the edge.
"""
from __future__ import annotations

import numpy as np
import torch

from tinyevo.darts.relaxed_nb201 import RelaxedNb201
from tinyevo.spaces.nb201 import EDGES, NB201_OPS

REMEDIES = ("none", "early_stop", "shrink", "perturbation")


def shrink(net: RelaxedNb201, keep_at_least: int) -> list[str]:
    """Drop each edge's kept op of lowest weight while more than ``keep_at_least`` are kept; the ops dropped."""
    dropped = []
    weights = net.edge_weights().detach()
    with torch.no_grad():
        for edge in range(len(EDGES)):
            kept = torch.nonzero(net.op_mask[edge]).flatten()
            if len(kept) <= keep_at_least:
                continue
            worst = int(kept[weights[edge, kept].argmin()])
            net.op_mask[edge, worst] = False
            dropped.append(f"edge {edge}: {NB201_OPS[worst]}")
    return dropped


@torch.no_grad()
def accuracy(net: RelaxedNb201, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Accuracy of the relaxed network as it stands (its batch norms in training mode, as in the search)."""
    correct = 0
    for start in range(0, len(y), batch_size):
        correct += int((net(x[start:start + batch_size]).argmax(1) == y[start:start + batch_size]).sum())
    return correct / max(len(y), 1)


def perturbation_select(net: RelaxedNb201, val: tuple[torch.Tensor, torch.Tensor], tune, batch_size: int,
                        rng: np.random.Generator, log=None, exclude_none: bool = False) -> list[dict]:
    """Fix every edge to the op whose removal drops validation accuracy most (Wang et al. 2021);
    ``tune()`` trains the weights a few steps between edges. Returns what was measured per edge."""
    records = []
    none = NB201_OPS.index("none")
    for edge in rng.permutation(len(EDGES)).tolist():
        kept = torch.nonzero(net.op_mask[edge]).flatten().tolist()
        if exclude_none and len(kept) > 1:
            kept = [op for op in kept if op != none]
        drops = {}
        base = accuracy(net, *val, batch_size)
        for op in kept if len(kept) > 1 else []:
            net.op_mask[edge, op] = False
            drops[op] = base - accuracy(net, *val, batch_size)
            net.op_mask[edge, op] = True
        chosen = max(drops, key=lambda op: (drops[op], -op)) if drops else kept[0]
        net.op_mask[edge] = False
        net.op_mask[edge, chosen] = True
        records.append({"edge": edge, "op": NB201_OPS[chosen], "accuracy": base,
                        "drops": {NB201_OPS[op]: d for op, d in drops.items()}})
        if log:
            log(f"perturbation: edge {edge} -> {NB201_OPS[chosen]} (accuracy {base:.4f})")
        tune()
    return records
