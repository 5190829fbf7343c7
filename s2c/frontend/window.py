"""Sliding-window attributes shared by Conv and the pooling ops: strides, dilations, pads.

`auto_pad` becomes explicit pads (begin of every spatial axis, then end). SAME_UPPER and
SAME_LOWER pad so that out = ceil(in / stride): the total padding of an axis is
max(0, (out - 1) * stride + (kernel - 1) * dilation + 1 - in), split in half with the odd unit at
the end (SAME_UPPER) or at the beginning (SAME_LOWER); VALID pads nothing.
"""

from __future__ import annotations

from s2c.frontend.context import NodeContext

AUTO_PADS = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")


def window_ints(ctx: NodeContext, key: str, rank: int) -> tuple[int, ...]:
    """An attribute with one int per spatial axis (default 1 each)."""
    values = tuple(int(v) for v in ctx.attr(key, (1,) * rank))
    if len(values) != rank:
        ctx.unsupported(f"{key} {values} needs {rank} values")
    return values


def check_window_fits(
    ctx: NodeContext,
    sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    dilations: tuple[int, ...],
    pads: tuple[int, ...],
) -> None:
    """The dilated kernel must fit the padded input along every spatial axis."""
    rank = len(kernel)
    for axis, (size, k, dilation) in enumerate(zip(sizes, kernel, dilations, strict=True)):
        extent, padded = (k - 1) * dilation + 1, size + pads[axis] + pads[rank + axis]
        if extent > padded:
            ctx.unsupported(
                f"kernel extent {extent} exceeds the padded input {padded} on axis {axis}"
            )


def explicit_pads(
    ctx: NodeContext,
    sizes: tuple[int, ...],
    kernel: tuple[int, ...],
    strides: tuple[int, ...],
    dilations: tuple[int, ...],
) -> tuple[int, ...]:
    """The node's padding as explicit (begins..., ends...), `auto_pad` resolved."""
    rank = len(kernel)
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    if auto_pad not in AUTO_PADS:
        ctx.unsupported(f"auto_pad={auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
    if auto_pad == "VALID":
        return (0,) * (2 * rank)
    if auto_pad == "NOTSET":
        pads = tuple(int(p) for p in ctx.attr("pads", (0,) * (2 * rank)))
        if len(pads) != 2 * rank:
            ctx.unsupported(f"pads {pads} needs {2 * rank} values")
        return pads
    begins, ends = [], []
    for size, k, stride, dilation in zip(sizes, kernel, strides, dilations, strict=True):
        out = -(-size // stride)
        total = max(0, (out - 1) * stride + (k - 1) * dilation + 1 - size)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return (*begins, *ends)
