"""Fixed-point arithmetic of the int8 mode, exact in int64 numpy.

A real multiplier M > 0 is stored as an int32 `multiplier` in [2^30, 2^31) and an int32 `shift`
with M = multiplier * 2^(shift - 31). `multiply_by_quantized_multiplier` applies it to int32
accumulators with one rounding, half away from zero (TFLite's single-rounding variant).
See docs/numerics.md.
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(multiplier, shift) with real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31)."""
    if not (real > 0 and math.isfinite(real)):
        if real == 0:
            return 0, 0
        raise ValueError(f"requantisation multiplier must be positive and finite, got {real}")
    mantissa, exponent = math.frexp(real)  # real = mantissa * 2^exponent, mantissa in [0.5, 1)
    multiplier = round(mantissa * (1 << 31))
    if multiplier == 1 << 31:
        multiplier //= 2
        exponent += 1
    if exponent < -31:  # too small to represent: the result is 0 for any int32 input
        return 0, 0
    return multiplier, exponent


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`quantize_multiplier` per element: int32 arrays of multipliers and shifts."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, dtype=np.float64).ravel()]
    multipliers = np.array([p[0] for p in pairs], dtype=np.int64).reshape(np.shape(reals))
    shifts = np.array([p[1] for p in pairs], dtype=np.int64).reshape(np.shape(reals))
    return multipliers.astype(np.int32), shifts.astype(np.int32)


def accumulator_multipliers(
    x_scale: float, weight_scales: np.ndarray, y_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel (multiplier, shift) of conv/dense: M[c] = s_x s_w[c] / s_y."""
    return quantize_multipliers(x_scale * np.asarray(weight_scales, dtype=np.float64) / y_scale)


def multiply_by_quantized_multiplier(
    acc: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """round(acc * multiplier * 2^(shift - 31)), one rounding, half away from zero; int64.

    TFLite's single-rounding variant: the product of an int32 accumulator and a 31-bit
    multiplier fits int64 exactly, so it is rounded once, not twice as gemmlowp's high multiply
    followed by a rounding shift does (which can be off by one more LSB).
    """
    acc = np.asarray(acc, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    right = 31 - np.asarray(shift, dtype=np.int64)
    product = acc * multiplier
    if np.any(right <= 0):  # multipliers of 2^31 or more: no rounding needed
        product = np.where(right <= 0, product << np.maximum(-right, 0), product)
    bits = np.maximum(right, 1)
    half = np.where(right > 0, np.int64(1) << (bits - 1), 0)
    magnitude = (np.abs(product) + half) >> np.where(right > 0, bits, 0)
    return np.where(product < 0, -magnitude, magnitude)


def quantise(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """ONNX QuantizeLinear to int8: clip(round_half_even(x / scale) + zero_point)."""
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)


def dequantise(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """ONNX DequantizeLinear: (q - zero_point) * scale in float32."""
    return ((np.asarray(q, dtype=np.int32) - zero_point) * np.float32(scale)).astype(np.float32)
