"""Float conv of several row slices and parameter sets as one matrix product per parameter set.

A firing group (`backend.schedule`) holds U parameter sets (units), each applied to B buffers
(the row slices that share it, and the samples). Each unit is one BLAS product over all its
buffers at once instead of B small ones:

    cols[u, g, c k, b o] = xpad[u B + b, g C/g + c, o * stride + k * dilation]
    y[u, g, m, b o]      = sum_{c k} weight[u, g M/g + m, c, k] * cols[u, g, c k, b o]

for groups g of C/g input and M/g output channels; y is returned as float32 [U B, M, *out].
The columns and the products are in the weight's type: float32 for a hidden layer, float64 for
the network's head (`backend.kernels.PreparedKernel.accumulate`, docs/numerics.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ir.reference.activation import apply_activation
from ir.reference.conv import pad_zero, window_view
from ir.reference.window import output_spatial


def unit_columns(
    x: np.ndarray, units: int, window: tuple[int, ...], attrs: dict[str, Any], dtype: np.dtype
):
    """(cols [U, C prod(K), B prod(out)] of `dtype`, out) for x [U B, C, *S], unit-major."""
    out = output_spatial(x.shape, window, attrs)
    view = window_view(pad_zero(x, attrs["pads"]), window, out, attrs)  # [U B, C, *K, *out]
    rank = len(window)
    view = view.reshape(units, x.shape[0] // units, *view.shape[1:])  # [U, B, C, *K, *out]
    order = (0, *range(2, 3 + rank), 1, *range(3 + rank, 3 + 2 * rank))
    cols = np.ascontiguousarray(view.transpose(order), dtype=dtype)
    batch = x.shape[0] // units
    return cols.reshape(units, -1, batch * math.prod(out)), out


def conv_units(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, attrs: dict[str, Any]
) -> np.ndarray:
    """Conv of unit u's buffers with unit u's weight, then bias and the fused activation.

    x [U B, C, *S] (unit-major); weight [U, M, C/g, *K]; bias [U, M] or None. Returns float32
    [U B, M, *out].
    """
    units, outputs = weight.shape[:2]
    group = int(attrs["group"])
    window = tuple(weight.shape[3:])
    cols, out = unit_columns(x, units, window, attrs, weight.dtype)
    batch = x.shape[0] // units
    cols = cols.reshape(units, group, -1, cols.shape[-1])
    w = weight.reshape(units, group, outputs // group, -1)
    y = np.matmul(w, cols).reshape(units, outputs, batch, *out)
    if bias is not None:
        y += bias.reshape(units, outputs, 1, *(1,) * len(out))
    y = apply_activation(attrs["activation"], attrs["activation_params"], y)
    y = np.ascontiguousarray(np.swapaxes(y, 1, 2), dtype=np.float32)  # [U, B, M, *out]
    return y.reshape(units * batch, outputs, *out)
