"""Convolution and matrix products: Conv, Gemm, MatMul.

Conv needs a constant weight [M, C/group, *kernel]; its kernel size comes from the weight and
`auto_pad` becomes explicit pads. Gemm computes Y = alpha * op(A) @ op(B) + beta * C: with a
constant B it becomes dense with weight alpha * op(B) (shape [K, N]) and, when C is a constant
that broadcasts to one row, bias beta * C (shape [N]); any other C is added after the product.
With a non-constant B, Gemm is a matmul followed by mul/add nodes. MatMul by a constant matrix is
dense; any other MatMul is matmul.
"""

from __future__ import annotations

import numpy as np

from ir.graph import Value
from s2c.frontend.context import NodeContext
from s2c.frontend.registry import Result, handler
from s2c.frontend.window import check_window_fits, explicit_pads, window_ints


@handler("Conv")
def lower_conv(ctx: NodeContext) -> list[Result]:
    """Conv (1-D, 2-D, 3-D) -> conv(x, weight, bias?) with explicit pads, strides, dilations."""
    weight = ctx.require_constant(1, "weight")
    shape_x = ctx.input_shape(0)
    if weight.ndim < 3 or len(shape_x) != weight.ndim:
        ctx.unsupported(f"input shape {shape_x} and weight shape {weight.shape} do not fit")
    kernel = tuple(int(k) for k in weight.shape[2:])
    declared = ctx.attr("kernel_shape")
    if declared is not None and tuple(declared) != kernel:
        ctx.unsupported(f"kernel_shape {tuple(declared)} differs from the weight's {kernel}")
    rank = len(kernel)
    strides, dilations = window_ints(ctx, "strides", rank), window_ints(ctx, "dilations", rank)
    pads = explicit_pads(ctx, shape_x[2:], kernel, strides, dilations)
    check_window_fits(ctx, shape_x[2:], kernel, dilations, pads)
    attrs = {
        "strides": strides,
        "pads": pads,
        "dilations": dilations,
        "group": int(ctx.attr("group", 1)),
    }
    return [ctx.emit("conv", ctx.inputs(), attrs)]


@handler("Gemm")
def lower_gemm(ctx: NodeContext) -> list[Result]:
    """Gemm -> dense(A, alpha*op(B), beta*C) for a constant B; else matmul with mul and add."""
    a = ctx.input(0)
    if ctx.attr("transA", 0):
        a = ctx.emit("transpose", [a], {"perm": (1, 0)}, output=None, tag="transpose_a")
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    with_c = ctx.has_input(2) and beta != 0.0
    b = ctx.constant(1)
    if b is None:
        product = _dynamic_product(ctx, a, alpha, final=not with_c)
        return [_add_c(ctx, product, beta) if with_c else product]
    weight = np.asarray(b).T if ctx.attr("transB", 0) else np.asarray(b)
    if weight.ndim != 2:
        ctx.unsupported(f"B must be a matrix, got shape {weight.shape}")
    scaled = weight if alpha == 1.0 else alpha * weight
    operands = [a, ctx.new_constant(np.ascontiguousarray(scaled, dtype=np.float32), "weight")]
    bias = _row_bias(ctx, beta, weight.shape[1]) if with_c else None
    if bias is not None:
        operands.append(bias)
    add_after = with_c and bias is None
    product = ctx.emit_step("dense", operands, final=not add_after, tag="dense")
    return [_add_c(ctx, product, beta) if add_after else product]


def _row_bias(ctx: NodeContext, beta: float, columns: int) -> Value | None:
    """beta * C as a bias of shape [N] when C is a constant that broadcasts to one row."""
    c = ctx.constant(2)
    if c is None or c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
        return None
    row = np.asarray(c).reshape(-1)
    if row.size not in (1, columns):
        return None
    bias = np.broadcast_to(beta * row.astype(np.float32), (columns,))
    return ctx.new_constant(bias.astype(np.float32), "bias")


def _dynamic_product(ctx: NodeContext, a: Value, alpha: float, *, final: bool) -> Value:
    """alpha * (A @ op(B)) for a B that is not a constant."""
    b = ctx.input(1)
    if ctx.attr("transB", 0):
        b = ctx.emit("transpose", [b], {"perm": (1, 0)}, output=None, tag="transpose_b")
    scaled = alpha != 1.0
    product = ctx.emit_step("matmul", [a, b], final=final and not scaled, tag="matmul")
    if not scaled:
        return product
    factor = ctx.new_constant(np.array(alpha, dtype=np.float32), "alpha")
    return ctx.emit_step("mul", [product, factor], final=final, tag="alpha")


def _add_c(ctx: NodeContext, product: Value, beta: float) -> Value:
    """product + beta * C as ONNX output 0."""
    c_data = ctx.constant(2)
    if beta == 1.0:
        c = ctx.input(2)
    elif c_data is not None:
        c = ctx.new_constant((beta * np.asarray(c_data)).astype(np.float32), "scaled_c")
    else:
        factor = ctx.new_constant(np.array(beta, dtype=np.float32), "beta")
        c = ctx.emit("mul", [ctx.input(2), factor], output=None, tag="beta")
    return ctx.emit("add", [product, c])


@handler("MatMul")
def lower_matmul(ctx: NodeContext) -> list[Result]:
    """MatMul -> dense(A, B) when B is a constant matrix, else matmul(A, B)."""
    b = ctx.constant(1)
    if b is not None and b.ndim == 2:
        return [ctx.emit("dense", [ctx.input(0), ctx.input(1)])]
    return [ctx.emit("matmul", [ctx.input(0), ctx.input(1)])]
