"""Ops that cut, join or index tensors: Concat, Split, Slice, Pad, Gather.

Slice bounds are clamped as ONNX specifies, per axis of size d: a negative start or end counts
from the end (+ d); for a positive step both are clamped to [0, d]; for a negative step the start
is clamped to [0, d - 1] and the end to [-1, d - 1]. The canonical stop -1 of a negative step
means "run past index 0, inclusive": Python's slice(start, None if stop < 0 else stop, step)
selects the same elements, and len(range(start, stop, step)) is the result length.
"""

from __future__ import annotations

import numpy as np

from s2c.frontend.context import NodeContext
from s2c.frontend.registry import Result, handler
from s2c.frontend.shape_ops import normalised_axes


def _ints(array: np.ndarray | tuple) -> list[int]:
    return [int(v) for v in np.asarray(array).reshape(-1)]


@handler("Concat")
def lower_concat(ctx: NodeContext) -> list[Result]:
    """Concat -> concat along one (non-negative) axis."""
    axis = ctx.normalise_axis(int(ctx.attr("axis", 1)), len(ctx.input_shape(0)))
    return [ctx.emit("concat", ctx.inputs(), {"axis": axis})]


def _split_sizes(ctx: NodeContext, size: int) -> list[int]:
    """The split operand or attribute, else num_outputs parts (last smaller), else equal parts."""
    count = len(ctx.node.output)
    given = ctx.require_constant(1, "split") if ctx.has_input(1) else ctx.attr("split")
    if given is not None:
        sizes = _ints(given)
    elif ctx.has_attr("num_outputs"):
        parts = int(ctx.attr("num_outputs"))
        chunk = -(-size // parts)
        sizes = [chunk] * (parts - 1) + [size - chunk * (parts - 1)]
    else:
        sizes = [size // count] * count
    if len(sizes) != count or sum(sizes) != size or min(sizes) < 0:
        ctx.unsupported(f"cannot split a dimension of {size} into {count} parts {sizes}")
    return sizes


@handler("Split")
def lower_split(ctx: NodeContext) -> list[Result]:
    """Split -> split with explicit sizes (split operand or attribute, num_outputs or equal)."""
    shape = ctx.input_shape(0)
    axis = ctx.normalise_axis(int(ctx.attr("axis", 0)), len(shape))
    sizes = _split_sizes(ctx, shape[axis])
    names = [n or f"{ctx.name}/part{i}" for i, n in enumerate(ctx.node.output)]
    attrs = {"axis": axis, "sizes": tuple(sizes)}
    return list(ctx.emit_many("split", [ctx.input(0)], attrs, names))


def _slice_operands(ctx: NodeContext, rank: int) -> tuple[list[int], ...]:
    """starts, ends, axes, steps: attributes before opset 10, constant operands after."""
    if ctx.opset < 10:
        starts, ends = _ints(ctx.attr("starts", ())), _ints(ctx.attr("ends", ()))
        axes = ctx.attr("axes")
        steps = None
    else:
        starts = _ints(ctx.require_constant(1, "starts"))
        ends = _ints(ctx.require_constant(2, "ends"))
        axes = ctx.require_constant(3, "axes") if ctx.has_input(3) else None
        steps = ctx.require_constant(4, "steps") if ctx.has_input(4) else None
    axes = list(range(len(starts))) if axes is None else _ints(axes)
    steps = [1] * len(starts) if steps is None else _ints(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        ctx.unsupported("starts, ends, axes and steps differ in length")
    if 0 in steps:
        ctx.unsupported("a slice step is 0")
    return starts, ends, normalised_axes(ctx, axes, rank), steps


def clamp_slice(start: int, end: int, step: int, size: int) -> tuple[int, int, int]:
    """ONNX clamping of one axis's bounds; stop -1 (negative step) runs to index 0 inclusive."""
    if size == 0:
        return 0, 0, step
    start = start + size if start < 0 else start
    end = end + size if end < 0 else end
    if step > 0:
        return min(max(start, 0), size), min(max(end, 0), size), step
    return min(max(start, 0), size - 1), min(max(end, -1), size - 1), step


@handler("Slice")
def lower_slice(ctx: NodeContext) -> list[Result]:
    """Slice -> slice with a clamped (start, stop, step) for every axis (see the module doc)."""
    shape = ctx.input_shape(0)
    bounds = [(0, d, 1) for d in shape]
    for start, end, axis, step in zip(*_slice_operands(ctx, len(shape)), strict=True):
        bounds[axis] = clamp_slice(start, end, step, shape[axis])
    attrs = {
        "starts": tuple(b[0] for b in bounds),
        "stops": tuple(b[1] for b in bounds),
        "steps": tuple(b[2] for b in bounds),
    }
    return [ctx.emit("slice", [ctx.input(0)], attrs)]


def _pad_operands(ctx: NodeContext) -> tuple[list[int], float]:
    """pads and the constant value: attributes before opset 11, constant operands after."""
    if ctx.opset < 11:
        return _ints(ctx.attr("pads", ())), float(ctx.attr("value", 0.0))
    pads = _ints(ctx.require_constant(1, "pads"))
    if not ctx.has_input(2):
        return pads, 0.0
    value = np.asarray(ctx.require_constant(2, "constant_value")).reshape(-1)
    return pads, float(value[0]) if value.size else 0.0


@handler("Pad")
def lower_pad(ctx: NodeContext) -> list[Result]:
    """Pad -> pad (constant, reflect or edge) with begin and end padding for every axis."""
    mode = ctx.attr("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        ctx.unsupported(f"mode={mode!r} is not supported; use constant, reflect or edge")
    rank = len(ctx.input_shape(0))
    pads, value = _pad_operands(ctx)
    axes = list(range(rank))
    if ctx.opset >= 18 and ctx.has_input(3):
        axes = normalised_axes(ctx, _ints(ctx.require_constant(3, "axes")), rank)
    if len(pads) != 2 * len(axes):
        ctx.unsupported(f"pads {pads} needs {2 * len(axes)} values")
    full = [0] * (2 * rank)
    for i, axis in enumerate(axes):
        full[axis], full[rank + axis] = pads[i], pads[len(axes) + i]
    attrs = {"pads": tuple(full), "mode": mode, "value": value}
    return [ctx.emit("pad", [ctx.input(0)], attrs)]


@handler("Gather")
def lower_gather(ctx: NodeContext) -> list[Result]:
    """Gather -> gather along one axis; constant negative indices are made non-negative."""
    shape = ctx.input_shape(0)
    axis = ctx.normalise_axis(int(ctx.attr("axis", 0)), len(shape))
    indices = ctx.constant(1)
    if indices is None or not np.any(np.asarray(indices) < 0):
        return [ctx.emit("gather", [ctx.input(0), ctx.input(1)], {"axis": axis})]
    size = shape[axis]
    indices = np.asarray(indices).astype(np.int64)
    if np.any((indices < -size) | (indices >= size)):
        ctx.unsupported(f"an index is outside the {size} entries of axis {axis}")
    positive = ctx.new_constant(np.where(indices < 0, indices + size, indices), "indices")
    return [ctx.emit("gather", [ctx.input(0), positive], {"axis": axis})]
