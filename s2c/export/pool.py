"""Pooling: pool -> MaxPool or AveragePool, global_pool -> GlobalMaxPool or GlobalAveragePool.

Window attributes are written as the IR holds them (explicit pads, no auto_pad). `dilations` and
`ceil_mode` are written only when they differ from ONNX's defaults, so that the model stays valid
for the oldest opset that can express it: AveragePool takes dilations from opset 19 only.
"""

from __future__ import annotations

from typing import Any

from ir.graph import Node
from s2c.export.context import NodeContext
from s2c.export.registry import emitter

AVERAGE_POOL_DILATIONS_SINCE = 19


def _pool_needs(node: Node) -> tuple[int, str] | None:
    """Average pooling with dilations needs AveragePool-19."""
    dilations = tuple(node.attrs.get("dilations", ()))
    if node.attrs.get("kind") == "avg" and any(d != 1 for d in dilations):
        return AVERAGE_POOL_DILATIONS_SINCE, f"average pooling with dilations {dilations}"
    return None


@emitter("pool", needs=_pool_needs)
def emit_pool(ctx: NodeContext) -> None:
    """pool -> MaxPool or AveragePool (kernel_shape, strides, pads, dilations, ceil_mode,
    count_include_pad)."""
    attrs: dict[str, Any] = {
        "kernel_shape": list(ctx.attr("kernel")),
        "strides": list(ctx.attr("strides")),
        "pads": list(ctx.attr("pads")),
    }
    if any(d != 1 for d in ctx.attr("dilations")):
        attrs["dilations"] = list(ctx.attr("dilations"))
    if ctx.attr("ceil_mode"):
        attrs["ceil_mode"] = 1
    if ctx.attr("kind") == "max":
        ctx.op("MaxPool", [ctx.inputs[0]], ctx.outputs[0], **attrs)
        return
    attrs["count_include_pad"] = int(ctx.attr("count_include_pad"))
    ctx.op("AveragePool", [ctx.inputs[0]], ctx.outputs[0], **attrs)


@emitter("global_pool")
def emit_global_pool(ctx: NodeContext) -> None:
    """global_pool -> GlobalMaxPool or GlobalAveragePool."""
    op_type = "GlobalMaxPool" if ctx.attr("kind") == "max" else "GlobalAveragePool"
    ctx.op(op_type, [ctx.inputs[0]], ctx.outputs[0])
