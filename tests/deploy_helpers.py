"""Shared by the deploy tests: random networks with non-trivial batch norms, and small graphs that
use every op of the IR in the ways the quantizer and the writers have to handle."""
from __future__ import annotations

import numpy as np
import torch

from tinyevo.arch import GraphBuilder
from tinyevo.deploy.quantize import quantize
from tinyevo.nn.build import build, randomize_batch_norms


def random_model(arch, seed: int):
    """``tinyevo.nn.build(arch)`` with seeded random weights and batch norms, in eval mode."""
    torch.manual_seed(seed)
    module = build(arch).eval()
    randomize_batch_norms(module, np.random.default_rng(seed))
    return module


def float_inputs(arch, count: int, rng: np.random.Generator) -> np.ndarray:
    """Random NCHW float inputs for the architecture."""
    h, w, c = arch.input_shape
    return rng.normal(size=(count, c, h, w)).astype(np.float32)


def quantized_model(arch, seed: int, calibration_count: int = 16, **options):
    """(module, QuantizedModel, rng) with random weights calibrated on random inputs."""
    module = random_model(arch, seed)
    rng = np.random.default_rng(seed + 1)
    calibration = float_inputs(arch, calibration_count, rng)
    return module, quantize(arch, module, calibration, **options), rng


def int8_inputs(qmodel, arch, count: int, rng: np.random.Generator) -> np.ndarray:
    """Int8 NHWC inputs drawn like the calibration data, quantized with the model's input scale."""
    return qmodel.input_spec.quantize(float_inputs(arch, count, rng).transpose(0, 2, 3, 1))


# --- hand-built graphs ------------------------------------------------------------------------------
def every_op_graph():
    """Conv with bias, folded and standalone batch norm, dilated and multiplier-2 depthwise, grouped
    conv, pools with SAME padding, relu fused into a pool, add with a zero input, concat that must
    requantize, flatten of a map, dense with a folded batch norm."""
    g = GraphBuilder((12, 12, 3), name="every_op")
    x = g.relu(g.batch_norm(g.conv2d(g.input, 8, kernel=3, bias=True)))
    x = g.relu6(g.batch_norm(g.conv2d(x, 8, kernel=3, groups=8, dilation=2, bias=False)))
    x = g.conv2d(x, 16, kernel=3, groups=8, bias=True)
    x = g.relu(g.max_pool(x, kernel=3, stride=2, padding="same"))
    s = g.conv2d(x, 16, kernel=1)
    t = g.conv2d(x, 16, kernel=3, groups=2)
    x = g.relu(g.batch_norm(g.add(s, t, g.zero(s))))
    x = g.avg_pool(x, kernel=3, stride=2, padding="same")
    x = g.concat(x, g.conv2d(x, 8, kernel=1))
    return g.build(g.batch_norm(g.dense(g.flatten(x), 10)))


def multi_reader_graph():
    """Relu with a second reader of its input (standalone RELU), a three-input add, identity, a zero
    that is concatenated, standalone RELU6 after a concat, a one-channel map as the output."""
    g = GraphBuilder((10, 10, 4), name="multi_reader")
    a = g.conv2d(g.input, 8, kernel=3, bias=False)
    b = g.relu(a)
    c = g.conv2d(a, 8, kernel=1)
    d = g.identity(g.relu6(g.add(b, c)))
    f = g.add(d, b, c)
    k = g.relu6(g.concat(f, g.zero(f), g.conv2d(f, 4, kernel=1)))
    return g.build(g.conv2d(k, 1, kernel=(3, 1), stride=2, padding="valid"))


def input_ops_graph():
    """Ops straight on the input: batch norm (a 1x1 depthwise conv), relu, valid max pool, global
    average pool, dense, a second dense with a single unit."""
    g = GraphBuilder((8, 6, 2), name="input_ops")
    x = g.relu(g.batch_norm(g.input))
    x = g.max_pool(x, kernel=2, padding="valid")
    x = g.relu6(g.dense(g.flatten(g.global_avg_pool(x)), 6))
    return g.build(g.dense(x, 1, bias=False))


def zero_branch_graph():
    """A conv reading a zero tensor (the zero is materialized, after the relu that shares its input
    has been fused into the producer), and a reshape-only tail."""
    g = GraphBuilder((6, 6, 3), name="zero_branch")
    x = g.conv2d(g.input, 4, kernel=3)
    r = g.relu(x)
    z = g.conv2d(g.zero(x), 4, kernel=1, bias=True)
    return g.build(g.flatten(g.add(r, z)))


def input_concat_graph():
    """relu6 fused into a stride-1 SAME max pool; the input concatenated with it (the input is
    requantized) and with a standalone relu of the input."""
    g = GraphBuilder((5, 5, 3), name="input_concat")
    x = g.relu6(g.max_pool(g.input, kernel=3, stride=1, padding="same"))
    return g.build(g.concat(x, g.input, g.relu(g.input)))


def dense_to_conv_graph():
    """A dense layer with a folded batch norm and relu feeding a 1x1 conv; the output is an add of
    two zeros (a tensor of zeros)."""
    g = GraphBuilder((3, 3, 2), name="dense_to_conv")
    x = g.relu(g.batch_norm(g.dense(g.flatten(g.input), 8)))
    x = g.conv2d(x, 4, kernel=1)
    return g.build(g.add(g.zero(x), g.zero(x)))


def identity_graph():
    """The identity network: the .tflite is a single RESHAPE."""
    g = GraphBuilder((4, 4, 2), name="identity")
    return g.build(g.identity(g.input))


def pools_graph():
    """Pools on 6, 4 and 3 channels (the DSP path's four-channel words with a tail, words only, a
    tail only), SAME padding with strides 1 and 2 (windows cut at every edge), VALID, 2x2, 3x3 and
    5x3 windows, a relu fused into a pool, and a global average over 16 x 17 = 272 values (more
    than the 255 whose sums halfwords hold)."""
    g = GraphBuilder((16, 17, 3), name="pools")
    a = g.relu(g.conv2d(g.input, 6, kernel=3))
    b = g.avg_pool(g.max_pool(a, kernel=3, stride=1, padding="same"), kernel=(5, 3), stride=2, padding="same")
    c = g.relu(g.max_pool(g.conv2d(g.input, 4, kernel=1), kernel=(5, 3), stride=2, padding="same"))
    d = g.avg_pool(g.input, kernel=3, stride=1, padding="same")
    e = g.max_pool(g.avg_pool(c, kernel=2, stride=2), kernel=2, stride=1)
    wide = g.global_avg_pool(g.concat(a, g.conv2d(d, 3, kernel=1)))
    return g.build(g.dense(g.concat(g.flatten(b), g.flatten(e), g.flatten(wide)), 5))


HAND_BUILT = {"every_op": every_op_graph, "multi_reader": multi_reader_graph,
              "input_ops": input_ops_graph, "zero_branch": zero_branch_graph,
              "input_concat": input_concat_graph, "dense_to_conv": dense_to_conv_graph,
              "identity": identity_graph, "pools": pools_graph}
