"""Integer kernels of the int8 mode, exactly as docs/numerics.md states them.

Accumulations (conv, dense) run as BLAS float products of integer operands, which is exact when
every product and partial sum is an integer the float type represents exactly, whatever the
summation order: below 2^24 in magnitude for float32, 2^53 for float64. With |x - z_x| <= R
(R = max(127 - z_x, z_x + 128)) every partial sum of output channel c is at most
R * sum_k |w[c, k]|; when that bound is below 2^24 for every channel the layer runs in float32
(half the memory traffic, twice the BLAS rate), else in float64 (exact for any int8 layer of
fewer than 2^37 terms). Requantisation is the fixed-point path of `ir.quant`.
"""

from __future__ import annotations

import numpy as np

from ir.quant import (
    INT8_MAX,
    INT8_MIN,
    dequantise,
    multiply_by_quantized_multiplier,
    quantise,
)
from ir.reference import evaluate


def _channel_shape(ndim: int, axis: int) -> list[int]:
    shape = [1] * ndim
    shape[axis] = -1
    return shape


def mbqm(acc: np.ndarray, multiplier, shift) -> np.ndarray:
    """`ir.quant.multiply_by_quantized_multiplier` in fewer passes over the data (same integers).

    With p = acc * multiplier, r = 31 - shift > 0 and h = 2^(r-1), rounding half away from zero
    is floor((p + h) / 2^r) for p >= 0 and -floor((-p + h) / 2^r) = floor((p + h - 1) / 2^r) for
    p < 0, so the result is (p + h - [p < 0]) >> r (an arithmetic shift is a floor division).
    Multipliers with r <= 0 (real multipliers of 1 or more) take the general path.
    """
    right = 31 - np.asarray(shift, dtype=np.int64)
    if np.any(right <= 0):
        return multiply_by_quantized_multiplier(acc, multiplier, shift)
    product = np.multiply(acc, np.asarray(multiplier, dtype=np.int64), dtype=np.int64)
    negative = product < 0
    product += np.int64(1) << (right - 1)
    product -= negative
    product >>= right
    return product


def requantise(acc: np.ndarray, attrs: dict, params: dict, axis: int) -> np.ndarray:
    """int8 = clamp(z_y + mbqm(acc, multiplier[c], shift[c]), low, high), c along `axis`."""
    shape = _channel_shape(acc.ndim, axis)
    scaled = mbqm(acc, params["multiplier"].reshape(shape), params["shift"].reshape(shape))
    scaled += int(attrs["output_zero_point"])
    return np.clip(scaled, attrs["clamp_low"], attrs["clamp_high"]).astype(np.int8)


def _finish(acc: np.ndarray, attrs: dict, params: dict, axis: int) -> np.ndarray:
    """Partial slices return the int32 accumulator; others add bias and requantise."""
    if attrs["partial"]:
        return acc.astype(np.int32)
    if "bias" in params:
        acc = acc + params["bias"].astype(np.int64).reshape(_channel_shape(acc.ndim, axis))
    return requantise(acc, attrs, params, axis)


FLOAT32_EXACT = 1 << 24  # every integer of smaller magnitude is a float32


def exact_weight(weight: np.ndarray, zero_point: int, channel_axis: int) -> np.ndarray:
    """The weight as the float type in which its products with x - z_x sum exactly (above)."""
    reach = max(127 - zero_point, zero_point + 128)
    magnitudes = np.abs(np.moveaxis(weight.astype(np.int64), channel_axis, 0))
    bound = reach * int(magnitudes.reshape(magnitudes.shape[0], -1).sum(axis=1).max(initial=0))
    dtype = np.float32 if bound < FLOAT32_EXACT else np.float64
    return weight.astype(dtype)


def _cached_weight(cache: dict, params: dict, zero_point: int, channel_axis: int) -> np.ndarray:
    """`exact_weight`, converted once per kernel (`cache` lives as long as the kernel)."""
    if "weight" not in cache:
        cache["weight"] = exact_weight(params["weight"], zero_point, channel_axis)
    return cache["weight"]


def conv(attrs: dict, x: np.ndarray, params: dict, cache: dict | None = None) -> np.ndarray:
    """x: (N, C, ...) int8 -> int8 (or int32 partial sums)."""
    zero = int(attrs["input_zero_point"])
    weight = _cached_weight({} if cache is None else cache, params, zero, 0)
    shifted = x.astype(weight.dtype) - weight.dtype.type(zero)
    plain = dict(attrs, activation="none", activation_params=())
    (acc,) = evaluate("conv", plain, [shifted, weight])
    return _finish(acc.astype(np.int64), attrs, params, 1)


def dense(
    attrs: dict,
    x: np.ndarray,
    params: dict,
    cache: dict | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """x[..., K] int8 -> int8 (or int32 partial sums); with `rows`, only those synaptic rows
    (inputs): acc = (x[..., rows] - z_x) @ W[rows], exact when the other inputs equal z_x."""
    zero = int(attrs["input_zero_point"])
    weight = _cached_weight({} if cache is None else cache, params, zero, 1)
    if rows is not None:
        x, weight = x[..., rows], weight[rows]
    shifted = x.astype(weight.dtype) - weight.dtype.type(zero)
    acc = (shifted @ weight).astype(np.int64)
    return _finish(acc, attrs, params, acc.ndim - 1)


def partial_sum(attrs: dict, parts: list[np.ndarray], params: dict) -> np.ndarray:
    acc = np.zeros(parts[0].shape, dtype=np.int64)
    for part in parts:
        acc += part
    axis = int(attrs["channel_axis"]) + 1
    if "bias" in params:
        acc = acc + params["bias"].astype(np.int64).reshape(_channel_shape(acc.ndim, axis))
    return requantise(acc, attrs, params, axis)


def lookup(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    return table[x.astype(np.int16) + 128]


def add_sub(attrs: dict, a: np.ndarray, b: np.ndarray, subtract: bool) -> np.ndarray:
    """TFLite ADD: (q - z) << 20, rescaled per input, summed, rescaled to the output."""
    a_mult, a_shift, b_mult, b_shift, y_mult, y_shift = attrs["rescale"]
    a_scaled = mbqm((a.astype(np.int64) - attrs["a_zero_point"]) << 20, a_mult, a_shift)
    b_scaled = mbqm((b.astype(np.int64) - attrs["b_zero_point"]) << 20, b_mult, b_shift)
    total = a_scaled - b_scaled if subtract else a_scaled + b_scaled
    out = mbqm(total, y_mult, y_shift) + attrs["output_zero_point"]
    return np.clip(out, INT8_MIN, INT8_MAX).astype(np.int8)


def mul(attrs: dict, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    product = (a.astype(np.int64) - attrs["a_zero_point"]) * (
        b.astype(np.int64) - attrs["b_zero_point"]
    )
    scaled = mbqm(product, attrs["multiplier"], attrs["shift"])
    return np.clip(scaled + attrs["output_zero_point"], INT8_MIN, INT8_MAX).astype(np.int8)


def rescale(q: np.ndarray, zero: int, multiplier: int, shift: int, out_zero: int) -> np.ndarray:
    """Requantise an int8 array to other parameters: z_y + mbqm(q - z, s / s_y)."""
    if (multiplier, shift) == (1 << 30, 1) and zero == out_zero:
        return q.astype(np.int8)
    scaled = mbqm(q.astype(np.int64) - zero, multiplier, shift)
    return np.clip(scaled + out_zero, INT8_MIN, INT8_MAX).astype(np.int8)


def to_float(q: np.ndarray, scale: float, zero: int) -> np.ndarray:
    return dequantise(q, scale, zero)


def to_int8(x: np.ndarray, scale: float, zero: int) -> np.ndarray:
    return quantise(x, scale, zero)


def matmul(attrs: dict, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Both operands int8 on the MAC array: acc = sum_k (a - z_a)(b - z_b) (int32; float64
    products of integers below 2^53 are exact), y = clamp(z_y + mbqm(acc, M, shift)) with
    M 2^(shift - 31) = s_a s_b / s_y (see docs/numerics.md)."""
    shifted_a = a.astype(np.float64) - attrs["a_zero_point"]
    shifted_b = b.astype(np.float64) - attrs["b_zero_point"]
    acc = np.matmul(shifted_a, shifted_b).astype(np.int64)
    scaled = mbqm(acc, attrs["multiplier"], attrs["shift"])
    return np.clip(scaled + attrs["output_zero_point"], INT8_MIN, INT8_MAX).astype(np.int8)
