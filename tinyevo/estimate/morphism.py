"""Network morphism (Cai et al. 2018, Elsken et al. 2017; Net2Net, Chen et al. 2016): a child's
layers take the trained weights of the parent layers they map onto. Node names differ between
genomes, so layers are matched by their place and role in the graph:

1. **Units.** Each architecture is read as its weighted layers in execution order: a conv2d or dense
   node together with the batch norm that alone reads it, or a batch norm on its own. Each unit has
   a role: conv, depthwise, grouped, dense, classifier (the last dense) or batch_norm.
2. **Alignment.** Child and parent units are aligned like two strings (a weighted longest common
   subsequence): only units of the same role pair up; a pair with equal shapes scores 4, any other
   pair 1, plus 1 if the child loses no output channel and 1 if it loses no kernel tap (so an
   inserted layer rather than a narrowed one is the odd one out). An added, removed or altered
   layer leaves the rest of the chain matched.
3. **Channel maps.** Walking the child graph, every tensor carries a map: for each child channel,
   the parent channel it corresponds to in one of the parent's *channel spaces* (the output of a
   weighted node, or the input; per-channel ops -- relu, batch norm, pools, global pooling -- keep
   the space; flatten and add make derived ones; concat and zero end the correspondence).
4. **Copy.** A matched layer whose input map is in the parent layer's input space copies
   ``W[j, i] = W_parent[out(j), in(i)] / (child channels sharing in(i))``. Wider outputs replicate
   random parent channels, weights, biases and batch-norm statistics alike, and the next layer
   divides by the replica count (Net2WiderNet: the same function). Narrower layers keep the first
   channels. A larger kernel gets the parent's kernel in its centre and zeros around it (the same
   function for odd kernels with 'same' padding); a smaller one keeps the centre. A dense layer that
   reads the same features flattened at another size, or pooled, gets the parent's weights resampled
   over the pixels (summed where a child pixel covers several; gap -> flatten is the same function).
   When the input maps onto something else (e.g. the layer before it was removed), the overlapping
   leading slice is copied instead: counted as inherited, but not the same function.
5. **Deepening.** An unmatched conv (odd kernel), depthwise conv or hidden dense layer whose input
   has a map is identity-initialized, channels past its input's replicating them, with its batch
   norm set to the identity in eval mode (Net2DeeperNet). The function is kept when the new layer's
   input is non-negative (it follows a relu, as in the chain space), since the relu after it is then
   the identity. Other unmatched layers keep their random initialization.

``inherited_fraction`` is the share of the child's trainable parameters copied from the parent
(zeros of an enlarged kernel and identity-initialized layers do not count); ``inherited_from`` is
the parent's trial id, -1 when trained from scratch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinyevo.arch import INPUT, Architecture, Node
from tinyevo.estimate.fidelity import classifier_node
from tinyevo.estimate.weights_store import StoredWeights
PER_CHANNEL_OPS = ("relu", "relu6", "batch_norm", "max_pool", "avg_pool", "global_avg_pool", "identity")
NORM_TENSORS = ("weight", "bias", "running_mean", "running_var")
FLATTENED = re.compile(r"flatten\((.*)@(\d+)x(\d+)\)")
ChannelMap = tuple  # (parent channel space, np.ndarray: parent channel of each child channel, -1 none)


@dataclass(frozen=True)
class Unit:
    """A weighted node with the batch norm that alone reads it (``norm``), or a batch norm alone."""

    node: Node
    role: str
    norm: str | None
    signature: tuple


def layer_role(arch: Architecture, node: Node, classifier: str | None) -> str:
    if node.op == "dense":
        return "classifier" if node.name == classifier else "dense"
    if node.op == "batch_norm":
        return "batch_norm"
    groups, channels = node.attrs["groups"], arch.input_shapes(node)[0][2]
    if groups == 1:
        return "conv"
    return "depthwise" if groups == channels == node.attrs["out_channels"] else "grouped"


def layer_units(arch: Architecture) -> list[Unit]:
    """The weighted layers of ``arch`` in execution order (dead nodes left out)."""
    live = arch.live_nodes()
    readers, names, classifier = arch.consumers(), {n.name for n in live}, classifier_node(arch)
    units, bundled = [], set()
    for node in live:
        signature = (arch.input_shapes(node)[0][2], arch.shapes[node.name][2], node.attrs.get("kernel"))
        if node.op in ("conv2d", "dense"):
            after = [r for r in readers[node.name] if r in names]
            norm = after[0] if len(after) == 1 and arch.by_name[after[0]].op == "batch_norm" else None
            bundled.add(norm)
            units.append(Unit(node, layer_role(arch, node, classifier), norm, signature))
        elif node.op == "batch_norm" and node.name not in bundled:
            units.append(Unit(node, "batch_norm", None, signature))
    return units


def align(parent: list[Unit], child: list[Unit]) -> dict[str, Unit]:
    """Child node name -> the parent unit it maps onto (weighted longest common subsequence)."""
    def score(p: Unit, c: Unit) -> int:
        if p.role != c.role:
            return 0
        if p.signature == c.signature:
            return 4
        kernels = (c.signature[2] or (1, 1), p.signature[2] or (1, 1))
        return 1 + (c.signature[1] >= p.signature[1]) + (min(np.subtract(*kernels)) >= 0)

    n, m = len(parent), len(child)
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            pair = score(parent[i], child[j])
            best[i][j] = max(best[i + 1][j], best[i][j + 1], best[i + 1][j + 1] + pair if pair else 0)
    matches, i, j = {}, 0, 0
    while i < n and j < m:
        pair = score(parent[i], child[j])
        if pair and best[i][j] == best[i + 1][j + 1] + pair:
            matches[child[j].node.name] = parent[i]
            i, j = i + 1, j + 1
        elif best[i + 1][j] >= best[i][j + 1]:
            i += 1
        else:
            j += 1
    return matches


def spatial(key: str) -> tuple[str, int, int]:
    """(space, height, width) of the features a dense layer reads: a flattened map, or pooled (1x1)."""
    match = FLATTENED.fullmatch(key)
    return (match[1], int(match[2]), int(match[3])) if match else (key, 1, 1)


def space_key(node: Node, input_spaces: list[str], arch: Architecture) -> str:
    """The channel space of ``node``'s output, given the spaces of its inputs (parent's names)."""
    if node.op in PER_CHANNEL_OPS:
        return input_spaces[0]
    if node.op == "flatten":
        height, width, _ = arch.input_shapes(node)[0]
        return f"flatten({input_spaces[0]}@{height}x{width})"
    if node.op == "add":
        distinct = sorted(set(input_spaces))
        return distinct[0] if len(distinct) == 1 else f"add({','.join(distinct)})"
    return node.name  # conv2d and dense start a space; so do concat and zero, never shared


def channel_spaces(arch: Architecture) -> tuple[dict[str, str], dict[str, int]]:
    """The channel space of every tensor of ``arch``, and the channel count of every space."""
    spaces, channels = {INPUT: INPUT}, {INPUT: arch.input_shape[2]}
    for node in arch.live_nodes():
        key = space_key(node, [spaces[s] for s in node.inputs], arch)
        spaces[node.name] = key
        channels.setdefault(key, arch.shapes[node.name][2])
    return spaces, channels


def state_key(node: Node | str, tensor: str, conv: bool | None = None) -> str:
    """The module's state_dict key of one tensor of a node (``layers.<name>.[conv.]<tensor>``)."""
    name = node if isinstance(node, str) else node.name
    inner = "conv." if (conv if conv is not None else node.op == "conv2d") else ""
    return f"layers.{name}.{inner}{tensor}"


def leading(count: int, available: int) -> np.ndarray:
    """Channel map of a plain slice: channel j <- j for j < available, else -1 (none)."""
    channels = np.arange(count)
    return np.where(channels < available, channels, -1)


def fit_kernel(block: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, int]:
    """``block`` (out, in, kh, kw) centred into a kernel of ``size``: zero-padded or cropped.

    Returns the kernel and how many taps of each came from ``block``."""
    out = np.zeros(block.shape[:2] + tuple(size), block.dtype)
    source, target, taps = [], [], 1
    for have, want in zip(block.shape[2:], size):
        keep = min(have, want)
        source.append(slice((have - keep) // 2, (have - keep) // 2 + keep))
        target.append(slice((want - keep) // 2, (want - keep) // 2 + keep))
        taps *= keep
    out[:, :, target[0], target[1]] = block[:, :, source[0], source[1]]
    return out, taps


def as_4d(weight: np.ndarray) -> np.ndarray:
    """A view of a dense weight (out, in) as a 1x1 convolution's (out, in, 1, 1)."""
    return weight if weight.ndim == 4 else weight[:, :, None, None]


class Morphism:
    """Maps a parent's stored weights onto a child's freshly built module (state as NumPy arrays)."""

    def __init__(self, module: nn.Module, child: Architecture, parent: StoredWeights,
                 rng: np.random.Generator):
        self.module, self.child, self.parent, self.rng = module, child, parent, rng
        self.state = {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
        self.units = {u.node.name: u for u in layer_units(child)}
        self.matches = align(layer_units(parent.architecture), list(self.units.values()))
        self.spaces, self.space_channels = channel_spaces(parent.architecture)
        self.inherited = 0

    def run(self) -> dict[str, np.ndarray]:
        """The child's new state; ``self.inherited`` counts the parameters copied."""
        maps: dict[str, ChannelMap | None] = {INPUT: (INPUT, np.arange(self.child.input_shape[2]))}
        for node in self.child.live_nodes():
            inputs = [maps[s] for s in node.inputs]
            unit = self.units.get(node.name)
            maps[node.name] = self.propagate(node, inputs) if unit is None else self.layer(unit, inputs[0])
        return self.state

    def propagate(self, node: Node, inputs: list) -> ChannelMap | None:
        """The map of an op without weights (bundled batch norms included: done with their layer)."""
        if node.op in PER_CHANNEL_OPS:
            return inputs[0]
        if any(m is None for m in inputs):
            return None
        if node.op == "flatten":
            height, width, _ = self.child.input_shapes(node)[0]
            space, source = inputs[0]
            parent_channels = self.space_channels.get(space)
            if parent_channels is None:
                return None
            flat = np.arange(height * width)[:, None] * parent_channels + source[None, :]
            flat[:, source < 0] = -1
            return f"flatten({space}@{height}x{width})", flat.ravel()
        if node.op == "add" and all(np.array_equal(m[1], inputs[0][1]) for m in inputs):
            return space_key(node, [m[0] for m in inputs], self.child), inputs[0][1]
        return None

    def layer(self, unit: Unit, in_map: ChannelMap | None) -> ChannelMap | None:
        parent = self.matches.get(unit.node.name)
        if parent is None:
            return self.deepen(unit, in_map)
        in_source, divide = self.input_channels(unit, parent, in_map)
        resampled = self.resampled_weight(unit, parent, in_map)
        if resampled is not None:
            in_source, divide = in_map[1], True
        if unit.role == "batch_norm":
            self.copy_norm(unit.node.name, parent.node.name, in_source)
            return in_map
        out_source = in_source if unit.role == "depthwise" else self.output_channels(unit, parent)
        self.copy_weights(unit.node, parent.node, out_source, in_source, divide, resampled)
        if unit.norm and parent.norm:
            self.copy_norm(unit.norm, parent.norm, out_source)
        return parent.node.name, out_source

    def input_channels(self, unit: Unit, parent: Unit, in_map) -> tuple[np.ndarray, bool]:
        """Parent input channel of each child input channel, and whether replicas share (divide)."""
        if in_map is not None and in_map[0] == self.spaces[parent.node.inputs[0]]:
            return in_map[1], True
        child_in = self.child.input_shapes(unit.node)[0][2]
        return leading(child_in, self.parent.architecture.input_shapes(parent.node)[0][2]), False

    def resampled_weight(self, unit: Unit, parent: Unit, in_map) -> np.ndarray | None:
        """A dense parent weight laid out for the child's feature-map size when the two read the same
        features at different sizes (or pooled): each child pixel gets the parent weights of the
        pixels it covers, summed (spread and divided when it covers less than one)."""
        if unit.node.op != "dense" or in_map is None:
            return None
        have, want = spatial(self.spaces[parent.node.inputs[0]]), spatial(in_map[0])
        if have[0] != want[0] or have == want:
            return None
        weight = self.parent.state[state_key(parent.node, "weight")]
        (height, width), size = have[1:], want[1:]
        grid = torch.from_numpy(weight.reshape(weight.shape[0], height, width, -1)).permute(0, 3, 1, 2)
        grid = F.adaptive_avg_pool2d(grid, size) * (height * width / (size[0] * size[1]))
        return grid.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).numpy()

    def output_channels(self, unit: Unit, parent: Unit) -> np.ndarray:
        """The first channels, then random replicas of the parent's when the child is wider."""
        count, available = self.child.shapes[unit.node.name][2], parent.signature[1]
        if count <= available:
            return np.arange(count)
        return np.concatenate([np.arange(available), self.rng.integers(0, available, count - available)])

    def copy_weights(self, node: Node, parent: Node, out_source, in_source, divide: bool,
                     parent_weight: np.ndarray | None = None) -> None:
        weight = as_4d(self.state[state_key(node, "weight")])
        if parent_weight is None:
            parent_weight = self.parent.state[state_key(parent, "weight")]
        parent_weight = as_4d(parent_weight)
        if node.op == "conv2d" and node.attrs["groups"] > 1:  # grouped: the group's own inputs
            in_source, divide = leading(weight.shape[1], parent_weight.shape[1]), False
        rows, cols = np.flatnonzero(out_source >= 0), np.flatnonzero(in_source >= 0)
        block = parent_weight[np.ix_(out_source[rows], in_source[cols])]
        if divide:
            shares = np.bincount(in_source[cols], minlength=parent_weight.shape[1]).astype(block.dtype)
            block = block / shares[in_source[cols]][None, :, None, None]
        block, taps = fit_kernel(block, weight.shape[2:])
        weight[np.ix_(rows, cols)] = block
        self.inherited += block.shape[0] * block.shape[1] * taps
        bias, parent_bias = state_key(node, "bias"), state_key(parent, "bias")
        if bias in self.state and parent_bias in self.parent.state:
            self.state[bias][rows] = self.parent.state[parent_bias][out_source[rows]]
            self.inherited += rows.size

    def copy_norm(self, name: str, parent_name: str, source: np.ndarray) -> None:
        rows = np.flatnonzero(source >= 0)
        for tensor in NORM_TENSORS:
            self.state[state_key(name, tensor, False)][rows] = \
                self.parent.state[state_key(parent_name, tensor, False)][source[rows]]
        tracked, parent_tracked = state_key(name, "num_batches_tracked", False), \
            state_key(parent_name, "num_batches_tracked", False)
        if tracked in self.state and parent_tracked in self.parent.state:
            self.state[tracked] = self.parent.state[parent_tracked].copy()
        self.inherited += 2 * rows.size  # gamma and beta are parameters, the statistics buffers

    def deepen(self, unit: Unit, in_map: ChannelMap | None) -> ChannelMap | None:
        """Identity-initialize an unmatched layer (Net2DeeperNet); None when it cannot be."""
        node = unit.node
        if in_map is None or unit.role not in ("conv", "depthwise", "dense", "batch_norm"):
            return None
        if unit.role == "batch_norm":
            self.identity_norm(node.name)
            return in_map
        kernel = node.attrs.get("kernel", (1, 1))
        if kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
            return None
        count, available = self.child.shapes[node.name][2], self.child.input_shapes(node)[0][2]
        source = np.arange(count)
        if unit.role != "depthwise" and count > available:
            source[available:] = self.rng.integers(0, available, count - available)
        weight = as_4d(self.state[state_key(node, "weight")])
        weight[...] = 0
        inputs = 0 if unit.role == "depthwise" else source
        weight[np.arange(count), inputs, kernel[0] // 2, kernel[1] // 2] = 1
        if state_key(node, "bias") in self.state:
            self.state[state_key(node, "bias")][...] = 0
        if unit.norm:
            self.identity_norm(unit.norm)
        return in_map[0], in_map[1][source]

    def identity_norm(self, name: str) -> None:
        """Batch norm that is the identity in eval mode: mean 0, variance 1, gamma sqrt(1 + eps)."""
        eps = self.module.layers[name].eps
        for tensor, value in (("running_mean", 0.0), ("running_var", 1.0), ("bias", 0.0),
                              ("weight", float(np.sqrt(np.float32(1 + eps))))):
            self.state[state_key(name, tensor, False)][...] = value


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def inherit(module: nn.Module, architecture: Architecture, parents: list[StoredWeights],
            rng: np.random.Generator) -> dict:
    """Load into ``module`` (built from ``architecture``) the weights of the parent that gives it the
    most parameters; returns ``inherited_fraction`` and ``inherited_from`` (-1: none)."""
    best, seed = None, int(rng.integers(2**32))  # the same replicas whichever parent
    for parent in parents:
        morphism = Morphism(module, architecture, parent, np.random.default_rng(seed))
        state = morphism.run()
        if best is None or morphism.inherited > best[0]:
            best = (morphism.inherited, parent.trial_id, state)
    if best is None:
        return {"inherited_fraction": 0.0, "inherited_from": -1}
    module.load_state_dict({k: torch.from_numpy(v) for k, v in best[2].items()})
    return {"inherited_fraction": best[0] / max(parameter_count(module), 1), "inherited_from": best[1]}
