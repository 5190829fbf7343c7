"""Normalisations: softmax -> Softmax or LogSoftmax, lrn -> LRN, batch_norm ->
BatchNormalization, instance_norm -> InstanceNormalization.

Before opset 13, Softmax and LogSoftmax normalise over the whole block of axes from `axis` on
(the input coerced to 2-D). That equals the IR's one-axis softmax when every later axis has size
1; otherwise the axis is moved last by a Transpose, normalised there and moved back.
"""

from __future__ import annotations

import math

from s2c.export.context import NodeContext
from s2c.export.registry import emitter

SOFTMAX_ONE_AXIS_SINCE = 13


@emitter("softmax")
def emit_softmax(ctx: NodeContext) -> None:
    """softmax -> Softmax(axis), log=1 -> LogSoftmax(axis); before opset 13 around a Transpose."""
    op_type = "LogSoftmax" if ctx.attr("log") else "Softmax"
    axis, shape = int(ctx.attr("axis")), ctx.shape(0)
    if ctx.opset >= SOFTMAX_ONE_AXIS_SINCE or math.prod(shape[axis + 1 :]) == 1:
        ctx.op(op_type, [ctx.inputs[0]], ctx.outputs[0], axis=axis)
        return
    rank = len(shape)
    perm = [a for a in range(rank) if a != axis] + [axis]
    inverse = [perm.index(a) for a in range(rank)]
    moved = ctx.op("Transpose", [ctx.inputs[0]], tag="axis_last", perm=perm)
    normalised = ctx.op(op_type, [moved], axis=rank - 1)
    ctx.op("Transpose", [normalised], ctx.outputs[0], tag="axis_back", perm=inverse)


@emitter("lrn")
def emit_lrn(ctx: NodeContext) -> None:
    """lrn -> LRN(size, alpha, beta, bias)."""
    ctx.op(
        "LRN",
        [ctx.inputs[0]],
        ctx.outputs[0],
        size=int(ctx.attr("size")),
        alpha=float(ctx.attr("alpha")),
        beta=float(ctx.attr("beta")),
        bias=float(ctx.attr("bias")),
    )


@emitter("batch_norm")
def emit_batch_norm(ctx: NodeContext) -> None:
    """batch_norm -> BatchNormalization(x, scale, bias, mean, var; epsilon), inference."""
    epsilon = float(ctx.attr("epsilon"))
    ctx.op("BatchNormalization", list(ctx.inputs), ctx.outputs[0], epsilon=epsilon)


@emitter("instance_norm")
def emit_instance_norm(ctx: NodeContext) -> None:
    """instance_norm -> InstanceNormalization(x, scale, bias; epsilon)."""
    epsilon = float(ctx.attr("epsilon"))
    ctx.op("InstanceNormalization", list(ctx.inputs), ctx.outputs[0], epsilon=epsilon)
