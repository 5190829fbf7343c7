"""Data movement: reshape, transpose, concat, split, slice, pad, gather, expand, tile, identity,
dropout and cast, each as its ONNX namesake; permute as Reshape, Transpose, Reshape.

Shape-like parameters (Reshape's shape, Slice's bounds, Pad's pads, Expand's shape, Tile's
repeats, Split's sizes from opset 13) are int64 initializers. Slice: the IR's stop -1 for a
negative step means "through index 0", which ONNX spells as an end below -dim; any negative IR
stop means "to the far end" (Python's None), written as -2^62 or 2^62 by the step's sign.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import helper

from s2c.export.context import NodeContext
from s2c.export.registry import emitter

RESHAPE_ALLOWZERO_SINCE = 14
SPLIT_INPUT_SINCE = 13
FAR_END = 2**62  # beyond any dimension; ONNX clamps it to the end of the axis


@emitter("reshape")
def emit_reshape(ctx: NodeContext) -> None:
    """reshape -> Reshape with the int64 shape (allowzero=1 for a size-0 axis, opset >= 14)."""
    shape = [int(d) for d in ctx.attr("shape")]
    attrs: dict[str, Any] = {}
    if 0 in shape:
        source = ctx.shape(0)
        copies = all(i < len(source) and source[i] == 0 for i, d in enumerate(shape) if d == 0)
        if ctx.opset >= RESHAPE_ALLOWZERO_SINCE:
            attrs["allowzero"] = 1
        elif not copies:
            ctx.unsupported(
                f"target shape {tuple(shape)} has a size-0 axis, which Reshape before "
                f"opset {RESHAPE_ALLOWZERO_SINCE} reads as 'copy the input dimension'"
            )
    ctx.op("Reshape", [ctx.inputs[0], ctx.ints(shape, "shape")], ctx.outputs[0], **attrs)


@emitter("transpose")
def emit_transpose(ctx: NodeContext) -> None:
    """transpose -> Transpose(perm)."""
    ctx.op("Transpose", [ctx.inputs[0]], ctx.outputs[0], perm=list(ctx.attr("perm")))


@emitter("permute")
def emit_permute(ctx: NodeContext) -> None:
    """permute -> Reshape(view), Transpose(perm), Reshape(shape)."""
    view = ctx.op("Reshape", [ctx.inputs[0], ctx.ints(ctx.attr("view"), "view")], tag="view")
    moved = ctx.op("Transpose", [view], perm=list(ctx.attr("perm")))
    ctx.op("Reshape", [moved, ctx.ints(ctx.attr("shape"), "shape")], ctx.outputs[0])


@emitter("concat")
def emit_concat(ctx: NodeContext) -> None:
    """concat -> Concat(axis)."""
    ctx.op("Concat", list(ctx.inputs), ctx.outputs[0], axis=int(ctx.attr("axis")))


@emitter("split")
def emit_split(ctx: NodeContext) -> None:
    """split -> Split(axis) with the sizes as an operand (opset >= 13) or attribute."""
    axis, sizes = int(ctx.attr("axis")), [int(s) for s in ctx.attr("sizes")]
    name = ctx.builder.node_names.fresh(ctx.node.name)
    if ctx.opset >= SPLIT_INPUT_SINCE:
        inputs = [ctx.inputs[0], ctx.ints(sizes, "sizes")]
        ctx.builder.node("Split", inputs, list(ctx.outputs), name, axis=axis)
    else:
        ctx.builder.node("Split", [ctx.inputs[0]], list(ctx.outputs), name, axis=axis, split=sizes)


@emitter("slice")
def emit_slice(ctx: NodeContext) -> None:
    """slice -> Slice(starts, ends, axes, steps) over every axis."""
    starts, stops, steps = (list(ctx.attr(k)) for k in ("starts", "stops", "steps"))
    ends = [
        stop if stop >= 0 else (FAR_END if step > 0 else -FAR_END)
        for stop, step in zip(stops, steps, strict=True)
    ]
    operands = [
        ctx.inputs[0],
        ctx.ints(starts, "starts"),
        ctx.ints(ends, "ends"),
        ctx.ints(range(len(starts)), "axes"),
        ctx.ints(steps, "steps"),
    ]
    ctx.op("Slice", operands, ctx.outputs[0])


@emitter("pad")
def emit_pad(ctx: NodeContext) -> None:
    """pad -> Pad(pads, constant_value; mode); negative pads crop, as in the IR."""
    mode = ctx.attr("mode")
    operands = [ctx.inputs[0], ctx.ints(ctx.attr("pads"), "pads")]
    if mode == "constant":
        operands.append(ctx.scalar(float(ctx.attr("value")), ctx.input_dtypes[0], "value"))
    ctx.op("Pad", operands, ctx.outputs[0], mode=mode)


@emitter("gather")
def emit_gather(ctx: NodeContext) -> None:
    """gather -> Gather(axis)."""
    ctx.op("Gather", list(ctx.inputs), ctx.outputs[0], axis=int(ctx.attr("axis")))


@emitter("expand")
def emit_expand(ctx: NodeContext) -> None:
    """expand -> Expand with the int64 target shape."""
    ctx.op("Expand", [ctx.inputs[0], ctx.ints(ctx.attr("shape"), "shape")], ctx.outputs[0])


@emitter("tile")
def emit_tile(ctx: NodeContext) -> None:
    """tile -> Tile with the int64 repeats."""
    ctx.op("Tile", [ctx.inputs[0], ctx.ints(ctx.attr("repeats"), "repeats")], ctx.outputs[0])


@emitter("identity")
def emit_identity(ctx: NodeContext) -> None:
    """identity -> Identity."""
    ctx.op("Identity", [ctx.inputs[0]], ctx.outputs[0])


@emitter("dropout")
def emit_dropout(ctx: NodeContext) -> None:
    """dropout -> Dropout without ratio or training_mode (the identity at inference)."""
    ctx.op("Dropout", [ctx.inputs[0]], ctx.outputs[0])


@emitter("cast")
def emit_cast(ctx: NodeContext) -> None:
    """cast -> Cast(to)."""
    if ctx.node.inputs[0].type.quant is not None or ctx.node.outputs[0].type.quant is not None:
        ctx.unsupported("casting a quantised value is ambiguous (its stored or its real values?)")
    to = helper.np_dtype_to_tensor_dtype(np.dtype(ctx.attr("to")))
    ctx.op("Cast", [ctx.inputs[0]], ctx.outputs[0], to=int(to))
