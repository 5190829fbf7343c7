"""Max and average pooling over sliding windows, and global pooling.

pool (ONNX MaxPool / AveragePool), x[N, C, *S], per spatial axis a window of `kernel` taps spaced
`dilation` apart, starting at o * stride - pad_begin for output index o; output sizes from
`ir.ops.window_output_size` (ceil_mode drops a last window that would start in the end padding).

    max: y[o] = max of x over the window taps inside x (padding never wins)
    avg: y[o] = sum of x over the window taps inside x / divisor[o]

The divisor is a product over axes of per-axis tap counts, as in onnxruntime:
- count_include_pad=0: taps inside x, 0 <= position < size;
- count_include_pad=1: taps inside the explicitly padded extent, position < size + pad_end. In
  ceil mode a window may run past the end padding; those taps are not counted. A window's
  begin is never before -pad_begin, so the begin padding always counts.
A window holding no tap of x gives 0 for avg (0 / divisor) and the dtype's lowest value for max.

Evaluation loops over the kernel taps, each a strided view of the padded input, vectorised over
everything else; taps are visited in row-major order, which is onnxruntime's summation order.

global_pool: max or mean over all spatial axes, keeping them as size-1 axes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ir.reference.window import kernel_taps, output_spatial, tap_slices

Attrs = dict[str, Any]


def _lowest(dtype: np.dtype) -> Any:
    """The smallest finite value of a dtype (onnxruntime's initial value for max)."""
    if np.issubdtype(dtype, np.floating):
        return np.finfo(dtype).min
    return np.iinfo(dtype).min


def _pad_for_windows(x: np.ndarray, out: tuple[int, ...], attrs: Attrs, fill: Any) -> np.ndarray:
    """x padded with `fill`: pad_begin before each axis, and after it as far as windows reach."""
    kernel, strides, dilations, pads = (
        attrs[k] for k in ("kernel", "strides", "dilations", "pads")
    )
    widths = [(0, 0), (0, 0)]
    for i in range(len(kernel)):
        reach = (out[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
        widths.append((pads[i], max(reach - pads[i] - x.shape[2 + i], 0)))
    return np.pad(x, widths, mode="constant", constant_values=fill)


def _tap_counts(size: int, out: int, axis: int, attrs: Attrs) -> np.ndarray:
    """Per output index along one axis: the number of window taps that the divisor counts."""
    rank = len(attrs["kernel"])
    pad_begin, pad_end = attrs["pads"][axis], attrs["pads"][rank + axis]
    starts = np.arange(out) * attrs["strides"][axis] - pad_begin
    positions = starts[:, None] + np.arange(attrs["kernel"][axis]) * attrs["dilations"][axis]
    if attrs["count_include_pad"]:
        inside = positions < size + pad_end
    else:
        inside = (positions >= 0) & (positions < size)
    return inside.sum(axis=1)


def _divisor(x_shape: tuple[int, ...], out: tuple[int, ...], attrs: Attrs) -> np.ndarray:
    """Outer product of the per-axis tap counts, at least 1, shaped like the spatial output."""
    divisor = np.ones((), dtype=np.int64)
    for axis, size in enumerate(x_shape[2:]):
        counts = _tap_counts(size, out[axis], axis, attrs)
        divisor = np.multiply.outer(divisor, counts)
    return np.maximum(divisor, 1)


def pool(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Max or average pooling (see module docstring)."""
    x = inputs[0]
    kernel = tuple(attrs["kernel"])
    out = output_spatial(x.shape, kernel, attrs, ceil=bool(attrs["ceil_mode"]))
    is_max = attrs["kind"] == "max"
    xpad = _pad_for_windows(x, out, attrs, _lowest(x.dtype) if is_max else 0)
    y: np.ndarray | None = None
    for tap in kernel_taps(kernel):
        window = xpad[tap_slices(tap, out, attrs["strides"], attrs["dilations"])]
        if y is None:
            y = window.copy()
        elif is_max:
            np.maximum(y, window, out=y)
        else:
            y += window
    assert y is not None, "a pooling kernel has at least one tap"
    if is_max:
        return [y]
    return [(y / _divisor(x.shape, out, attrs).astype(y.dtype)).astype(x.dtype, copy=False)]


def global_pool(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """y[n, c, 1, ...] = max or mean of x[n, c, ...] over all spatial positions."""
    x = inputs[0]
    axes = tuple(range(2, x.ndim))
    if attrs["kind"] == "max":
        return [x.max(axis=axes, keepdims=True)]
    return [x.mean(axis=axes, keepdims=True, dtype=x.dtype)]


KERNELS = {"pool": pool, "global_pool": global_pool}
