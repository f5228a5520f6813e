"""From a relaxed network to the discrete one: the weights of ``tinyevo.nn.build(space.decode(genome))``
taken from the relaxed nb201 network (each edge keeps the weights of its chosen op).

``discrete_state`` lists the relaxed network's weighted layers in the order ``NasBench201Space.decode``
creates its conv2d, batch_norm and dense nodes (``Architecture.nodes`` keeps creation order, dead
nodes included), pairs them, and keeps the live ones under ``tinyevo.nn``'s names.
"""
from __future__ import annotations

import torch

from tinyevo.darts.relaxed_nb201 import CONV_KERNELS, Reduction, RelaxedCell, RelaxedNb201
from tinyevo.estimate.supernet_layers import Exported
from tinyevo.spaces.nb201 import parse_cell

WEIGHTED_OPS = ("conv2d", "batch_norm", "dense")


def _batch_norm(bn: torch.nn.BatchNorm2d) -> dict[str, torch.Tensor]:
    return {"weight": bn.weight, "bias": bn.bias, "running_mean": bn.running_mean,
            "running_var": bn.running_var, "num_batches_tracked": bn.num_batches_tracked}


def created_layers(net: RelaxedNb201, genome: str) -> Exported:
    """(op, {name: tensor}) of the discrete network's weighted nodes, in decode's creation order."""
    ops, c = parse_cell(genome), net.space.channels
    layers = net.stem.export(net.space.input_shape[2], c, 3)
    for part in net.parts:
        if isinstance(part, Reduction):
            layers += part.conv_a.export(part.in_channels, part.channels, 3)
            layers += part.conv_b.export(part.channels, part.channels, 3)
            layers.append(("conv2d", {"conv.weight": part.shortcut.weight}))
            continue
        for edge, op in zip(part.edges, ops):  # EDGES order is the creation order within a cell
            if op in CONV_KERNELS:
                layers += edge.convs[op].export(edge.channels, edge.channels, CONV_KERNELS[op])
    layers.append(("batch_norm", _batch_norm(net.last_bn)))
    return layers + [("dense", {"weight": net.classifier.weight, "bias": net.classifier.bias})]


def discrete_state(net: RelaxedNb201, genome: str) -> dict[str, torch.Tensor]:
    """The state dict of ``build(net.space.decode(genome))`` with the relaxed network's weights."""
    arch = net.space.decode(genome)
    created = [n for n in arch.nodes if n.op in WEIGHTED_OPS]
    layers = created_layers(net, genome)
    if [n.op for n in created] != [op for op, _ in layers]:
        raise RuntimeError("the relaxed nb201 network and nb201 decode disagree on the layers")
    live = {n.name for n in arch.live_nodes()}
    return {f"layers.{node.name}.{key}": value.detach().clone()
            for node, (_, tensors) in zip(created, layers) if node.name in live
            for key, value in tensors.items()}


def cell_count(net: RelaxedNb201) -> int:
    return sum(isinstance(part, RelaxedCell) for part in net.parts)
