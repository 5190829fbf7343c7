"""Reductions: reduce -> ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd,
ReduceSumSquare, ReduceL1 or ReduceL2 with keepdims.

`axes` is an attribute before opset 13 (ReduceSum) or 18 (the others) and an int64 operand from
then on. The IR's empty `axes` reduces over no axis, each element alone; ONNX would read no axes
as every axis, so that case is written as the element-wise equivalent: the identity for sum,
mean, max, min and prod, x * x for sum_square, Abs for l1 and Sqrt(x * x) for l2.
"""

from __future__ import annotations

from s2c.export.context import NodeContext
from s2c.export.registry import emitter

REDUCE_OPS = {
    "sum": "ReduceSum",
    "mean": "ReduceMean",
    "max": "ReduceMax",
    "min": "ReduceMin",
    "prod": "ReduceProd",
    "sum_square": "ReduceSumSquare",
    "l1": "ReduceL1",
    "l2": "ReduceL2",
}
SUM_AXES_INPUT_SINCE = 13
AXES_INPUT_SINCE = 18


def axes_input_since(op_type: str) -> int:
    """The first opset in which `op_type` takes its axes as an operand."""
    return SUM_AXES_INPUT_SINCE if op_type == "ReduceSum" else AXES_INPUT_SINCE


@emitter("reduce")
def emit_reduce(ctx: NodeContext) -> None:
    """reduce -> Reduce<Kind>(axes, keepdims); axes as an attribute or operand by opset."""
    kind, axes = ctx.attr("kind"), list(ctx.attr("axes"))
    x, output = ctx.inputs[0], ctx.outputs[0]
    if not axes:
        _reduce_each_element(ctx, kind, x, output)
        return
    op_type = REDUCE_OPS[kind]
    keepdims = int(ctx.attr("keepdims"))
    if ctx.opset >= axes_input_since(op_type):
        ctx.op(op_type, [x, ctx.ints(axes, "axes")], output, keepdims=keepdims)
    else:
        ctx.op(op_type, [x], output, axes=axes, keepdims=keepdims)


def _reduce_each_element(ctx: NodeContext, kind: str, x: str, output: str) -> None:
    """A reduction over no axis: every element reduced alone."""
    if kind in ("sum_square", "l2"):
        square = ctx.op("Mul", [x, x], output if kind == "sum_square" else None, tag="square")
        if kind == "l2":
            ctx.op("Sqrt", [square], output)
    elif kind == "l1":
        ctx.op("Abs", [x], output)
    else:
        ctx.op("Identity", [x], output)
