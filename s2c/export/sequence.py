"""Sequence-model ops: layer_norm -> LayerNormalization (opset 17; before it, the decomposed
ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add that `passes.fuse_layer_norm` fuses
back), add_layer_norm -> Add then the same, where -> Where, equal -> Equal, less -> Less,
attention -> the head splits (Reshape, Transpose), MatMul, Softmax, MatMul and the head merge
(Transpose, Reshape)."""

from __future__ import annotations

from ir.reference.sequence import head_order, merge_order
from s2c.export.context import NodeContext
from s2c.export.registry import emitter

LAYER_NORMALIZATION_SINCE = 17


@emitter("layer_norm")
def emit_layer_norm(ctx: NodeContext) -> None:
    """layer_norm -> LayerNormalization(x, scale, bias?; axis, epsilon), decomposed before
    opset 17."""
    if ctx.opset < LAYER_NORMALIZATION_SINCE:
        _decomposed_layer_norm(ctx)
        return
    ctx.op(
        "LayerNormalization",
        list(ctx.inputs),
        ctx.outputs[0],
        axis=int(ctx.attr("axis")),
        epsilon=float(ctx.attr("epsilon")),
    )


@emitter("add_layer_norm")
def emit_add_layer_norm(ctx: NodeContext) -> None:
    """add_layer_norm -> Add(x, residual), then layer_norm's nodes on the sum."""
    total = ctx.op("Add", ctx.inputs[:2], tag="sum")
    ctx.inputs = [total, *ctx.inputs[2:]]
    emit_layer_norm(ctx)


@emitter("attention")
def emit_attention(ctx: NodeContext) -> None:
    """attention -> per operand Reshape([..., H, d]) and Transpose to [batch..., H, L, d] (k's
    last two axes swapped), MatMul, Softmax over the keys, MatMul, Transpose and Reshape back."""
    heads, axis = int(ctx.attr("heads")), int(ctx.attr("axis"))
    rank = len(ctx.shape(0))
    split = []
    for index, tag in enumerate(("q", "k", "v")):
        shape = ctx.shape(index)
        view = ctx.ints((*shape[:-1], heads, shape[-1] // heads), f"{tag}_view")
        viewed = ctx.op("Reshape", [ctx.inputs[index], view], tag=f"{tag}_view")
        perm = head_order(rank, axis, transposed=tag == "k")
        split.append(ctx.op("Transpose", [viewed], tag=f"{tag}_heads", perm=perm))
    scores = ctx.op("MatMul", split[:2], tag="scores")
    weights = ctx.op("Softmax", [scores], tag="weights", axis=rank)
    mixed = ctx.op("MatMul", [weights, split[2]], tag="mixed")
    back = ctx.op("Transpose", [mixed], tag="merge", perm=merge_order(rank, axis))
    ctx.op("Reshape", [back, ctx.ints(ctx.output_shape, "shape")], ctx.outputs[0])


@emitter("where")
def emit_where(ctx: NodeContext) -> None:
    """where -> Where(condition, x, y)."""
    ctx.op("Where", list(ctx.inputs), ctx.outputs[0])


@emitter("equal")
def emit_equal(ctx: NodeContext) -> None:
    """equal -> Equal(a, b)."""
    ctx.op("Equal", list(ctx.inputs), ctx.outputs[0])


@emitter("less")
def emit_less(ctx: NodeContext) -> None:
    """less -> Less(a, b)."""
    ctx.op("Less", list(ctx.inputs), ctx.outputs[0])


def _decomposed_layer_norm(ctx: NodeContext) -> None:
    """(x - mean) / sqrt(mean((x - mean)^2) + epsilon) * scale + bias over axes axis.., the
    pattern the frontend fuses back into layer_norm."""
    axes = list(range(int(ctx.attr("axis")), len(ctx.shape(0))))
    x = ctx.inputs[0]
    mean = ctx.op("ReduceMean", [x], tag="mean", axes=axes, keepdims=1)
    centred = ctx.op("Sub", [x, mean], tag="centred")
    two = ctx.scalar(2.0, "float32", "two")
    square = ctx.op("Pow", [centred, two], tag="square")
    var = ctx.op("ReduceMean", [square], tag="var", axes=axes, keepdims=1)
    epsilon = ctx.scalar(float(ctx.attr("epsilon")), "float32", "epsilon")
    std = ctx.op("Sqrt", [ctx.op("Add", [var, epsilon], tag="var_eps")], tag="std")
    normalised = ctx.op("Div", [centred, std], tag="normalised")
    if len(ctx.inputs) == 2:
        ctx.op("Mul", [normalised, ctx.inputs[1]], ctx.outputs[0], tag="scaled")
        return
    scaled = ctx.op("Mul", [normalised, ctx.inputs[1]], tag="scaled")
    ctx.op("Add", [scaled, ctx.inputs[2]], ctx.outputs[0], tag="shifted")
