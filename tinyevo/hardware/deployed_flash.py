"""The flash of the generated C library of an architecture (``tinyevo export --format c``, the
object ``arm-none-eabi-size`` measures in ``benchmarks/deploy.py``), estimated from its shapes:

    deployed_flash_parts(arch)   # {"constants": ..., "code": ...}
    deployed_flash_bytes(arch)   # their sum

``constants``: the ``static const`` arrays and params structs as ``tinyevo.deploy.codegen.kernels``
lays them out. An im2col convolution (``Conv2D.im2col_shape``) stores each filter rounded up to a
multiple of four values (int16 when ``Conv2D.wide_weights`` would take it: at most 32 values and
1 KiB of weights) and 16 bytes per output channel (bias, multiplier and two shift words); every
other conv, depthwise conv and unfolded batch norm (a 1x1 depthwise conv) its int8 weights and 12
bytes per channel (bias, multiplier, shift), a dense layer its weights, 4 bytes per unit and one
multiplier and shift; each array is word aligned, each layer has its params struct (32 or 24
bytes), an add 48 bytes, a concat 13 per input.

``code``: a linear model of the functions the generator emits, ``CODE_BYTES``: a constant, a
call per op that runs code, and per distinct layer shape of each kind (layers of one shape share
one function) a size for that kind, plus, for depthwise convs, a size per kernel position (the
kernels unroll the window). The coefficients were fitted (non-negative least squares) to the code
(text + data - .rodata of ``tinyevo_model.o``, arm-none-eabi-gcc 12.2, -mcpu=cortex-m4 -O2) of
the 14 models of ``benchmarks/deploy.py``: refit when the kernels change, with
``python benchmarks/deployed_flash.py --write`` (it compiles the 14, fits ``fit_code_bytes`` and
rewrites ``CODE_BYTES`` here). Not counted: the harness, libc and the input samples of an MCU test
image.

Two flash figures, then: ``Cost.flash_bytes`` (weights, biases, scales: the unit of published
bounds, MLPerf Tiny's 81,512 B for ResNet-8, uNAS's, and of a board's default flash limit) and
``Cost.deployed_flash_bytes``, this module's (``max_deployed_flash`` limits it).

``tinyevo.hardware.cost.flash_bytes`` (the search's ``flash_bytes``) stays the count of weights,
biases and scales: it is additive over layers, as the DARTS expected cost needs; this module is
the deployed image's figure.
"""
from __future__ import annotations

import numpy as np

from tinyevo.arch import OPS, Architecture
from tinyevo.hardware.fitting import relative_nnls
from tinyevo.hardware.folding import batch_norm_folds
from tinyevo.units import align4

#: (see the module docstring) bytes per unit of each feature of ``code_features``
CODE_BYTES = {
    "base": 0.0, "calls": 133.5, "conv2d": 964.6, "conv2d_direct": 1965.8,
    "depthwise_conv2d": 385.2, "depthwise_taps": 0.0, "grouped_conv2d": 0.0, "dense": 652.0,
    "pool": 627.3, "pool_direct": 0.0, "global_avg_pool": 0.0, "add": 597.6, "concat": 0.0,
    "batch_norm": 202.3,
}


def constant_bytes(arch: Architecture) -> int:
    """``constants`` of ``deployed_flash_parts``."""
    from tinyevo.deploy.codegen.kernels import Conv2D
    folds = batch_norm_folds(arch)
    total = 0
    for node in arch.live_nodes():
        inputs, output = arch.input_shapes(node), arch.shapes[node.name]
        channels = output[2]
        if node.op == "conv2d":
            (kh, kw), groups = node.attrs["kernel"], node.attrs["groups"]
            filter_size = kh * kw * inputs[0][2] // groups
            if Conv2D.im2col_shape(groups, output[0] * output[1], channels, filter_size):
                padded = -(-filter_size // 4) * 4
                wide = padded <= Conv2D.wide_filter_limit and padded * channels <= Conv2D.wide_bytes_limit
                total += padded * channels * (2 if wide else 1) + 16 * channels + 24
            else:
                weights = OPS[node.op].weight_count(node.attrs, inputs)
                total += align4(weights) + 12 * channels + 32
        elif node.op == "dense":
            total += align4(OPS[node.op].weight_count(node.attrs, inputs)) + 4 * channels + 8 + 32
        elif node.op == "batch_norm" and node.name not in folds:
            total += align4(channels) + 12 * channels + 32
        elif node.op == "add":
            total += 48
        elif node.op == "concat":
            total += 13 * len(inputs)
    return total


def code_features(arch: Architecture) -> dict[str, float]:
    """The counts ``CODE_BYTES`` prices: ops that run code (``calls``), distinct layer shapes per
    kind, and the kernel positions of the distinct depthwise convs."""
    from tinyevo.hardware.calibration import costed_ops
    features = dict.fromkeys(CODE_BYTES, 0.0)
    features["base"] = 1.0
    seen = set()
    for node, kind in costed_ops(arch):
        features["calls"] += 1
        inputs, output = arch.input_shapes(node), arch.shapes[node.name]
        attrs = tuple(sorted((k, str(v)) for k, v in node.attrs.items() if k not in ("bias",)))
        key = (kind, tuple(map(tuple, inputs)), tuple(output), attrs)
        if key in seen:
            continue
        seen.add(key)
        if kind in ("conv2d", "pointwise_conv2d"):
            features["conv2d"] += 1
        elif kind in ("max_pool", "avg_pool", "max_pool_2x2", "avg_pool_2x2"):
            features["pool" if output[2] % 4 == 0 else "pool_direct"] += 1
        elif kind == "depthwise_conv2d":
            kh, kw = node.attrs["kernel"]
            features["depthwise_conv2d"] += 1
            features["depthwise_taps"] += kh * kw
        elif kind in features:
            features[kind] += 1
    return features


def code_bytes(arch: Architecture) -> int:
    """``code`` of ``deployed_flash_parts``."""
    return round(sum(CODE_BYTES[name] * value for name, value in code_features(arch).items()))


def deployed_flash_parts(arch: Architecture) -> dict[str, int]:
    """The generated library's flash: ``constants`` and ``code`` (see the module docstring)."""
    return {"constants": constant_bytes(arch), "code": code_bytes(arch)}


def deployed_flash_bytes(arch: Architecture) -> int:
    return sum(deployed_flash_parts(arch).values())


def fit_code_bytes(archs: list[Architecture], code: list[float]) -> dict[str, float]:
    """``CODE_BYTES`` fitted to measured ``code`` bytes (``tinyevo.deploy.codegen.code_size``) of
    ``archs``: non-negative least squares on relative errors (each model weighs the same), each
    coefficient rounded to 0.1 byte. Features no model has get 0."""
    names = list(CODE_BYTES)
    x = np.array([[code_features(arch)[name] for name in names] for arch in archs], dtype=float)
    x = x.reshape(len(archs), len(names))
    solution = relative_nnls(x, code, "fit_code_bytes")
    return {name: round(float(c), 1) for name, c in zip(names, solution)}
