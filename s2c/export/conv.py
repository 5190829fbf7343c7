"""Convolution and matrix products: conv -> Conv, dense -> Gemm or MatMul + Add, matmul -> MatMul.

A fused activation becomes its own node after the product (see `activations`); in a quantised
graph it therefore comes before the result's QuantizeLinear, as the MAC array clamps before it
stores. dense keeps its weight [K, N] as Gemm's B without transposing; Gemm takes 2-D inputs
only, so any other input rank is MatMul followed by Add of the bias.
"""

from __future__ import annotations

from s2c.export.activations import emit_activation
from s2c.export.context import NodeContext
from s2c.export.registry import emitter


def _with_fused_activation(ctx: NodeContext, op_type: str, inputs: list[str], **attrs) -> None:
    """op_type(inputs) into the result, through the fused activation when there is one."""
    function = ctx.attr("activation")
    if function == "none":
        ctx.op(op_type, inputs, ctx.outputs[0], **attrs)
        return
    product = ctx.op(op_type, inputs, **attrs)
    params = tuple(ctx.attr("activation_params"))
    emit_activation(ctx, function, params, product, ctx.outputs[0], ctx.input_dtypes[0])


@emitter("conv")
def emit_conv(ctx: NodeContext) -> None:
    """conv -> Conv (kernel_shape, strides, pads, dilations, group), then its fused activation."""
    attrs = {
        "kernel_shape": list(ctx.shape(1)[2:]),
        "strides": list(ctx.attr("strides")),
        "pads": list(ctx.attr("pads")),
        "dilations": list(ctx.attr("dilations")),
        "group": int(ctx.attr("group")),
    }
    _with_fused_activation(ctx, "Conv", list(ctx.inputs), **attrs)


@emitter("dense")
def emit_dense(ctx: NodeContext) -> None:
    """dense -> Gemm(x, W, b) for 2-D x, else MatMul(x, W) + b; then its fused activation."""
    if len(ctx.shape(0)) == 2:
        _with_fused_activation(ctx, "Gemm", list(ctx.inputs))
        return
    if len(ctx.inputs) == 2:
        _with_fused_activation(ctx, "MatMul", list(ctx.inputs))
        return
    product = ctx.op("MatMul", ctx.inputs[:2])
    _with_fused_activation(ctx, "Add", [product, ctx.inputs[2]])


@emitter("matmul")
def emit_matmul(ctx: NodeContext) -> None:
    """matmul -> MatMul."""
    ctx.op("MatMul", list(ctx.inputs), ctx.outputs[0])
