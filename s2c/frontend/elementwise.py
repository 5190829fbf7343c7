"""Element-wise arithmetic: binary ops, variadic chains (Max, Min, Sum, Mean) and PRelu.

Broadcasting follows numpy, as ONNX does from opset 7. Before opset 7, `broadcast=1` with an
`axis` aligns B with A starting at `axis` (B's shape is padded with trailing 1s); PRelu's slope of
shape [C] applies per channel (axis 1). Variadic ops become left-to-right chains of binary nodes;
Mean is the sum times 1/n.
"""

from __future__ import annotations

import numpy as np

from ir.graph import Value
from s2c.frontend.context import NodeContext
from s2c.frontend.registry import Result, add_handler, handler

BINARY_OPS = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow"}
VARIADIC_OPS = {"Max": "max", "Min": "min", "Sum": "add"}


def reshaped_operand(ctx: NodeContext, index: int, shape: tuple[int, ...], tag: str) -> Value:
    """Operand `index` reshaped to `shape`: a new constant, or a reshape node."""
    data = ctx.constant(index)
    if data is not None:
        return ctx.new_constant(np.reshape(data, shape), tag)
    return ctx.emit("reshape", [ctx.input(index)], {"shape": shape}, output=None, tag=tag)


def _legacy_aligned_b(ctx: NodeContext) -> Value:
    """B, aligned with A at `axis` when an opset < 7 node asks for `broadcast=1`."""
    if ctx.opset >= 7 or not ctx.attr("broadcast", 0) or not ctx.has_attr("axis"):
        return ctx.input(1)
    rank_a, shape_b = len(ctx.input_shape(0)), ctx.input_shape(1)
    axis = int(ctx.attr("axis"))
    axis = axis + rank_a if axis < 0 else axis
    trailing = rank_a - axis - len(shape_b)
    if trailing <= 0:
        return ctx.input(1)
    return reshaped_operand(ctx, 1, (*shape_b, *(1,) * trailing), "aligned_b")


def _binary_handler(op_type: str, ir_op: str) -> None:
    def lower(ctx: NodeContext) -> list[Result]:
        return [ctx.emit(ir_op, [ctx.input(0), _legacy_aligned_b(ctx)])]

    lower.__name__ = f"lower_{op_type.lower()}"
    lower.__doc__ = f"{op_type} -> {ir_op} (numpy broadcasting; opset < 7 broadcast/axis aligned)."
    add_handler(op_type, lower)


def _chain(ctx: NodeContext, ir_op: str, *, final: bool) -> Value:
    """ir_op folded left to right over every operand."""
    operands = ctx.inputs()
    if len(operands) == 1:
        return ctx.emit_step("identity", operands, final=final, tag="identity")
    result = operands[0]
    for step, operand in enumerate(operands[1:], start=1):
        last = final and step == len(operands) - 1
        result = ctx.emit_step(ir_op, [result, operand], final=last, tag=f"{ir_op}{step}")
    return result


def _variadic_handler(op_type: str, ir_op: str) -> None:
    def lower(ctx: NodeContext) -> list[Result]:
        return [_chain(ctx, ir_op, final=True)]

    lower.__name__ = f"lower_{op_type.lower()}"
    lower.__doc__ = f"{op_type} -> a chain of {ir_op} nodes (identity for one operand)."
    add_handler(op_type, lower)


for _op_type, _ir_op in BINARY_OPS.items():
    _binary_handler(_op_type, _ir_op)
for _op_type, _ir_op in VARIADIC_OPS.items():
    _variadic_handler(_op_type, _ir_op)


@handler("Mean")
def lower_mean(ctx: NodeContext) -> list[Result]:
    """Mean -> a chain of add nodes, then mul by 1/n."""
    count = len(ctx.inputs())
    if count == 1:
        return [ctx.emit("identity", ctx.inputs())]
    total = _chain(ctx, "add", final=False)
    scale = ctx.new_constant(np.array(1.0 / count, dtype=np.float32), "inverse_count")
    return [ctx.emit("mul", [total, scale])]


@handler("PRelu")
def lower_prelu(ctx: NodeContext) -> list[Result]:
    """PRelu -> prelu(x, slope); before opset 7 a slope of shape [C] applies per channel."""
    shape_x, shape_slope = ctx.input_shape(0), ctx.input_shape(1)
    slope = ctx.input(1)
    per_channel = len(shape_slope) == 1 and len(shape_x) > 2 and shape_slope[0] == shape_x[1]
    if ctx.opset < 7 and per_channel and shape_slope[0] != 1:
        slope = reshaped_operand(ctx, 1, (shape_slope[0], *(1,) * (len(shape_x) - 2)), "slope")
    return [ctx.emit("prelu", [ctx.input(0), slope])]
