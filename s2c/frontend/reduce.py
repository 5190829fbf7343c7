"""Reductions: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ReduceSumSquare,
ReduceL1, ReduceL2 -> `reduce` with a kind.

`axes` is an attribute before opset 13 (ReduceSum) or 18 (the others) and a constant operand
after. No axes means every axis, unless noop_with_empty_axes=1, which makes the node an identity.
"""

from __future__ import annotations

from s2c.frontend.context import NodeContext
from s2c.frontend.registry import Result, add_handler
from s2c.frontend.shape_ops import axes_operand, normalised_axes

REDUCE_KINDS = {
    "ReduceMean": "mean",
    "ReduceSum": "sum",
    "ReduceMax": "max",
    "ReduceMin": "min",
    "ReduceProd": "prod",
    "ReduceSumSquare": "sum_square",
    "ReduceL1": "l1",
    "ReduceL2": "l2",
}


def _reduce_handler(op_type: str, kind: str) -> None:
    input_since = 13 if op_type == "ReduceSum" else 18

    def lower(ctx: NodeContext) -> list[Result]:
        rank = len(ctx.input_shape(0))
        axes = axes_operand(ctx, input_since)
        if not axes and ctx.attr("noop_with_empty_axes", 0):
            return [ctx.emit("identity", [ctx.input(0)])]
        axes = sorted(normalised_axes(ctx, axes, rank)) if axes else list(range(rank))
        attrs = {"kind": kind, "axes": tuple(axes), "keepdims": int(ctx.attr("keepdims", 1))}
        return [ctx.emit("reduce", [ctx.input(0)], attrs)]

    lower.__name__ = f"lower_{op_type.lower()}"
    lower.__doc__ = f"{op_type} -> reduce(kind={kind}) over the given axes (all when none)."
    add_handler(op_type, lower)


for _op_type, _kind in REDUCE_KINDS.items():
    _reduce_handler(_op_type, _kind)
