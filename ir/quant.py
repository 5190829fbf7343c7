"""Fixed-point arithmetic of the int8 mode (gemmlowp / TFLite), exact in int64 numpy.

A real multiplier M > 0 is stored as an int32 `multiplier` in [2^30, 2^31) and an int32 `shift`
with M = multiplier * 2^(shift - 31). `multiply_by_quantized_multiplier` applies it to int32
accumulators with the same rounding as gemmlowp: a saturating rounding doubling high multiply,
then a rounding right shift (round half away from zero). See docs/numerics.md.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
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


def _saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a * b + nudge) / 2^31, truncated toward zero; a, b int32 values held in int64."""
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    product = a * b
    nudge = np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    total = product + nudge
    quotient = np.where(total >= 0, total >> 31, -((-total) >> 31))
    return np.where(overflow, INT32_MAX, quotient)


def _rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """x / 2^exponent rounded half away from zero (gemmlowp's RoundingDivideByPOT)."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(
    acc: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """round(acc * M) the gemmlowp way, broadcasting; int64 result."""
    acc = np.asarray(acc, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = np.clip(acc << left, INT32_MIN, INT32_MAX)
    high = _saturating_rounding_doubling_high_mul(shifted, multiplier)
    return _rounding_divide_by_pot(high, right)


def quantise(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """ONNX QuantizeLinear to int8: clip(round_half_even(x / scale) + zero_point)."""
    q = np.rint(np.asarray(x, dtype=np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)


def dequantise(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """ONNX DequantizeLinear: (q - zero_point) * scale in float32."""
    return ((np.asarray(q, dtype=np.int32) - zero_point) * np.float32(scale)).astype(np.float32)


def round_half_away(numerator: np.ndarray, denominator: np.ndarray | np.integer) -> np.ndarray:
    """Integer division rounding half away from zero (TFLite's average pooling)."""
    numerator = np.asarray(numerator, dtype=np.int64)
    denominator = np.asarray(denominator, dtype=np.int64)
    magnitude = (np.abs(numerator) + denominator // 2) // denominator
    return np.where(numerator >= 0, magnitude, -magnitude)
