"""Ops of sequence models: LayerNormalization, Where, Equal and Less.

LayerNormalization (opset 17) normalises over the axes `axis`..rank-1 (a negative axis counts
from the end) with a constant scale and an optional constant bias; its optional Mean and
InvStdDev results are training outputs and unsupported when used, and only stash_type 1
(float statistics) exists.
Where, Equal and Less become the IR ops of the same name; on constant operands they are
folded before they reach these handlers, as is the index arithmetic exporters build around
attention (Shape, Gather, Mod, Div, Concat, Unsqueeze).
"""

from __future__ import annotations

from s2c.frontend.context import NodeContext
from s2c.frontend.registry import Result, handler


@handler("LayerNormalization")
def lower_layer_norm(ctx: NodeContext) -> list[Result]:
    """LayerNormalization -> layer_norm(x, scale, bias?) over axes axis..rank-1."""
    if ctx.output_used(1) or ctx.output_used(2):
        ctx.unsupported("the Mean and InvStdDev results (training outputs) are not supported")
    if int(ctx.attr("stash_type", 1)) != 1:
        ctx.unsupported(f"stash_type {ctx.attr('stash_type')} is not supported (only 1, float)")
    for index, what in ((1, "scale"), (2, "bias")):
        if ctx.has_input(index):
            ctx.require_constant(index, what)
    rank = len(ctx.input_shape(0))
    axis = ctx.normalise_axis(int(ctx.attr("axis", -1)), rank)
    attrs = {"axis": axis, "epsilon": float(ctx.attr("epsilon", 1e-5))}
    return [ctx.emit("layer_norm", ctx.inputs(), attrs), None, None]


@handler("Where")
def lower_where(ctx: NodeContext) -> list[Result]:
    """Where -> where(condition, x, y)."""
    if ctx.input_type(0).dtype != "bool":
        ctx.unsupported(f"the condition is {ctx.input_type(0).dtype}, not bool")
    return [ctx.emit("where", ctx.inputs())]


@handler("Equal")
def lower_equal(ctx: NodeContext) -> list[Result]:
    """Equal -> equal(a, b), a bool result."""
    return [ctx.emit("equal", ctx.inputs())]


@handler("Less")
def lower_less(ctx: NodeContext) -> list[Result]:
    """Less -> less(a, b), a bool result."""
    return [ctx.emit("less", ctx.inputs())]
