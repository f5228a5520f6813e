"""The integer arithmetic of TFLite Micro's reference kernels, vectorized with NumPy.

A real multiplier ``M`` (e.g. ``input_scale * filter_scale / output_scale``) is stored as a 31-bit
fixed-point significand and a power-of-two exponent (``quantize_multiplier``, TFLite's
``QuantizeMultiplier``). Applying it to an int32 accumulator is gemmlowp's
``SaturatingRoundingDoublingHighMul`` followed by ``RoundingDivideByPOT`` ("double rounding", the
default build of TFLM and TFLite). Values are carried in int64 arrays and wrapped to int32 where C
would, so that results match the C kernels bit for bit.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """(significand, shift) with ``real ~= significand * 2**(shift - 31)``, as TFLite computes it."""
    if real_multiplier == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real_multiplier)
    significand = round_half_away(fraction * (1 << 31))
    if significand == 1 << 31:
        significand //= 2
        shift += 1
    if shift < -31:  # flushed to zero, as TFLite does for multipliers below ~2**-31
        return 0, 0
    return int(significand), int(shift)


def round_half_away(value: float) -> int:
    """C's ``std::round``: halves go away from zero (Python's ``round`` goes to even)."""
    return int(math.floor(abs(value) + 0.5)) * (1 if value >= 0 else -1)


def wrap_int32(values: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to the int32 range."""
    return ((values + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b) -> np.ndarray:
    """High 32 bits of ``2*a*b`` rounded to nearest; saturates the one overflowing case."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    product = a * b
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))  # C division truncates
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent) -> np.ndarray:
    """``x / 2**exponent`` rounded to nearest, ties away from zero (gemmlowp)."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier, shift) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier`` (double rounding) on int32 values.

    ``multiplier`` and ``shift`` may be scalars or arrays broadcasting against ``x`` (per channel).
    """
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap_int32(np.asarray(x, dtype=np.int64) * (np.int64(1) << left))
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def quantize_value(value: float, scale: float, zero_point: int) -> int:
    """``zero_point + round(value / scale)`` computed in float32, as TFLite's activation ranges are."""
    return int(zero_point) + round_half_away(float(np.float32(value) / np.float32(scale)))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """The int8 clamp of a fused activation (TFLite's ``CalculateActivationRangeQuantized``)."""
    low, high = -128, 127
    if activation in ("relu", "relu6"):
        low = max(low, quantize_value(0.0, scale, zero_point))
    if activation == "relu6":
        high = min(high, quantize_value(6.0, scale, zero_point))
    return low, high
