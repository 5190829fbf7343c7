"""Element-wise binary ops: add, sub, mul, div, max, min, pow and prelu, with numpy broadcasting.

Each is its ONNX namesake. ONNX PRelu broadcasts the slope to the input only (one direction);
an IR prelu whose slope widens the result is written as Where(x < 0, x * slope, x).
"""

from __future__ import annotations

import numpy as np

from s2c.export.context import NodeContext
from s2c.export.registry import add_emitter, emitter

BINARY_OPS = {
    "add": "Add",
    "sub": "Sub",
    "mul": "Mul",
    "div": "Div",
    "max": "Max",
    "min": "Min",
    "pow": "Pow",
}


def _binary_emitter(op: str, op_type: str) -> None:
    def emit(ctx: NodeContext) -> None:
        ctx.op(op_type, list(ctx.inputs), ctx.outputs[0])

    emit.__name__ = f"emit_{op}"
    emit.__doc__ = f"{op} -> {op_type}."
    add_emitter(op, emit)


for _op, _op_type in BINARY_OPS.items():
    _binary_emitter(_op, _op_type)


@emitter("prelu")
def emit_prelu(ctx: NodeContext) -> None:
    """prelu -> PRelu(x, slope), or Where(x < 0, x * slope, x) when the slope widens x."""
    x, slope = ctx.inputs
    if tuple(np.broadcast_shapes(ctx.shape(0), ctx.shape(1))) == ctx.shape(0):
        ctx.op("PRelu", [x, slope], ctx.outputs[0])
        return
    zero = ctx.scalar(0.0, ctx.input_dtypes[0], "zero")
    negative = ctx.op("Less", [x, zero], tag="negative")
    scaled = ctx.op("Mul", [x, slope], tag="scaled")
    ctx.op("Where", [negative, scaled, x], ctx.outputs[0], tag="prelu")
