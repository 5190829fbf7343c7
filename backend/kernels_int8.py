"""Integer kernels of the int8 mode, exactly as docs/numerics.md states them.

Accumulations (conv, dense) run as float64 products of integer operands: every product of two
int8 values and every sum of up to 2^30 of them is an integer below 2^53, so the float64 result
is exact, and BLAS does the work. Requantisation is the gemmlowp fixed-point path of `ir.quant`.
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


def requantise(acc: np.ndarray, attrs: dict, params: dict, axis: int) -> np.ndarray:
    """int8 = clamp(z_y + mbqm(acc, multiplier[c], shift[c]), low, high), c along `axis`."""
    shape = _channel_shape(acc.ndim, axis)
    scaled = multiply_by_quantized_multiplier(
        acc, params["multiplier"].reshape(shape), params["shift"].reshape(shape)
    )
    out = scaled + int(attrs["output_zero_point"])
    return np.clip(out, attrs["clamp_low"], attrs["clamp_high"]).astype(np.int8)


def _finish(acc: np.ndarray, attrs: dict, params: dict, axis: int) -> np.ndarray:
    """Partial slices return the int32 accumulator; others add bias and requantise."""
    if attrs["partial"]:
        return acc.astype(np.int32)
    if "bias" in params:
        acc = acc + params["bias"].astype(np.int64).reshape(_channel_shape(acc.ndim, axis))
    return requantise(acc, attrs, params, axis)


def conv(attrs: dict, x: np.ndarray, params: dict) -> np.ndarray:
    """x: (N, C, ...) int8 -> int8 (or int32 partial sums)."""
    shifted = x.astype(np.float64) - attrs["input_zero_point"]
    plain = dict(attrs, activation="none", activation_params=())
    (acc,) = evaluate("conv", plain, [shifted, params["weight"].astype(np.float64)])
    return _finish(np.rint(acc).astype(np.int64), attrs, params, 1)


def dense(attrs: dict, x: np.ndarray, params: dict) -> np.ndarray:
    shifted = x.astype(np.float64) - attrs["input_zero_point"]
    acc = np.rint(shifted @ params["weight"].astype(np.float64)).astype(np.int64)
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
    a_scaled = multiply_by_quantized_multiplier(
        (a.astype(np.int64) - attrs["a_zero_point"]) << 20, a_mult, a_shift
    )
    b_scaled = multiply_by_quantized_multiplier(
        (b.astype(np.int64) - attrs["b_zero_point"]) << 20, b_mult, b_shift
    )
    total = a_scaled - b_scaled if subtract else a_scaled + b_scaled
    out = multiply_by_quantized_multiplier(total, y_mult, y_shift) + attrs["output_zero_point"]
    return np.clip(out, INT8_MIN, INT8_MAX).astype(np.int8)


def mul(attrs: dict, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    product = (a.astype(np.int64) - attrs["a_zero_point"]) * (
        b.astype(np.int64) - attrs["b_zero_point"]
    )
    scaled = multiply_by_quantized_multiplier(product, attrs["multiplier"], attrs["shift"])
    return np.clip(scaled + attrs["output_zero_point"], INT8_MIN, INT8_MAX).astype(np.int8)


def rescale(q: np.ndarray, zero: int, multiplier: int, shift: int, out_zero: int) -> np.ndarray:
    """Requantise an int8 array to other parameters: z_y + mbqm(q - z, s / s_y)."""
    if (multiplier, shift) == (1 << 30, 1) and zero == out_zero:
        return q.astype(np.int8)
    scaled = multiply_by_quantized_multiplier(q.astype(np.int64) - zero, multiplier, shift)
    return np.clip(scaled + out_zero, INT8_MIN, INT8_MAX).astype(np.int8)


def to_float(q: np.ndarray, scale: float, zero: int) -> np.ndarray:
    return dequantise(q, scale, zero)


def to_int8(x: np.ndarray, scale: float, zero: int) -> np.ndarray:
    return quantise(x, scale, zero)
