"""Pooling: MaxPool, AveragePool (1-D, 2-D, 3-D) and their global forms.

Window attributes follow the ONNX defaults (strides and dilations 1, no padding); `auto_pad`
becomes explicit pads. ceil_mode keeps a last, partial window unless it would start inside the
end padding (as onnxruntime). LpPool and MaxPool's Indices output have no lowering.
"""

from __future__ import annotations

from s2c.frontend.context import NodeContext
from s2c.frontend.registry import Result, handler
from s2c.frontend.window import check_window_fits, explicit_pads, window_ints


def _pool_attrs(ctx: NodeContext, kind: str) -> dict:
    """The canonical attributes of a max or average pool node."""
    kernel = tuple(int(k) for k in ctx.attr("kernel_shape", ()))
    shape_x = ctx.input_shape(0)
    if not kernel or len(shape_x) != len(kernel) + 2:
        ctx.unsupported(f"kernel_shape {kernel} does not fit an input of shape {shape_x}")
    rank = len(kernel)
    ceil_mode = int(ctx.attr("ceil_mode", 0))
    if ceil_mode and ctx.attr("auto_pad", "NOTSET") != "NOTSET":
        ctx.unsupported(f"auto_pad={ctx.attr('auto_pad')} together with ceil_mode=1")
    strides, dilations = window_ints(ctx, "strides", rank), window_ints(ctx, "dilations", rank)
    pads = explicit_pads(ctx, shape_x[2:], kernel, strides, dilations)
    check_window_fits(ctx, shape_x[2:], kernel, dilations, pads)
    if ceil_mode:
        # ONNX shape inference keeps a last window that starts past the input and its padding;
        # onnxruntime, the ONNX reference and the IR's shape rule drop it.
        ctx.cross_check_shapes = False
    return {
        "kind": kind,
        "kernel": kernel,
        "strides": strides,
        "pads": pads,
        "dilations": dilations,
        "ceil_mode": ceil_mode,
        "count_include_pad": int(ctx.attr("count_include_pad", 0)),
    }


@handler("MaxPool")
def lower_max_pool(ctx: NodeContext) -> list[Result]:
    """MaxPool -> pool(kind=max); storage_order=1 and a used Indices output are unsupported."""
    if ctx.attr("storage_order", 0) == 1:
        ctx.unsupported("storage_order=1 (column-major indices) is not supported")
    return [ctx.emit("pool", [ctx.input(0)], _pool_attrs(ctx, "max"))]


@handler("AveragePool")
def lower_average_pool(ctx: NodeContext) -> list[Result]:
    """AveragePool -> pool(kind=avg) with count_include_pad, ceil_mode and dilations."""
    return [ctx.emit("pool", [ctx.input(0)], _pool_attrs(ctx, "avg"))]


@handler("GlobalAveragePool")
def lower_global_average_pool(ctx: NodeContext) -> list[Result]:
    """GlobalAveragePool -> global_pool(kind=avg)."""
    return [ctx.emit("global_pool", [ctx.input(0)], {"kind": "avg"})]


@handler("GlobalMaxPool")
def lower_global_max_pool(ctx: NodeContext) -> list[Result]:
    """GlobalMaxPool -> global_pool(kind=max)."""
    return [ctx.emit("global_pool", [ctx.input(0)], {"kind": "max"})]
