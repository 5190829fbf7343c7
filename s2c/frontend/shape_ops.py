"""Shape and data-movement ops whose operands fix the result shape at compile time.

Reshape, Flatten, Squeeze and Unsqueeze all become `reshape` to a fully known shape; Transpose,
Expand and Tile keep their IR namesakes; Identity, Dropout (inference) and Cast are element
copies. Shape-like operands (Reshape's shape, axes from opset 13, Expand's shape, Tile's repeats)
must be compile-time constants.
"""

from __future__ import annotations

import math

import numpy as np

from ir.graph import Value
from s2c.frontend.context import NodeContext
from s2c.frontend.dtypes import ir_dtype, onnx_type_name
from s2c.frontend.registry import Result, handler


def _ints(array: np.ndarray) -> list[int]:
    return [int(v) for v in np.asarray(array).reshape(-1)]


def _reshape(ctx: NodeContext, shape: list[int] | tuple[int, ...]) -> Value:
    return ctx.emit("reshape", [ctx.input(0)], {"shape": tuple(int(d) for d in shape)})


def resolve_reshape(
    ctx: NodeContext, source: tuple[int, ...], requested: list[int], allowzero: bool
) -> list[int]:
    """ONNX Reshape's target: 0 copies the input dimension (unless allowzero), -1 is inferred."""
    if not allowzero and any(d == 0 and i >= len(source) for i, d in enumerate(requested)):
        ctx.unsupported(f"shape {requested} copies a dimension the input {source} lacks")
    dims = [source[i] if d == 0 and not allowzero else d for i, d in enumerate(requested)]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        ctx.unsupported(f"shape {requested} is not a valid Reshape target")
    total = math.prod(source)
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or total % known:
            ctx.unsupported(f"cannot reshape {source} to {requested}")
        dims[dims.index(-1)] = total // known
    if math.prod(dims) != total:
        ctx.unsupported(f"cannot reshape {source} to {requested}")
    return dims


@handler("Reshape")
def lower_reshape(ctx: NodeContext) -> list[Result]:
    """Reshape -> reshape to the constant shape operand (0 copies, -1 inferred, allowzero)."""
    requested = _ints(ctx.require_constant(1, "shape"))
    allowzero = bool(ctx.attr("allowzero", 0))
    return [_reshape(ctx, resolve_reshape(ctx, ctx.input_shape(0), requested, allowzero))]


@handler("Flatten")
def lower_flatten(ctx: NodeContext) -> list[Result]:
    """Flatten -> reshape to [prod(shape[:axis]), prod(shape[axis:])]."""
    shape = ctx.input_shape(0)
    axis = int(ctx.attr("axis", 1))
    if not -len(shape) <= axis <= len(shape):
        ctx.unsupported(f"axis {axis} is outside rank {len(shape)}")
    axis = axis + len(shape) if axis < 0 else axis
    return [_reshape(ctx, (math.prod(shape[:axis]), math.prod(shape[axis:])))]


def axes_operand(ctx: NodeContext, input_since: int) -> list[int] | None:
    """The `axes` attribute before opset `input_since`, else the constant axes operand."""
    if ctx.opset < input_since:
        axes = ctx.attr("axes")
        return None if axes is None else [int(a) for a in axes]
    if not ctx.has_input(1):
        return None
    return _ints(ctx.require_constant(1, "axes"))


def normalised_axes(ctx: NodeContext, axes: list[int], rank: int) -> list[int]:
    """Axes made non-negative; repeated axes are an error."""
    result = [ctx.normalise_axis(a, rank) for a in axes]
    if len(set(result)) != len(result):
        ctx.unsupported(f"axes {axes} repeat an axis")
    return result


@handler("Squeeze")
def lower_squeeze(ctx: NodeContext) -> list[Result]:
    """Squeeze -> reshape without the given size-1 axes (all size-1 axes when none given)."""
    shape = ctx.input_shape(0)
    axes = axes_operand(ctx, 13)
    if axes is None:
        drop = [i for i, d in enumerate(shape) if d == 1]
    else:
        drop = normalised_axes(ctx, axes, len(shape))
    if any(shape[a] != 1 for a in drop):
        ctx.unsupported(f"cannot squeeze axes {axes} of shape {shape}: not all have size 1")
    return [_reshape(ctx, [d for i, d in enumerate(shape) if i not in drop])]


@handler("Unsqueeze")
def lower_unsqueeze(ctx: NodeContext) -> list[Result]:
    """Unsqueeze -> reshape with size-1 axes inserted at the given output positions."""
    shape = ctx.input_shape(0)
    axes = axes_operand(ctx, 13)
    if axes is None:
        ctx.unsupported("Unsqueeze needs axes")
    inserted = normalised_axes(ctx, axes, len(shape) + len(axes))
    dims = iter(shape)
    target = [1 if i in inserted else next(dims) for i in range(len(shape) + len(axes))]
    return [_reshape(ctx, target)]


@handler("Transpose")
def lower_transpose(ctx: NodeContext) -> list[Result]:
    """Transpose -> transpose(perm); the default perm reverses the axes."""
    rank = len(ctx.input_shape(0))
    perm = tuple(int(p) for p in ctx.attr("perm", tuple(reversed(range(rank)))))
    return [ctx.emit("transpose", [ctx.input(0)], {"perm": perm})]


@handler("Expand")
def lower_expand(ctx: NodeContext) -> list[Result]:
    """Expand -> expand to broadcast(input shape, shape operand) (bidirectional, as ONNX)."""
    requested = tuple(_ints(ctx.require_constant(1, "shape")))
    try:
        target = tuple(int(d) for d in np.broadcast_shapes(ctx.input_shape(0), requested))
    except ValueError:
        ctx.unsupported(f"shape {ctx.input_shape(0)} does not broadcast to {requested}")
    return [ctx.emit("expand", [ctx.input(0)], {"shape": target})]


@handler("Tile")
def lower_tile(ctx: NodeContext) -> list[Result]:
    """Tile -> tile(repeats) with the constant repeats operand."""
    repeats = tuple(_ints(ctx.require_constant(1, "repeats")))
    return [ctx.emit("tile", [ctx.input(0)], {"repeats": repeats})]


@handler("Identity")
def lower_identity(ctx: NodeContext) -> list[Result]:
    """Identity -> identity (or the constant itself when the operand is constant)."""
    data = ctx.constant(0)
    if data is not None:
        return [data]
    return [ctx.emit("identity", [ctx.input(0)])]


@handler("Dropout")
def lower_dropout(ctx: NodeContext) -> list[Result]:
    """Dropout (inference) -> dropout (the constant itself for a constant operand).

    training_mode=True and a used mask output are unsupported.
    """
    if ctx.has_input(2) and bool(np.any(ctx.require_constant(2, "training_mode"))):
        ctx.unsupported("training_mode=True is not supported; export the model for inference")
    data = ctx.constant(0)
    if data is not None:
        return [data]
    return [ctx.emit("dropout", [ctx.input(0)])]


@handler("Cast")
def lower_cast(ctx: NodeContext) -> list[Result]:
    """Cast -> identity when the IR type does not change (float to float), else cast(to)."""
    to = int(ctx.attr("to"))
    target = ir_dtype(to)
    if target is None:
        ctx.unsupported(f"cast to {onnx_type_name(to)} is not supported")
    x = ctx.input(0)
    if x.type.dtype == target:
        return [ctx.emit("identity", [x])]
    return [ctx.emit("cast", [x], {"to": target})]
