"""Element-wise activations: each function of `ir.activations` as ONNX nodes.

Most functions are one ONNX op whose attributes are the IR parameters in order. Where the ONNX
op is newer than the target opset, the function is written as its formula (the same maths as
`ir.reference.activation`):

    hard_swish (HardSwish-14)   x * HardSigmoid(x; alpha 1/6, beta 1/2)
    celu (Celu-12)              Relu(x) + Min(0, alpha * (Exp(x / alpha) - 1))
    gelu (Gelu-20)              x * 1/2 * (1 + Erf(x / sqrt(2)))
    gelu_tanh (Gelu-20)         x * 1/2 * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 x^3)))

Clip takes its bounds as operands (opset >= 11), scalars of the operand's type. The `activation`
op and the fused activation of conv and dense both come here.
"""

from __future__ import annotations

import math

from s2c.export.context import NodeContext
from s2c.export.registry import emitter

# function -> (ONNX op, names of its attributes in IR parameter order).
SINGLE_OP: dict[str, tuple[str, tuple[str, ...]]] = {
    "relu": ("Relu", ()),
    "leaky_relu": ("LeakyRelu", ("alpha",)),
    "sigmoid": ("Sigmoid", ()),
    "tanh": ("Tanh", ()),
    "hard_sigmoid": ("HardSigmoid", ("alpha", "beta")),
    "elu": ("Elu", ("alpha",)),
    "selu": ("Selu", ("alpha", "gamma")),
    "softplus": ("Softplus", ()),
    "softsign": ("Softsign", ()),
    "exp": ("Exp", ()),
    "log": ("Log", ()),
    "abs": ("Abs", ()),
    "neg": ("Neg", ()),
    "sqrt": ("Sqrt", ()),
    "reciprocal": ("Reciprocal", ()),
    "floor": ("Floor", ()),
    "ceil": ("Ceil", ()),
    "erf": ("Erf", ()),
    "sign": ("Sign", ()),
    "thresholded_relu": ("ThresholdedRelu", ("alpha",)),
    "shrink": ("Shrink", ("lambd", "bias")),
}

HARD_SWISH_SINCE = 14
CELU_SINCE = 12
GELU_SINCE = 20


def emit_activation(
    ctx: NodeContext,
    function: str,
    params: tuple[float, ...],
    x: str,
    output: str,
    dtype: str,
) -> None:
    """Write `function(params)` of the tensor `x` (element type `dtype`) into `output`."""
    if function in SINGLE_OP:
        op_type, names = SINGLE_OP[function]
        attrs = {name: float(value) for name, value in zip(names, params, strict=True)}
        ctx.op(op_type, [x], output, tag=function, **attrs)
        return
    formula = _FORMULAS.get(function)
    if formula is None:
        ctx.unsupported(f"activation function {function!r} has no ONNX form")
    formula(ctx, params, x, output, dtype)


def _clip(ctx: NodeContext, params: tuple[float, ...], x: str, output: str, dtype: str) -> None:
    """Clip(x, min, max) with the bounds as scalar operands of x's type."""
    low = ctx.scalar(params[0], dtype, "clip_min")
    high = ctx.scalar(params[1], dtype, "clip_max")
    ctx.op("Clip", [x, low, high], output, tag="clip")


def _hard_swish(ctx: NodeContext, params: tuple[float, ...], x: str, output: str, dtype: str):
    """HardSwish(x), or x * HardSigmoid(x; 1/6, 1/2) before opset 14."""
    if ctx.opset >= HARD_SWISH_SINCE:
        ctx.op("HardSwish", [x], output, tag="hard_swish")
        return
    gate = ctx.op("HardSigmoid", [x], tag="hard_swish_gate", alpha=1.0 / 6.0, beta=0.5)
    ctx.op("Mul", [x, gate], output, tag="hard_swish")


def _celu(ctx: NodeContext, params: tuple[float, ...], x: str, output: str, dtype: str) -> None:
    """Celu(x; alpha), or Relu(x) + Min(0, alpha * (Exp(x / alpha) - 1)) before opset 12."""
    alpha = params[0]
    if ctx.opset >= CELU_SINCE:
        ctx.op("Celu", [x], output, tag="celu", alpha=float(alpha))
        return
    alpha_value = ctx.scalar(alpha, dtype, "celu_alpha")
    scaled = ctx.op("Div", [x, alpha_value], tag="celu_scaled")
    grown = ctx.op("Sub", [ctx.op("Exp", [scaled], tag="celu_exp"), _one(ctx, dtype)])
    negative = ctx.op("Min", [ctx.scalar(0.0, dtype, "zero"), ctx.op("Mul", [alpha_value, grown])])
    ctx.op("Add", [ctx.op("Relu", [x], tag="celu_relu"), negative], output, tag="celu")


def _gelu(ctx: NodeContext, params: tuple[float, ...], x: str, output: str, dtype: str) -> None:
    """Gelu(x), or x * 1/2 * (1 + Erf(x / sqrt(2))) before opset 20."""
    if ctx.opset >= GELU_SINCE:
        ctx.op("Gelu", [x], output, tag="gelu")
        return
    inner = ctx.op("Div", [x, ctx.scalar(math.sqrt(2.0), dtype, "sqrt2")], tag="gelu_scaled")
    gate = ctx.op("Add", [_one(ctx, dtype), ctx.op("Erf", [inner], tag="gelu_erf")])
    _half_x_times(ctx, x, gate, output, dtype)


def _gelu_tanh(ctx: NodeContext, params: tuple[float, ...], x: str, output: str, dtype: str):
    """Gelu(x, approximate="tanh"), or its tanh formula before opset 20."""
    if ctx.opset >= GELU_SINCE:
        ctx.op("Gelu", [x], output, tag="gelu_tanh", approximate="tanh")
        return
    cube = ctx.op("Mul", [x, ctx.op("Mul", [x, x], tag="square")], tag="cube")
    cubic = ctx.op("Mul", [ctx.scalar(0.044715, dtype, "gelu_cubic"), cube])
    scale = ctx.scalar(math.sqrt(2.0 / math.pi), dtype, "sqrt_2_over_pi")
    inner = ctx.op("Mul", [scale, ctx.op("Add", [x, cubic], tag="gelu_poly")], tag="gelu_inner")
    gate = ctx.op("Add", [_one(ctx, dtype), ctx.op("Tanh", [inner], tag="gelu_tanh")])
    _half_x_times(ctx, x, gate, output, dtype)


def _half_x_times(ctx: NodeContext, x: str, gate: str, output: str, dtype: str) -> None:
    half_x = ctx.op("Mul", [x, ctx.scalar(0.5, dtype, "half")], tag="half_x")
    ctx.op("Mul", [half_x, gate], output, tag="gelu")


def _one(ctx: NodeContext, dtype: str) -> str:
    return ctx.scalar(1.0, dtype, "one")


_FORMULAS = {
    "clip": _clip,
    "hard_swish": _hard_swish,
    "celu": _celu,
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
}


@emitter("activation")
def emit_activation_op(ctx: NodeContext) -> None:
    """activation -> the function's ONNX op (Relu, Clip, Gelu, ...) or its formula."""
    emit_activation(
        ctx,
        ctx.attr("function"),
        tuple(ctx.attr("params")),
        ctx.inputs[0],
        ctx.outputs[0],
        ctx.input_dtypes[0],
    )
