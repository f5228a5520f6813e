"""The int8 reference executor: runs a ``QuantizedModel`` in NumPy with TFLM's integer arithmetic.

It is the oracle for everything downstream (the .tflite in TFLM and LiteRT, the generated C):
each kernel follows TFLM's reference kernel (``reference_integer_ops``) step by step: offsets,
int32 accumulation, per-channel ``MultiplyByQuantizedMultiplier``, output offset, clamp. Integer
sums are computed exactly (float64 matrix products are exact below 2**53, far above any int8
accumulator), then rounded the way C does.
"""
from __future__ import annotations

import numpy as np

from tinyevo.arch import same_padding
from tinyevo.deploy.fixed_point import multiply_by_quantized_multiplier as requantize
from tinyevo.deploy.quantized_model import QuantizedModel, QuantizedOp, TensorSpec
from tinyevo.errors import TinyevoError


def run_int8(model: QuantizedModel, x: np.ndarray, keep: bool = False):
    """Outputs (int8, NHWC, batch first) for int8 NHWC inputs ``x`` of shape (N, H, W, C) or (H, W, C).

    With ``keep=True`` returns the dict of every tensor instead (for debugging and golden files).
    """
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise TinyevoError(f"run_int8 takes int8 inputs, got {x.dtype}: quantize them with "
                           f"model.input_spec.quantize(x)")
    expected = tuple(model.input_spec.shape[1:])
    if x.shape == expected:
        x = x[None]
    if x.shape[1:] != expected:
        raise TinyevoError(f"input shape {x.shape} does not match the model's (N, {expected})")
    values = {model.input: x.astype(np.int64)}
    for op in model.ops:
        inputs = [values[s] for s in op.inputs]
        specs = [model.tensors[s] for s in op.inputs]
        out = KERNELS[op.kind](op, inputs, specs, model.tensors[op.name])
        values[op.name] = out.reshape((len(x), *model.tensors[op.name].shape[1:]))
    if keep:
        return {name: v.astype(np.int8) for name, v in values.items()}
    return values[model.output].astype(np.int8)


def _clamp(values: np.ndarray, params: dict) -> np.ndarray:
    return np.clip(values, params["activation_min"], params["activation_max"])


def _padded(x: np.ndarray, zero_point: int, op: QuantizedOp, fill: int = 0):
    """``x - zero_point`` padded with ``fill`` for the op's window (TFLite's SAME rule)."""
    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["stride"]
    dh, dw = op.attrs.get("dilation", (1, 1))
    pads = [(0, 0), (0, 0), (0, 0), (0, 0)]
    if op.attrs["padding"] == "same":
        pads[1] = same_padding(x.shape[1], kh, sh, dh)
        pads[2] = same_padding(x.shape[2], kw, sw, dw)
    return np.pad(x - zero_point, pads, constant_values=fill)


def _windows(x: np.ndarray, op: QuantizedOp, out_shape):
    """Yields (i, j, slab): the input seen by kernel tap (i, j) at every output position."""
    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs["stride"]
    dh, dw = op.attrs.get("dilation", (1, 1))
    oh, ow = out_shape[1], out_shape[2]
    for i in range(kh):
        for j in range(kw):
            yield i, j, x[:, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw]


def _requantize_output(acc: np.ndarray, op: QuantizedOp, out: TensorSpec) -> np.ndarray:
    multiplier = np.asarray(op.params["multiplier"], dtype=np.int64)
    shift = np.asarray(op.params["shift"], dtype=np.int64)
    acc = acc + op.bias.astype(np.int64)
    return _clamp(requantize(acc, multiplier, shift) + out.zero_point, op.params)


def conv_2d(op, inputs, specs, out):
    x = _padded(inputs[0], specs[0].zero_point, op).astype(np.float64)
    weights = op.weights.astype(np.float64)  # [out, kh, kw, in / groups]
    groups = op.attrs.get("groups", 1)
    per_group_in, per_group_out = weights.shape[3], weights.shape[0] // groups
    slabs = [slab for _, _, slab in _windows(x, op, out.shape)]
    parts = []
    for g in range(groups):
        columns = np.concatenate([s[..., g * per_group_in:(g + 1) * per_group_in] for s in slabs], -1)
        w = weights[g * per_group_out:(g + 1) * per_group_out].reshape(per_group_out, -1)
        parts.append(columns @ w.T)
    acc = np.concatenate(parts, axis=-1)
    return _requantize_output(np.rint(acc).astype(np.int64), op, out)


def depthwise_conv_2d(op, inputs, specs, out):
    x = _padded(inputs[0], specs[0].zero_point, op)
    multiplier = op.attrs.get("depth_multiplier", 1)
    weights = op.weights[0].astype(np.int64)  # [kh, kw, in * multiplier]
    acc = 0
    for i, j, slab in _windows(x, op, out.shape):
        acc = acc + np.repeat(slab, multiplier, axis=-1) * weights[i, j]
    return _requantize_output(acc, op, out)


def fully_connected(op, inputs, specs, out):
    x = (inputs[0].reshape(len(inputs[0]), -1) - specs[0].zero_point).astype(np.float64)
    acc = np.rint(x @ op.weights.astype(np.float64).T).astype(np.int64)
    return _requantize_output(acc, op, out)


def max_pool_2d(op, inputs, specs, out):
    x = _padded(inputs[0], 0, op, fill=np.iinfo(np.int64).min)
    result = np.max([slab for _, _, slab in _windows(x, op, out.shape)], axis=0)
    return _clamp(result, op.params)


def average_pool_2d(op, inputs, specs, out):
    """Sum over the pixels inside the image, divided by their count, rounded half away from zero."""
    x = _padded(inputs[0], 0, op)
    ones = _padded(np.ones_like(inputs[0][:1, ..., :1]), 0, op)
    total = sum(slab for _, _, slab in _windows(x, op, out.shape))
    count = sum(slab for _, _, slab in _windows(ones, op, out.shape))
    rounded = np.where(total > 0, (total + count // 2) // count, -((-total + count // 2) // count))
    return _clamp(rounded, op.params)


def add(op, inputs, specs, out):
    p = op.params
    scaled = []
    for k, (x, spec) in enumerate(zip(inputs, specs), start=1):
        shifted = (x - spec.zero_point) * (1 << p["left_shift"])
        scaled.append(requantize(shifted, p[f"input{k}_multiplier"], p[f"input{k}_shift"]))
    raw = requantize(scaled[0] + scaled[1], p["output_multiplier"], p["output_shift"])
    return _clamp(raw + out.zero_point, p)


def concatenation(op, inputs, specs, out):
    return np.concatenate(inputs, axis=op.attrs.get("axis", 3))


def reshape(op, inputs, specs, out):
    return inputs[0].reshape(len(inputs[0]), -1)


def relu(op, inputs, specs, out):
    p = op.params
    value = requantize(inputs[0] - specs[0].zero_point, p["multiplier"], p["shift"]) + out.zero_point
    return _clamp(value, p)


def relu6(op, inputs, specs, out):
    return np.clip(inputs[0], op.params["zero"], op.params["six"])


def quantize(op, inputs, specs, out):
    p = op.params
    value = requantize(inputs[0] - specs[0].zero_point, p["multiplier"], p["shift"]) + out.zero_point
    return np.clip(value, -128, 127)


KERNELS = {"conv_2d": conv_2d, "depthwise_conv_2d": depthwise_conv_2d,
           "fully_connected": fully_connected, "max_pool_2d": max_pool_2d,
           "average_pool_2d": average_pool_2d, "add": add, "concatenation": concatenation,
           "reshape": reshape, "relu": relu, "relu6": relu6, "quantize": quantize}
