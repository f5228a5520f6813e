"""A per-op cost model fitted to instructions measured on an emulated core (``tinyevo calibrate``).

For every op that costs time, the calibrated model predicts the instructions it executes as a
non-negative linear function of its shape (``FEATURES``, computed from the architecture alone)::

    instructions(op) = sum_f  coefficient[kind][f] * feature_f(op)
    instructions(network) = sum over live ops + network overhead (copying the input in and the
                            output out: coefficients of kind ``network`` on its input and output)

The features of an op: ``calls`` (1: a per-call constant), ``macs``; ``valid_macs``, the MACs
(for a pool: the window elements) of the kernel positions that fall inside the input, not in the
SAME padding (what a direct kernel that skips the padding computes); ``filter_macs``, output pixels
x output channels x the filter rounded up to a multiple of four values (what an im2col kernel
computes); ``outputs`` (output elements: requantization), ``pixels`` (output rows x columns: the
loop over positions), ``channels`` (output channels: per-channel set-up), ``patch_elements``
(output pixels x kernel positions x input channels: what an im2col gathers), ``valid_taps``
(pairs of output pixel and kernel position inside the input: a direct kernel's inner loop
starts), ``inputs`` (input elements read, all inputs), ``pixel_inputs`` (output pixels x
number of inputs: one copy per input and position, concat), ``sums`` (output elements x (inputs
that are not ``zero`` - 1): the two-input adds an n-input add runs as) and ``padded_window``
(``valid_macs`` of a pool whose windows reach into the padding, 0 otherwise: the kernel's
path that counts the window's elements inside the input); for a direct kernel (depthwise, grouped, ``conv2d_direct``),
``valid_loads`` (its inner loop's runs: valid MACs / the output channels a run computes, 4, 2 or 1
for a convolution, output pixels x kernel positions inside x blocks of ``depthwise_block()`` channels for a
depthwise) and ``window_blocks`` (the same over every kernel position, the padding's included:
what its loops test).

The kinds (``calibration_kind``) refine ``latency.op_kind`` after the kernels the generated C
picks (``tinyevo/deploy/codegen/kernels.py``; ``im2col`` and ``depthwise_block`` import its rules): a
grouped convolution that is not depthwise is ``grouped_conv2d``, an ungrouped one that the C does
not run over im2col patches (an odd number of output channels, one output pixel, a filter over
1024 values) is ``conv2d_direct``, pooling is split into
``max_pool``, ``avg_pool`` (``_2x2`` for windows of at most 2 x 2) and ``global_avg_pool``; ``batch_norm`` is an unfolded batch norm.

``fit_kind`` fits one kind by non-negative least squares on relative errors (each row divided by
its measured count, so that small layers weigh as much as large ones), ``scipy.optimize.nnls``.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from tinyevo.arch import OPS, Architecture, Node
from tinyevo.arch.ops import same_padding
from tinyevo.hardware.folding import batch_norm_folds
from tinyevo.hardware.memory import tensor_bytes

FEATURES = ("calls", "macs", "valid_macs", "filter_macs", "outputs", "pixels", "channels",
            "patch_elements", "valid_taps", "inputs", "pixel_inputs", "sums", "padded_window",
            "valid_loads", "window_blocks")
NETWORK = "network"
#: the features each kind is fitted on: what its kernel's loops do work for (a feature a kernel
#: does not loop over would only fit noise of the probes)
KIND_FEATURES = {
    "conv2d": ("calls", "filter_macs", "patch_elements", "outputs", "pixels"),
    "pointwise_conv2d": ("calls", "filter_macs", "patch_elements", "outputs", "pixels"),
    "depthwise_conv2d": ("calls", "valid_macs", "valid_loads", "window_blocks", "outputs", "pixels"),
    "grouped_conv2d": ("calls", "valid_macs", "valid_loads", "window_blocks", "outputs", "pixels"),
    "conv2d_direct": ("calls", "valid_macs", "valid_loads", "window_blocks", "outputs", "pixels"),
    "dense": ("calls", "macs", "outputs", "inputs"),
    "max_pool": ("calls", "valid_macs", "patch_elements", "outputs", "pixels", "padded_window"),
    "avg_pool": ("calls", "valid_macs", "patch_elements", "outputs", "pixels", "padded_window"),
    "max_pool_2x2": ("calls", "valid_macs", "patch_elements", "outputs", "pixels", "padded_window"),
    "avg_pool_2x2": ("calls", "valid_macs", "patch_elements", "outputs", "pixels", "padded_window"),
    "global_avg_pool": ("calls", "inputs", "outputs"),
    "add": ("calls", "sums", "outputs"),
    "concat": ("calls", "inputs", "outputs", "pixel_inputs"),
    "batch_norm": ("calls", "outputs", "pixels", "channels"),
    NETWORK: ("calls", "inputs", "outputs"),
}
POOLS = ("max_pool", "avg_pool", "global_avg_pool")
#: ops that run no code of their own: activations fused into the op before them, reshapes, zeros
FREE_OPS = ("relu", "relu6", "identity", "flatten", "zero")


def calibration_kind(arch: Architecture, node: Node, folds: dict[str, str] | None = None) -> str:
    """The kind whose fitted coefficients price this op ("free" for ops that cost nothing);
    ``folds``: ``batch_norm_folds(arch)``, computed when not given."""
    if node.op == "conv2d":
        cin = arch.input_shapes(node)[0][2]
        groups = node.attrs["groups"]
        if groups == cin and cin > 1:
            return "depthwise_conv2d"
        if groups > 1:
            return "grouped_conv2d"
        if not im2col(arch, node):
            return "conv2d_direct"
        return "pointwise_conv2d" if node.attrs["kernel"] == (1, 1) else "conv2d"
    if node.op in FREE_OPS or node.name in (batch_norm_folds(arch) if folds is None else folds):
        return "free"
    if node.op in ("max_pool", "avg_pool") and max(node.attrs["kernel"]) <= 2:
        return f"{node.op}_2x2"  # gcc unrolls the window's loops whole: another cost per element
    if node.op in (*POOLS, "dense", "add", "concat", "batch_norm"):
        return node.op
    raise ValueError(f"the calibrated latency model has no kind for op {node.op!r}: add it to "
                     f"tinyevo/hardware/calibration.py")


def axis_taps(size: int, out: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Pairs (output index, kernel index) along one axis whose input index lies inside the input."""
    before = same_padding(size, kernel, stride, dilation)[0] if padding == "same" else 0
    return sum(1 for o in range(out) for k in range(kernel)
               if 0 <= o * stride - before + k * dilation < size)


def valid_taps(arch: Architecture, node: Node) -> int:
    """Output pixels x kernel positions inside the input (``FEATURES``), for a sliding window."""
    inputs, output = arch.input_shapes(node), arch.shapes[node.name]
    if node.op == "global_avg_pool":
        return inputs[0][0] * inputs[0][1]
    if node.op not in ("conv2d", "max_pool", "avg_pool"):
        return output[0] * output[1]
    attrs = node.attrs
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
    dh, dw = attrs.get("dilation", (1, 1))
    return (axis_taps(inputs[0][0], output[0], kh, sh, dh, attrs["padding"])
            * axis_taps(inputs[0][1], output[1], kw, sw, dw, attrs["padding"]))


def im2col(arch: Architecture, node: Node) -> bool:
    """Whether the generated C runs an ungrouped conv2d over im2col patches: the rule of
    ``tinyevo.deploy.codegen.kernels.Conv2D.im2col_shape`` (imported there, one place)."""
    from tinyevo.deploy.codegen.kernels import Conv2D
    (kh, kw), cin = node.attrs["kernel"], arch.input_shapes(node)[0][2]
    h, w, cout = arch.shapes[node.name]
    return Conv2D.im2col_shape(node.attrs["groups"], h * w, cout, kh * kw * cin)


def depthwise_block() -> int:
    """The channels a depthwise kernel's inner loop computes at a time
    (``tinyevo.deploy.codegen.kernels.DepthwiseConv2D.channel_block``)."""
    from tinyevo.deploy.codegen.kernels import DepthwiseConv2D
    return DepthwiseConv2D.channel_block


def direct_blocks(arch: Architecture, node: Node) -> tuple[int, int]:
    """(valid_loads, window_blocks) of a direct convolution kernel (``FEATURES``); (0, 0) else."""
    if node.op != "conv2d":
        return 0, 0
    (kh, kw), groups = node.attrs["kernel"], node.attrs["groups"]
    cin, (h, w, cout) = arch.input_shapes(node)[0][2], arch.shapes[node.name]
    taps = valid_taps(arch, node)
    if groups == cin and cin > 1:
        blocks = -(-cout // depthwise_block())
        return taps * blocks, h * w * kh * kw * blocks
    block = next(b for b in (4, 2, 1) if (cout // groups) % b == 0)
    runs = cout // block
    return taps * runs * (cin // groups), h * w * kh * kw * runs


def op_features(arch: Architecture, node: Node) -> np.ndarray:
    """``FEATURES`` of one op, in that order."""
    inputs, output = arch.input_shapes(node), arch.shapes[node.name]
    pixels, cin = output[0] * output[1], inputs[0][2]
    kernel = node.attrs.get("kernel", (1, 1)) if node.op in ("conv2d", "max_pool", "avg_pool") else (1, 1)
    if node.op == "global_avg_pool":
        kernel = inputs[0][:2]
    macs = OPS[node.op].macs(node.attrs, inputs, output)
    taps = valid_taps(arch, node)
    per_tap = cin // node.attrs["groups"] * output[2] if node.op == "conv2d" else output[2]
    filter_values = kernel[0] * kernel[1] * (cin // node.attrs.get("groups", 1)) if node.op == "conv2d" else 0
    filter_macs = pixels * output[2] * (-(-filter_values // 4) * 4)
    valid = macs if node.op == "dense" else taps * per_tap
    patch = pixels * kernel[0] * kernel[1] * cin
    summed = sum(1 for source in node.inputs if source in arch.by_name and arch.by_name[source].op != "zero"
                 or source not in arch.by_name)
    sums = tensor_bytes(output) * max(summed - 1, 0) if node.op == "add" else 0
    padded = valid if node.op in ("max_pool", "avg_pool") and patch > valid else 0
    loads, blocks = direct_blocks(arch, node)
    return np.array([1, macs, valid, filter_macs, tensor_bytes(output), pixels, output[2], patch, taps,
                     sum(tensor_bytes(shape) for shape in inputs), pixels * len(inputs), sums, padded,
                     loads, blocks], dtype=float)


def network_features(arch: Architecture) -> np.ndarray:
    """``FEATURES`` of the network's own overhead: one call, its input and output elements."""
    features = np.zeros(len(FEATURES))
    features[FEATURES.index("calls")] = 1
    features[FEATURES.index("inputs")] = tensor_bytes(arch.input_shape)
    features[FEATURES.index("outputs")] = tensor_bytes(arch.output_shape)
    return features


def costed_ops(arch: Architecture) -> list[tuple[Node, str]]:
    """(node, kind) of every live op that is not free, in execution order."""
    folds = batch_norm_folds(arch)
    kinds = [(node, calibration_kind(arch, node, folds)) for node in arch.live_nodes()]
    return [(node, kind) for node, kind in kinds if kind != "free"]


def fit_kind(features: np.ndarray, instructions: np.ndarray,
             used: tuple[str, ...] = FEATURES) -> tuple[dict[str, float], dict]:
    """Non-negative coefficients (per feature name; 0 for those not ``used``) minimizing the
    squared relative error of ``features @ c`` against ``instructions``, and the fit's relative
    residuals (median, worst)."""
    mask = np.array([name in used for name in FEATURES])
    x = np.asarray(features, dtype=float) * mask
    y = np.asarray(instructions, dtype=float)
    if len(x) == 0 or np.any(y <= 0):
        raise ValueError("fit_kind needs at least one measurement, all positive")
    weighted = x / y[:, None]
    scale = np.abs(weighted).max(axis=0)
    scale[scale == 0] = 1.0
    solution, _ = nnls(weighted / scale, np.ones(len(y)), maxiter=50 * x.shape[1])
    coefficients = solution / scale
    relative = np.abs(x @ coefficients - y) / y
    fit = {"probes": int(len(y)), "median_relative_error": float(np.median(relative)),
           "worst_relative_error": float(relative.max())}
    return dict(zip(FEATURES, (float(c) for c in coefficients))), fit


def predict(coefficients: dict[str, float], features: np.ndarray) -> float:
    """Instructions the fitted ``coefficients`` of one kind give for one op's ``features``."""
    return float(sum(coefficients.get(name, 0.0) * value for name, value in zip(FEATURES, features)))
