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

Features of the path the generator takes (``tinyevo/deploy/codegen/kernels.py`` decides it; the
functions here ask its classes, so they follow the kernels when those change): ``weights`` (the
layer's weights: loaded and unpacked per call); ``generic_outputs``, ``generic_valid_macs`` (the
outputs and valid MACs of an op whose kernel does not take the blocks of four channels:
``DepthwiseConv2D.takes_block4``, ``MaxPool2D.takes_block4``, ``AveragePool2D.takes_block4``; an
unfolded batch norm is a 1x1 depthwise conv) and ``generic_inputs`` (a generic pool's window
reads done one channel at a time); ``requantized_inputs`` (a concat's input elements requantized
on the way: those of inherited scale, ``Lowering.requantized`` 2), ``rescaled_inputs`` (those of
inputs with ranges of their own, 1, but the largest such input, taken to have the widest range,
the concat's: requantized unless their range happens to be the concat's, which the fit prices) and
``misaligned_inputs`` (a concat's copied elements from
or to places that are not whole words; an im2col conv's patches of int8 rows of an odd number of
channels); ``wide_filter_macs`` (``filter_macs`` of an im2col conv with int16 weights,
``Conv2D.wide_shape``); ``looped_outputs``, ``looped_filter_macs`` (those of an im2col conv whose
channel pairs are looped over, not unrolled: ``Conv2D.unrolled_pairs``); ``taps`` (output pixels x
kernel positions, the padding's included); ``window_channels`` (``taps`` x output channels);
``dot_calls`` (the dot products a direct ``conv_2d`` calls: one per kernel row inside the input
when it takes rows whole, else per kernel position inside, per block of output channels);
``shared_outputs``, ``shared_calls`` (outputs and 1 when another layer of the network has the same
op and shapes, so that both call one C function that gcc does not inline with its constants: a
relu costs twice as much per element then).

What runs at all comes from ``lowering``: the fold and quantizer rules replayed on the
architecture (a relu or relu6 that cannot fuse into the op before it runs as a kernel of its own,
kinds ``relu``/``relu6``; aliases such as a global pool of a 1x1 map run nothing).

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

from dataclasses import dataclass

import numpy as np

from tinyevo.arch import INPUT, OPS, Architecture, Node
from tinyevo.arch.ops import same_padding
from tinyevo.hardware.fitting import relative_nnls
from tinyevo.hardware.folding import FOLDS_INTO, batch_norm_folds
from tinyevo.hardware.memory import tensor_bytes

FEATURES = ("calls", "macs", "valid_macs", "filter_macs", "outputs", "pixels", "channels",
            "patch_elements", "valid_taps", "inputs", "pixel_inputs", "sums", "padded_window",
            "valid_loads", "window_blocks", "weights", "generic_outputs", "generic_valid_macs",
            "generic_inputs", "requantized_inputs", "wide_filter_macs", "window_channels", "shared_outputs",
            "shared_calls", "misaligned_inputs", "taps", "looped_outputs", "looped_filter_macs", "dot_calls",
            "rescaled_inputs")
NETWORK = "network"
#: the features each kind is fitted on: what its kernel's loops do work for (a feature a kernel
#: does not loop over would only fit noise of the probes)
SHARED = ("shared_outputs", "shared_calls")
DIRECT = ("calls", "valid_macs", "valid_loads", "window_blocks", "outputs", "pixels", "weights",
          "generic_outputs", "generic_valid_macs", "window_channels", "channels", "dot_calls", *SHARED)
POOLED = ("calls", "valid_macs", "patch_elements", "outputs", "pixels", "padded_window", "generic_outputs",
          "generic_inputs", *SHARED)
IM2COL = ("calls", "filter_macs", "patch_elements", "outputs", "pixels", "wide_filter_macs", "channels",
          "valid_taps", "taps", "looped_outputs", "looped_filter_macs", "misaligned_inputs", *SHARED)
KIND_FEATURES = {
    "conv2d": IM2COL,
    "pointwise_conv2d": IM2COL,
    "depthwise_conv2d": DIRECT,
    "grouped_conv2d": DIRECT,
    "conv2d_direct": DIRECT,
    "dense": ("calls", "macs", "outputs", "inputs", *SHARED),
    "max_pool": POOLED, "avg_pool": POOLED, "max_pool_2x2": POOLED, "avg_pool_2x2": POOLED,
    "global_avg_pool": ("calls", "inputs", "outputs", "generic_inputs", "generic_outputs"),
    "add": ("calls", "sums", "outputs", *SHARED),
    "concat": ("calls", "inputs", "outputs", "pixel_inputs", "requantized_inputs", "rescaled_inputs",
               "misaligned_inputs"),
    "batch_norm": ("calls", "outputs", "pixels", "channels", "generic_outputs", "valid_loads", *SHARED),
    "relu": ("calls", "outputs", *SHARED),
    "relu6": ("calls", "outputs", *SHARED),
    NETWORK: ("calls", "inputs", "outputs"),
}
POOLS = ("max_pool", "avg_pool", "global_avg_pool")
#: ops that run no code of their own when fused or aliased (``lowering``): activations fused into
#: the op before them, reshapes, zeros, 1x1 global pools
FREE_OPS = ("relu", "relu6", "identity", "flatten", "zero")
#: the rules of ``tinyevo.deploy.fold`` and ``tinyevo.deploy.quantize``, on architecture ops: which
#: ops absorb a following relu / relu6, which adopt a concat's quantization (so that no
#: requantization runs for them)
FUSES_ACTIVATION = ("conv2d", "dense", "max_pool", "avg_pool", "global_avg_pool", "add", "batch_norm", "zero")
ADOPTS_QUANTIZATION = ("conv2d", "dense", "batch_norm", "zero")
#: ... and which keep their input's quantization (``_same_as_input``)
INHERITS_QUANTIZATION = ("max_pool", "avg_pool", "global_avg_pool", "relu", "relu6", "flatten")


@dataclass(frozen=True)
class Lowering:
    """What the int8 graph makes of an architecture's nodes (``lowering``): ``folds``, the batch
    norms folded into the layer before them; ``free``, the nodes that run no code (fused
    activations, folded batch norms, aliases: identity, flatten, a global pool or flatten of a 1x1
    map, an add with one live input; zeros); ``requantized``, per concat, per input: 0 when its
    producer adopts the concat's quantization (a conv, dense or unfolded batch norm nothing else
    reads), else the quantizer inserts a QUANTIZE (run inside the concat kernel) unless the scales
    happen to match: 2 when the input's scale is inherited from the tensor before it (a pool or a
    standalone relu keeps its input's quantization, not its own narrower range: it never matches
    the concat's), 1 when it has its own range (it matches when it is the widest of the concat's
    inputs, which the shapes cannot tell)."""

    folds: dict
    free: frozenset
    requantized: dict
    shared: frozenset = frozenset()


def lowering(arch: Architecture) -> Lowering:
    """``Lowering`` of ``arch``: ``tinyevo.deploy.fold``'s aliasing and fusion and the quantizer's
    concat plan, replayed on the architecture (tests/test_calibration.py checks it against the
    generated graph of sampled architectures)."""
    folds = batch_norm_folds(arch)
    nodes = arch.live_nodes()
    alias, zeros = {}, set()

    def source(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    for node in nodes:
        sources = [source(s) for s in node.inputs]
        if node.op == "identity" or (node.op in ("flatten", "global_avg_pool")
                                     and arch.shapes[node.inputs[0]][:2] == (1, 1)):
            (zeros.add(node.name) if sources[0] in zeros else alias.__setitem__(node.name, sources[0]))
        elif node.op == "zero":
            zeros.add(node.name)
        elif node.op == "add":
            live = [s for s in sources if s not in zeros]
            if not live:
                zeros.add(node.name)
            elif len(live) == 1:
                alias[node.name] = live[0]
    readers: dict[str, int] = {}
    emitted = [n for n in nodes if n.name not in alias and n.name not in zeros]
    for node in emitted:
        for s in (source(s) for s in node.inputs):
            if not (node.op == "add" and s in zeros):
                readers[s] = readers.get(s, 0) + 1
    out = source(arch.output)
    readers[out] = readers.get(out, 0) + 1
    producer: dict[str, tuple[str, bool]] = {}  # tensor -> (op that computes it, activation fused)
    free = set(alias) | zeros
    for node in emitted:
        s = source(node.inputs[0]) if node.inputs else INPUT
        if s in zeros and s not in producer and node.op != "add":
            producer[s] = ("zero", False)  # emitted where first read: a fill (a depthwise conv's op)
        made = producer.get(s)
        fusable = made is not None and readers.get(s, 0) == 1 and not made[1]
        if node.op == "batch_norm" and node.name in folds and fusable and made[0] in FOLDS_INTO:
            producer[node.name] = producer.pop(s)
            free.add(node.name)
        elif node.op in ("relu", "relu6") and fusable and made[0] in FUSES_ACTIVATION:
            producer[node.name] = (producer.pop(s)[0], True)
            free.add(node.name)
        else:
            producer[node.name] = (node.op, False)
    requantized = {}
    for node in emitted:
        if node.op == "concat":
            flags = []
            for s in map(source, node.inputs):
                made = producer.get(s, ("input", False))[0]
                flags.append(0 if made in ADOPTS_QUANTIZATION and readers.get(s, 0) == 1
                             else 2 if made in INHERITS_QUANTIZATION else 1)
            requantized[node.name] = tuple(flags)
    keys: dict[tuple, list[str]] = {}
    for node in emitted:
        if node.name not in free:
            keys.setdefault(function_key(arch, node), []).append(node.name)
    shared = frozenset(name for names in keys.values() if len(names) > 1 for name in names)
    return Lowering(folds, frozenset(free), requantized, shared)


def function_key(arch: Architecture, node: Node) -> tuple:
    """What decides whether two layers share one generated C function (``emit.share_functions``:
    the same kernel over the same shapes): op, input and output shapes, attributes. A function
    that one layer alone calls is inlined into the model with its constants, one that several call
    is not: another cost per element (``shared_outputs``)."""
    attrs = tuple(sorted((k, str(v)) for k, v in node.attrs.items()))
    return (node.op, tuple(map(tuple, arch.input_shapes(node))), tuple(arch.shapes[node.name]), attrs)


def calibration_kind(arch: Architecture, node: Node, lowered: Lowering | None = None) -> str:
    """The kind whose fitted coefficients price this op ("free" for ops that cost nothing);
    ``lowered``: ``lowering(arch)``, computed when not given."""
    if not isinstance(lowered, Lowering):  # None, or the folds dict callers once passed
        lowered = lowering(arch)
    if node.name in lowered.free:
        return "free"
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
    if node.op in ("relu", "relu6"):
        return node.op  # a standalone activation: one not fused into the op before it
    if node.op in FREE_OPS:
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


def generic_block() -> int:
    """The channels the generic depthwise kernel computes at a time
    (``tinyevo.deploy.codegen.kernels.DepthwiseConv2D.generic_block``)."""
    from tinyevo.deploy.codegen.kernels import DepthwiseConv2D
    return DepthwiseConv2D.generic_block


def direct_blocks(arch: Architecture, node: Node) -> tuple[int, int]:
    """(valid_loads, window_blocks) of a direct convolution kernel (``FEATURES``); (0, 0) else."""
    if node.op == "batch_norm":  # a 1x1 depthwise conv of depth multiplier 1
        h, w, channels = arch.shapes[node.name]
        blocks = h * w * -(-channels // (depthwise_block() if not generic_path(arch, node) else generic_block()))
        return blocks, blocks
    if node.op != "conv2d":
        return 0, 0
    (kh, kw), groups = node.attrs["kernel"], node.attrs["groups"]
    cin, (h, w, cout) = arch.input_shapes(node)[0][2], arch.shapes[node.name]
    taps = valid_taps(arch, node)
    if groups == cin and cin > 1:
        blocks = -(-cout // (depthwise_block() if not generic_path(arch, node) else generic_block()))
        return taps * blocks, h * w * kh * kw * blocks
    block = next(b for b in (4, 2, 1) if (cout // groups) % b == 0)
    runs = cout // block
    return taps * runs * (cin // groups), h * w * kh * kw * runs


def generic_path(arch: Architecture, node: Node) -> bool:
    """Whether the op's kernel takes its generic path (one channel at a time, or the generic
    depthwise kernel) rather than the blocks of four channels (``pool_2d_block4``,
    ``depthwise_conv_2d_block4``): the generator's rules, asked of ``codegen.kernels``. An unfolded
    batch norm runs as a 1x1 depthwise conv of depth multiplier 1, a global pool as an average
    pool over the whole map."""
    from tinyevo.deploy.codegen.kernels import AveragePool2D, DepthwiseConv2D, MaxPool2D
    inputs, output = arch.input_shapes(node), arch.shapes[node.name]
    if node.op == "conv2d" and node.attrs["groups"] == inputs[0][2] > 1:
        return not DepthwiseConv2D.takes_block4(output[2], output[2] // inputs[0][2])
    if node.op == "batch_norm":
        return not DepthwiseConv2D.takes_block4(output[2], 1)
    if node.op == "max_pool":
        return not MaxPool2D.takes_block4(output[2], node.attrs["kernel"])
    if node.op == "avg_pool":
        return not AveragePool2D.takes_block4(output[2], node.attrs["kernel"])
    if node.op == "global_avg_pool":
        return not AveragePool2D.takes_block4(output[2], inputs[0][:2])
    return False


def wide_weights(arch: Architecture, node: Node) -> bool:
    """Whether an im2col conv keeps int16 weights (``Conv2D.wide_shape``, asked of the generator)."""
    from tinyevo.deploy.codegen.kernels import Conv2D
    if node.op != "conv2d" or not im2col(arch, node):
        return False
    (kh, kw), cin = node.attrs["kernel"], arch.input_shapes(node)[0][2]
    return Conv2D.wide_shape(kh * kw * cin, arch.shapes[node.name][2])


def dot_calls(arch: Architecture, node: Node) -> int:
    """The dot products a direct (not im2col) grouped or ungrouped conv kernel (``conv_2d``) calls:
    per output pixel and block of output channels, one per kernel row inside the input when the
    row lies wholly inside and the kernel takes rows whole (``ROW_DOT``: ungrouped, dilation 1
    along the row, a row of more than one value), else one per kernel position inside."""
    if node.op != "conv2d":
        return 0
    (kh, kw), (sh, sw) = node.attrs["kernel"], node.attrs["stride"]
    dh, dw = node.attrs.get("dilation", (1, 1))
    (ih, iw, cin), (oh, ow, cout) = arch.input_shapes(node)[0], arch.shapes[node.name]
    groups = node.attrs["groups"]
    if groups == cin and cin > 1:
        return 0
    same = node.attrs["padding"] == "same"
    top = same_padding(ih, kh, sh, dh)[0] if same else 0
    left = same_padding(iw, kw, sw, dw)[0] if same else 0
    row_dot = groups == 1 and dw == 1 and kw > 1
    rows = sum(1 for oy in range(oh) for ky in range(kh) if 0 <= oy * sh - top + ky * dh < ih)
    per_row = 0
    for ox in range(ow):
        x0 = ox * sw - left
        inside = sum(1 for kx in range(kw) if 0 <= x0 + kx * dw < iw)
        per_row += 1 if row_dot and x0 >= 0 and x0 + kw <= iw else inside
    block = next(b for b in (4, 2, 1) if (cout // groups) % b == 0)
    return rows * per_row * (cout // block)


def looped_channels(arch: Architecture, node: Node) -> bool:
    """Whether an im2col conv's loop over output channel pairs is a loop (more pairs than
    ``Conv2D.unrolled_pairs``), not unrolled whole: another cost per output (asked of the generator)."""
    from tinyevo.deploy.codegen.kernels import Conv2D
    return node.op == "conv2d" and im2col(arch, node) and arch.shapes[node.name][2] // 2 > Conv2D.unrolled_pairs


def op_features(arch: Architecture, node: Node, lowered: Lowering | None = None) -> np.ndarray:
    """``FEATURES`` of one op, in that order (``lowered``: ``lowering(arch)``, computed when not
    given: pass it when pricing every op of a network)."""
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
    elements = sum(tensor_bytes(shape) for shape in inputs)
    weights = (OPS[node.op].weight_count(node.attrs, inputs) if node.op in ("conv2d", "dense")
               else output[2] if node.op == "batch_norm" else 0)
    generic = generic_path(arch, node)
    if node.op == "batch_norm":
        valid = tensor_bytes(output)
    generic_inputs = 0
    if generic and node.op in POOLS:
        window = kernel[0] * kernel[1]
        # the generic average pool sums four channels a word where its int16 sums cannot overflow
        one_by_one = output[2] % 4 if node.op != "max_pool" and window <= 255 else output[2]
        generic_inputs = (taps if node.op != "global_avg_pool" else window) * one_by_one
    lowered = lowering(arch) if lowered is None else lowered
    requantized = maybe = misaligned = 0
    if node.op == "concat":
        flags = lowered.requantized.get(node.name, ())
        requantized = sum(tensor_bytes(shape) for shape, flag in zip(inputs, flags) if flag == 2)
        # of the inputs with ranges of their own, the widest is the concat's and stays as it is:
        # taken to be the largest (the accumulated input of a dense block)
        own = [tensor_bytes(shape) for shape, flag in zip(inputs, flags) if flag == 1]
        maybe = sum(own) - max(own, default=0)
        # the inputs copied (memcpy per pixel) from or to places that are not whole words
        offset = 0
        for shape, flag in zip(inputs, flags):
            if not flag and (shape[2] % 4 or offset % 4 or output[2] % 4):
                misaligned += tensor_bytes(shape)
            offset += shape[2]
    shared = node.name in lowered.shared
    if node.op == "conv2d" and cin % 2 and not wide_weights(arch, node):
        misaligned = patch  # the int8 patches gathered from rows that are not whole halfwords
    looped = looped_channels(arch, node)
    window_channels = pixels * kernel[0] * kernel[1] * output[2] if node.op == "conv2d" else 0
    outputs = tensor_bytes(output)
    named = {"calls": 1, "macs": macs, "valid_macs": valid, "filter_macs": filter_macs, "outputs": outputs,
             "pixels": pixels, "channels": output[2], "patch_elements": patch, "valid_taps": taps,
             "inputs": elements, "pixel_inputs": pixels * len(inputs), "sums": sums, "padded_window": padded,
             "valid_loads": loads, "window_blocks": blocks, "weights": weights,
             "generic_outputs": outputs * generic, "generic_valid_macs": valid * generic,
             "generic_inputs": generic_inputs, "requantized_inputs": requantized,
             "wide_filter_macs": filter_macs * wide_weights(arch, node), "window_channels": window_channels,
             "shared_outputs": outputs * shared, "shared_calls": shared, "misaligned_inputs": misaligned,
             "taps": pixels * kernel[0] * kernel[1], "looped_outputs": outputs * looped,
             "looped_filter_macs": filter_macs * looped, "dot_calls": dot_calls(arch, node),
             "rescaled_inputs": maybe}
    return np.array([named[name] for name in FEATURES], dtype=float)


def network_features(arch: Architecture) -> np.ndarray:
    """``FEATURES`` of the network's own overhead: one call, its input and output elements."""
    features = np.zeros(len(FEATURES))
    features[FEATURES.index("calls")] = 1
    features[FEATURES.index("inputs")] = tensor_bytes(arch.input_shape)
    features[FEATURES.index("outputs")] = tensor_bytes(arch.output_shape)
    return features


def costed_ops(arch: Architecture, lowered: Lowering | None = None) -> list[tuple[Node, str]]:
    """(node, kind) of every live op that is not free, in execution order."""
    lowered = lowering(arch) if lowered is None else lowered
    kinds = [(node, calibration_kind(arch, node, lowered)) for node in arch.live_nodes()]
    return [(node, kind) for node, kind in kinds if kind != "free"]


def fit_kind(features: np.ndarray, instructions: np.ndarray,
             used: tuple[str, ...] = FEATURES) -> tuple[dict[str, float], dict]:
    """Non-negative coefficients (per feature name; 0 for those not ``used``) minimizing the
    squared relative error of ``features @ c`` against ``instructions``, and the fit's relative
    residuals (median, worst)."""
    mask = np.array([name in used for name in FEATURES])
    x = np.asarray(features, dtype=float) * mask
    y = np.asarray(instructions, dtype=float)
    coefficients = relative_nnls(x, y, "fit_kind")
    relative = np.abs(x @ coefficients - y) / y
    fit = {"probes": int(len(y)), "median_relative_error": float(np.median(relative)),
           "worst_relative_error": float(relative.max())}
    return dict(zip(FEATURES, (float(c) for c in coefficients))), fit


def predict(coefficients: dict[str, float], features: np.ndarray) -> float:
    """Instructions the fitted ``coefficients`` of one kind give for one op's ``features``."""
    return float(sum(coefficients.get(name, 0.0) * value for name, value in zip(FEATURES, features)))
