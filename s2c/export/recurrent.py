"""Recurrent ops: gru -> GRU, lstm -> LSTM (one forward or reverse direction), float only.

The IR op's operands are one direction's ONNX tensors without the direction axis, so each is
reshaped to carry it ([1, ...]) and Y[T, 1, B, H] is reshaped back to [T, B, H]. Refused: an
LSTM node whose result is the cell state of every step (ONNX gives only the last, Y_c), and the
int8 kernels: they requantise the hidden state to int8 at every step inside the recurrence
(docs/numerics.md), which no ONNX GRU/LSTM node between Quantize/DequantizeLinear expresses, so
a QDQ model would not compute what the image computes.
"""

from __future__ import annotations

from s2c.export.context import NodeContext
from s2c.export.registry import emitter

INT8_REFUSAL = (
    "--emit-qdq cannot express the int8 recurrent kernel exactly: it requantises the hidden "
    "state to int8 at every step inside the recurrence, which an ONNX {op} node does not; "
    "compare int8 recurrent models with the fp32 model instead (benchmarks/recurrent.py)"
)


def _with_direction_axis(ctx: NodeContext, index: int, tag: str) -> str:
    shape = ctx.shape(index)
    return ctx.op("Reshape", [ctx.inputs[index], ctx.ints((1, *shape), f"{tag}_shape")], tag=tag)


def _emit(ctx: NodeContext, op_type: str) -> None:
    if ctx.node.outputs[0].type.quant is not None:
        ctx.unsupported(INT8_REFUSAL.format(op=op_type))
    if op_type == "LSTM" and ctx.attr("output") == "cell":
        ctx.unsupported("the cell state of every step has no ONNX form (LSTM gives the last)")
    names = ["w", "r", "b", "initial_h", "initial_c", "p"][: len(ctx.inputs) - 1]
    shaped = [_with_direction_axis(ctx, index, name) for index, name in enumerate(names, 1)]
    operands = [ctx.inputs[0], *shaped[:3], "", *shaped[3:]]  # no sequence_lens
    attrs = {
        "hidden_size": int(ctx.attr("hidden_size")),
        "direction": "reverse" if ctx.attr("reverse") else "forward",
    }
    if op_type == "GRU":
        attrs["linear_before_reset"] = int(ctx.attr("linear_before_reset"))
    else:
        attrs["input_forget"] = int(ctx.attr("input_forget"))
    sequence = ctx.op(op_type, operands, tag=op_type.lower(), **attrs)
    shape = ctx.ints(ctx.output_shape, "y_shape")
    ctx.op("Reshape", [sequence, shape], ctx.outputs[0], tag="y")


@emitter("gru")
def emit_gru(ctx: NodeContext) -> None:
    """gru -> GRU (one direction) between Reshapes; int8 refused (see module docstring)."""
    _emit(ctx, "GRU")


@emitter("lstm")
def emit_lstm(ctx: NodeContext) -> None:
    """lstm -> LSTM (one direction) between Reshapes; int8 and cell sequences refused."""
    _emit(ctx, "LSTM")
