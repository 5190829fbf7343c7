"""Sliding-window geometry shared by conv and pool, over x[N, C, *S] in channels-first layout.

Along each spatial axis, output index o reads the padded input at o * stride + k * dilation for
the kernel taps k = 0 .. kernel-1 (the padded input starts pad_begin before x). Output sizes are
`ir.ops.window_output_size`, the IR's shape rule. For one tap, the inputs of all output positions
form a strided view of the padded input, so a kernel evaluates as a loop over its few taps with
everything else vectorised.
"""

from __future__ import annotations

import itertools
from typing import Any

from ir.ops import window_output_size


def output_spatial(
    x_shape: tuple[int, ...], kernel: tuple[int, ...], attrs: dict[str, Any], ceil: bool = False
) -> tuple[int, ...]:
    """Spatial output sizes of a sliding window with attrs pads, strides, dilations."""
    rank = len(kernel)
    pads, strides, dilations = attrs["pads"], attrs["strides"], attrs["dilations"]
    return tuple(
        window_output_size(
            x_shape[2 + i], kernel[i], strides[i], pads[i], pads[rank + i], dilations[i], ceil
        )
        for i in range(rank)
    )


def kernel_taps(kernel: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Every kernel tap (one index per spatial axis), in row-major order."""
    return list(itertools.product(*(range(k) for k in kernel)))


def tap_slices(
    tap: tuple[int, ...], out: tuple[int, ...], strides: tuple[int, ...], dilations: tuple[int, ...]
) -> tuple[slice, ...]:
    """Index of xpad[N, C, ...] giving, for one kernel tap, its input at every output position."""
    spatial = tuple(
        slice(k * d, k * d + s * (o - 1) + 1 if o else k * d, s)
        for k, o, s, d in zip(tap, out, strides, dilations, strict=True)
    )
    return (slice(None), slice(None), *spatial)
