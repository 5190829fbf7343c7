"""Convolution, dense and matmul: the products that dominate an interpreter's run time.

conv (ONNX Conv): x[N, C, *S], w[M, C/g, *K], optional bias[M]; g groups of C/g input channels
each feed M/g output channels:

    y[n, m, o] = bias[m] + sum_{c in group(m), k} w[m, c, k] * xpad[n, c, o * stride + k * dilation]

where xpad is x zero-padded by `pads` (begin..., end...). Output sizes follow
`ir.ops.window_output_size` (floor mode). Three evaluation strategies, all exact float32 sums:
- general: im2col (one strided copy per kernel tap into [N, C * prod(K), P]) then one batched
  BLAS matmul over the groups: [g, M/g, C/g * prod(K)] @ [N, g, C/g * prod(K), P];
- 1x1 kernels: the (strided) input itself is the column matrix, no copy when stride is 1;
- depthwise (g == C, any channel multiplier M/C): accumulate w[:, tap] * shifted input over the
  kernel taps, vectorised over batch, channels and positions (a matmul would have K == prod(K)).

dense: y = x[..., K] @ w[K, N] + bias[N]. matmul: numpy matmul (broadcast batch axes).
Both conv and dense apply their fused activation to the biased result.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ir.reference.activation import apply_activation
from ir.reference.window import kernel_taps, output_spatial, tap_slices

Attrs = dict[str, Any]


def pad_zero(x: np.ndarray, pads: tuple[int, ...]) -> np.ndarray:
    """x zero-padded on its spatial axes (axes 2...) by pads = (begin..., end...)."""
    rank = x.ndim - 2
    if not any(pads):
        return x
    shape = [d + pads[i] + pads[rank + i] for i, d in enumerate(x.shape[2:])]
    xpad = np.zeros((*x.shape[:2], *shape), dtype=x.dtype)
    inner = tuple(slice(pads[i], pads[i] + d) for i, d in enumerate(x.shape[2:]))
    xpad[(slice(None), slice(None), *inner)] = x
    return xpad


def window_view(
    xpad: np.ndarray, kernel: tuple[int, ...], out: tuple[int, ...], attrs: Attrs
) -> np.ndarray:
    """A strided view [N, C, *K, *out]: view[n, c, k, o] = xpad[n, c, o*stride + k*dilation]."""
    strides, dilations = attrs["strides"], attrs["dilations"]
    rank = len(kernel)
    extent = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True))
    windows = np.lib.stride_tricks.sliding_window_view(xpad, extent, axis=tuple(range(2, 2 + rank)))
    starts = tuple(
        slice(0, s * (o - 1) + 1 if o else 0, s) for s, o in zip(strides, out, strict=True)
    )
    taps = tuple(slice(None, None, d) for d in dilations)
    windows = windows[(slice(None), slice(None), *starts, *taps)]
    order = (0, 1, *range(2 + rank, 2 + 2 * rank), *range(2, 2 + rank))
    return windows.transpose(order)


def im2col(
    xpad: np.ndarray, kernel: tuple[int, ...], out: tuple[int, ...], attrs: Attrs
) -> np.ndarray:
    """Columns [N, C, *K, *out]: cols[n, c, k, o] = xpad[n, c, o * stride + k * dilation]."""
    if math.prod(kernel) == 1:
        return xpad[tap_slices((0,) * len(kernel), out, attrs["strides"], attrs["dilations"])]
    return np.ascontiguousarray(window_view(xpad, kernel, out, attrs))


def _grouped_matmul(w: np.ndarray, cols: np.ndarray, group: int) -> np.ndarray:
    """[g, M/g, C/g*K] @ [N, g, C/g*K, P] -> [N, M, P], one BLAS call per (sample, group)."""
    batch = cols.shape[0]
    w_groups = w.reshape(group, w.shape[0] // group, -1)
    columns = cols.reshape(batch, group, w_groups.shape[2], -1)
    return np.matmul(w_groups, columns).reshape(batch, w.shape[0], -1)


def _depthwise(xpad: np.ndarray, w: np.ndarray, out: tuple[int, ...], attrs: Attrs) -> np.ndarray:
    """Depthwise conv (one input channel per group): accumulation over kernel taps."""
    batch, channels = xpad.shape[:2]
    multiplier = w.shape[0] // channels
    kernel = tuple(w.shape[2:])
    w_taps = w.reshape(channels, multiplier, *kernel)
    y = np.empty((batch, channels, multiplier, *out), dtype=np.result_type(xpad, w))
    term = np.empty_like(y)
    ones = (1,) * len(kernel)
    for number, tap in enumerate(kernel_taps(kernel)):
        shifted = xpad[tap_slices(tap, out, attrs["strides"], attrs["dilations"])][:, :, None]
        weight_index: tuple[Any, ...] = (slice(None), slice(None), *tap)
        weight = w_taps[weight_index].reshape(channels, multiplier, *ones)
        np.multiply(shifted, weight, out=y if number == 0 else term)
        if number:
            y += term
    return y.reshape(batch, w.shape[0], *out)


def conv(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """N-D grouped convolution with bias and fused activation (see module docstring)."""
    x, w = inputs[0], inputs[1]
    group = attrs["group"]
    kernel = tuple(w.shape[2:])
    out = output_spatial(x.shape, kernel, attrs)
    xpad = pad_zero(x, attrs["pads"])
    if group == x.shape[1] and w.shape[1] == 1 and group > 1:
        y = _depthwise(xpad, w, out, attrs)
    else:
        cols = im2col(xpad, kernel, out, attrs)
        y = _grouped_matmul(w, cols, group).reshape(x.shape[0], w.shape[0], *out)
    if len(inputs) == 3:
        y += inputs[2].reshape(-1, *(1,) * len(kernel))
    return [apply_activation(attrs["activation"], attrs["activation_params"], y)]


def dense(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """x[..., K] @ w[K, N] + bias[N], then the fused activation.

    The leading axes of x are flattened first: one [M, K] @ [K, N] product rather than numpy's
    loop of stacked [1, K] products over them."""
    x, weight = inputs[0], inputs[1]
    y = np.matmul(x.reshape(-1, x.shape[-1]), weight).reshape(*x.shape[:-1], weight.shape[1])
    if len(inputs) == 3:
        y += inputs[2]
    return [apply_activation(attrs["activation"], attrs["activation_params"], y)]


def matmul(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """numpy matmul: 1-D operands are promoted and the added axis removed, batch axes broadcast."""
    return [np.matmul(inputs[0], inputs[1])]


KERNELS = {"conv": conv, "dense": dense, "matmul": matmul}
