"""Batch-norm folding: which batch norms disappear into the convolution or dense layer before them.

At deployment a batch norm right after a ``conv2d`` or ``dense`` whose output nothing else reads is
folded into that layer's weights and bias (one bias per output channel; Jacob et al. 2018,
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference",
section 3.2). Any other batch norm stays an op of its own: a per-channel scale and offset.
"""
from __future__ import annotations

from tinyevo.arch import INPUT, Architecture
from tinyevo.hardware.memory import shared_live_readers

FOLDS_INTO = ("conv2d", "dense")


def batch_norm_folds(arch: Architecture) -> dict[str, str]:
    """Live batch norms that fold: {batch norm node: the conv2d/dense node it folds into}."""
    return dict(arch.kept("batch_norm_folds", _batch_norm_folds))


def _batch_norm_folds(arch: Architecture) -> dict[str, str]:
    readers = shared_live_readers(arch)
    folds = {}
    for node in arch.live_nodes():
        if node.op != "batch_norm":
            continue
        source = node.inputs[0]
        if source != INPUT and arch.by_name[source].op in FOLDS_INTO and readers[source] == [node.name]:
            folds[node.name] = source
    return folds


def has_bias(arch: Architecture, node_name: str, folds: dict[str, str]) -> bool:
    """Whether a conv2d/dense ends up with a bias: its own, or one a folded batch norm gives it."""
    return bool(arch.by_name[node_name].attrs.get("bias")) or node_name in folds.values()
