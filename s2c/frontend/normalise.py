"""Normalisations: BatchNormalization, InstanceNormalization, LRN, Softmax and LogSoftmax.

BatchNormalization is lowered for inference only (training_mode=1, spatial=0 and used running
statistics outputs are unsupported; opset < 7's is_test is ignored). Before opset 13, Softmax and
LogSoftmax coerce the input to 2-D at `axis` and normalise over the whole trailing block: that is
reshape to [prod(shape[:axis]), prod(shape[axis:])], softmax over axis 1, reshape back. From
opset 13 they normalise along the one axis.
"""

from __future__ import annotations

import math

from s2c.frontend.context import NodeContext
from s2c.frontend.registry import Result, handler


@handler("BatchNormalization")
def lower_batch_norm(ctx: NodeContext) -> list[Result]:
    """BatchNormalization (inference) -> batch_norm(x, scale, bias, mean, var)."""
    if ctx.attr("training_mode", 0):
        ctx.unsupported("training_mode=1 is not supported; export the model for inference")
    if ctx.opset < 9 and ctx.attr("spatial", 1) == 0:
        ctx.unsupported("spatial=0 (statistics per activation) is not supported")
    operands = [ctx.input(i) for i in range(5)]
    return [ctx.emit("batch_norm", operands, {"epsilon": float(ctx.attr("epsilon", 1e-5))})]


@handler("InstanceNormalization")
def lower_instance_norm(ctx: NodeContext) -> list[Result]:
    """InstanceNormalization -> instance_norm(x, scale, bias)."""
    attrs = {"epsilon": float(ctx.attr("epsilon", 1e-5))}
    return [ctx.emit("instance_norm", ctx.inputs(), attrs)]


@handler("LRN")
def lower_lrn(ctx: NodeContext) -> list[Result]:
    """LRN -> lrn(size, alpha, beta, bias) across channels of an [N, C, ...] input."""
    if len(ctx.input_shape(0)) < 3:
        ctx.unsupported(f"LRN needs an [N, C, ...] input, got shape {ctx.input_shape(0)}")
    attrs = {
        "size": int(ctx.attr("size")),
        "alpha": float(ctx.attr("alpha", 1e-4)),
        "beta": float(ctx.attr("beta", 0.75)),
        "bias": float(ctx.attr("bias", 1.0)),
    }
    return [ctx.emit("lrn", [ctx.input(0)], attrs)]


def _softmax(ctx: NodeContext, log: int) -> list[Result]:
    shape = ctx.input_shape(0)
    axis = ctx.normalise_axis(int(ctx.attr("axis", 1 if ctx.opset < 13 else -1)), len(shape))
    single_axis = ctx.opset >= 13 or math.prod(shape[axis + 1 :]) == 1
    if single_axis:
        return [ctx.emit("softmax", [ctx.input(0)], {"axis": axis, "log": log})]
    rows, columns = math.prod(shape[:axis]), math.prod(shape[axis:])
    flat = ctx.emit(
        "reshape", [ctx.input(0)], {"shape": (rows, columns)}, output=None, tag="flatten"
    )
    normalised = ctx.emit("softmax", [flat], {"axis": 1, "log": log}, output=None)
    return [ctx.emit("reshape", [normalised], {"shape": shape}, tag="unflatten")]


@handler("Softmax")
def lower_softmax(ctx: NodeContext) -> list[Result]:
    """Softmax -> softmax(axis); before opset 13 over the 2-D coerced input (reshapes around)."""
    return _softmax(ctx, 0)


@handler("LogSoftmax")
def lower_log_softmax(ctx: NodeContext) -> list[Result]:
    """LogSoftmax -> softmax(axis, log=1); before opset 13 over the 2-D coerced input."""
    return _softmax(ctx, 1)
