"""The IR: validation messages, JSON round trip, fingerprints, and the PyTorch builder's numerics."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tinyevo.arch import Architecture, GraphBuilder, Node
from tinyevo.errors import InvalidArchitecture
from tinyevo.nn import build
from tinyevo.zoo import ds_cnn, resnet8


def test_json_round_trip_keeps_graph_and_fingerprint():
    for arch in (resnet8(), ds_cnn()):
        again = Architecture.from_json(json.loads(arch.dumps()))
        assert again == arch and again.fingerprint() == arch.fingerprint()
        assert again.output_shape == arch.output_shape


@pytest.mark.parametrize("nodes, message", [
    ([Node("a", "conv9d", ("input",), {})], "unknown op 'conv9d'"),
    ([Node("a", "dense", ("input",), {"units": 3})], "needs a flat input"),
    ([Node("a", "relu", ("b",), {})], "input 'b' is not defined"),
    ([Node("a", "conv2d", ("input",), {"out_channels": 4, "kernel": 9, "padding": "valid"})],
     "does not fit"),
    ([Node("a", "conv2d", ("input",), {"out_channels": 4, "stride": 2}),
      Node("b", "add", ("a", "input"), {})], "same shape"),
    ([Node("a", "conv2d", ("input",), {"out_channels": 4, "groups": 2})], "groups=2"),
    ([Node("a", "conv2d", ("input",), {"out_channels": 4, "colour": 1})], "unknown attribute"),
    ([Node("a", "relu", ("input",), {}), Node("a", "relu", ("a",), {})], "used twice"),
])
def test_invalid_graphs_name_the_op_and_the_problem(nodes, message):
    with pytest.raises(InvalidArchitecture, match=message) as error:
        Architecture((8, 8, 3), nodes)
    assert nodes[-1].name in str(error.value) or "'a'" in str(error.value)


def test_fingerprint_ignores_names_identity_and_add_order():
    def net(order, extra_identity):
        g = GraphBuilder((8, 8, 4))
        a = g.conv2d(g.input, 4, name="first")
        b = g.conv2d(g.input, 4, kernel=1, name="second")
        if extra_identity:
            b = g.identity(b)
        return g.build(g.add(*(a, b) if order else (b, a)))
    assert net(True, False).fingerprint() == net(False, True).fingerprint()
    g = GraphBuilder((8, 8, 4))
    different = g.build(g.add(g.conv2d(g.input, 4), g.conv2d(g.input, 4, kernel=5)))
    assert different.fingerprint() != net(True, False).fingerprint()


def _single(op_builder, shape=(7, 9, 3)):
    g = GraphBuilder(shape)
    arch = g.build(op_builder(g))
    module = build(arch).eval()
    x = torch.randn(2, shape[2], shape[0], shape[1])
    return arch, module, x


def test_same_padding_conv_matches_torch_same_padding():
    arch, module, x = _single(lambda g: g.conv2d(g.input, 5, kernel=3))
    conv = module.layers["conv2d_1"].conv
    expected = F.conv2d(x, conv.weight, conv.bias, padding="same")
    torch.testing.assert_close(module(x), expected)
    assert tuple(module(x).shape[1:]) == (arch.output_shape[2], *arch.output_shape[:2])


def test_strided_same_padding_puts_the_odd_pixel_after():
    # TensorFlow SAME, stride 2, kernel 3 on 8 pixels: total padding 1, all of it at the end.
    arch, module, x = _single(lambda g: g.conv2d(g.input, 2, kernel=3, stride=2), shape=(8, 8, 1))
    conv = module.layers["conv2d_1"].conv
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    torch.testing.assert_close(module(x), expected)
    assert arch.output_shape == (4, 4, 2)


def test_average_pool_excludes_padding_like_tflite():
    _, module, x = _single(lambda g: g.avg_pool(g.input, kernel=3, stride=1, padding="same"))
    expected = F.avg_pool2d(x, 3, 1, padding=1, count_include_pad=False)
    torch.testing.assert_close(module(x), expected)


def test_flatten_is_nhwc_order():
    g = GraphBuilder((2, 3, 4))
    arch = g.build(g.flatten(g.input))
    x = torch.randn(1, 4, 2, 3)
    expected = np.transpose(x.numpy(), (0, 2, 3, 1)).reshape(1, -1)
    np.testing.assert_array_equal(build(arch)(x).numpy(), expected)


def test_parameter_count_matches_torch_for_the_zoo():
    for arch in (resnet8(), ds_cnn()):
        module = build(arch)
        assert sum(p.numel() for p in module.parameters()) == arch.trainable_params()


def test_dead_branches_are_not_built():
    g = GraphBuilder((4, 4, 2))
    g.conv2d(g.input, 8, name="dead")
    arch = g.build(g.relu(g.input))
    assert [n.name for n in arch.live_nodes()] == ["relu_1"]
    assert arch.trainable_params() == 0 and len(list(build(arch).parameters())) == 0
