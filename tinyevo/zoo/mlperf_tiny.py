"""MLPerf Tiny v1.0 reference models (github.com/mlcommons/tiny, benchmark/training)."""
from __future__ import annotations

from tinyevo.arch import Architecture, GraphBuilder


def resnet8(num_classes: int = 10) -> Architecture:
    """Image classification, CIFAR-10: 32x32x3 input, three residual stacks of 16, 32, 64 channels."""
    g = GraphBuilder((32, 32, 3), name="resnet8")
    x = g.conv_bn_act(g.input, 16, kernel=3)
    for channels, stride in [(16, 1), (32, 2), (64, 2)]:
        y = g.conv_bn_act(x, channels, kernel=3, stride=stride)
        y = g.conv_bn_act(y, channels, kernel=3, act=None)
        shortcut = x if stride == 1 else g.conv2d(x, channels, kernel=1, stride=stride, bias=True)
        x = g.relu(g.add(y, shortcut))
    return g.build(g.dense(g.flatten(g.global_avg_pool(x)), num_classes))


def ds_cnn(num_classes: int = 12) -> Architecture:
    """Keyword spotting: 49x10 MFCC input, a 10x4 stride-2 conv, four depthwise-separable blocks."""
    g = GraphBuilder((49, 10, 1), name="ds_cnn")
    x = g.conv_bn_act(g.input, 64, kernel=(10, 4), stride=2)
    for _ in range(4):
        x = g.depthwise_separable(x, 64, kernel=3)
    return g.build(g.dense(g.flatten(g.global_avg_pool(x)), num_classes))
