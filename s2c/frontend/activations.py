"""Element-wise activations: each ONNX op becomes `activation` with a function and parameters.

The parameters are read from the ONNX attributes, with ONNX's defaults, in the order
`ir.activations.ACTIVATION_PARAMS` declares. Clip's bounds are attributes before opset 11 and
constant operands from opset 11 (an absent bound is the lowest or highest value of the type).
"""

from __future__ import annotations

import numpy as np

from s2c.frontend.context import NodeContext
from s2c.frontend.registry import Result, add_handler, handler

FLOAT_LOWEST = float(np.finfo(np.float32).min)
FLOAT_HIGHEST = float(np.finfo(np.float32).max)

# ONNX op -> (IR activation function, its ONNX attributes with their defaults, in IR order).
ACTIVATIONS: dict[str, tuple[str, tuple[tuple[str, float], ...]]] = {
    "Relu": ("relu", ()),
    "LeakyRelu": ("leaky_relu", (("alpha", 0.01),)),
    "Sigmoid": ("sigmoid", ()),
    "Tanh": ("tanh", ()),
    "HardSigmoid": ("hard_sigmoid", (("alpha", 0.2), ("beta", 0.5))),
    "HardSwish": ("hard_swish", ()),
    "Elu": ("elu", (("alpha", 1.0),)),
    "Selu": (
        "selu",
        (("alpha", 1.67326319217681884765625), ("gamma", 1.05070102214813232421875)),
    ),
    "Celu": ("celu", (("alpha", 1.0),)),
    "Softplus": ("softplus", ()),
    "Softsign": ("softsign", ()),
    "Exp": ("exp", ()),
    "Log": ("log", ()),
    "Abs": ("abs", ()),
    "Neg": ("neg", ()),
    "Sqrt": ("sqrt", ()),
    "Reciprocal": ("reciprocal", ()),
    "Floor": ("floor", ()),
    "Ceil": ("ceil", ()),
    "Erf": ("erf", ()),
    "Sign": ("sign", ()),
    "ThresholdedRelu": ("thresholded_relu", (("alpha", 1.0),)),
    "Shrink": ("shrink", (("lambd", 0.5), ("bias", 0.0))),
}


def emit_activation(ctx: NodeContext, function: str, params: tuple[float, ...]) -> Result:
    """activation(x) with `function` and `params` as ONNX output 0."""
    attrs = {"function": function, "params": tuple(float(p) for p in params)}
    return ctx.emit("activation", [ctx.input(0)], attrs)


def _activation_handler(op_type: str, function: str, params: tuple[tuple[str, float], ...]):
    def lower(ctx: NodeContext) -> list[Result]:
        return [emit_activation(ctx, function, tuple(ctx.attr(k, d) for k, d in params))]

    names = ", ".join(k for k, _ in params)
    lower.__name__ = f"lower_{op_type.lower()}"
    lower.__doc__ = f"{op_type} -> activation({function}{', ' + names if names else ''})."
    add_handler(op_type, lower)


for _op_type, (_function, _params) in ACTIVATIONS.items():
    _activation_handler(_op_type, _function, _params)


def _clip_bound(ctx: NodeContext, index: int, what: str, default: float) -> float:
    if not ctx.has_input(index):
        return default
    bound = ctx.require_constant(index, what)
    if bound.size != 1:
        ctx.unsupported(f"{what} must be a scalar, got shape {bound.shape}")
    return float(bound.reshape(-1)[0])


def _type_range(dtype: str) -> tuple[float, float]:
    """The lowest and highest value of an IR dtype: Clip's default bounds."""
    if dtype == "float32":
        return FLOAT_LOWEST, FLOAT_HIGHEST
    if dtype == "bool":
        return 0.0, 1.0
    info = np.iinfo(np.dtype(dtype))
    return float(info.min), float(info.max)


@handler("Clip")
def lower_clip(ctx: NodeContext) -> list[Result]:
    """Clip -> activation(clip, min, max); bounds are attributes before opset 11, operands after."""
    lowest, highest = _type_range(ctx.input_type(0).dtype)
    if ctx.opset < 11:
        low, high = ctx.attr("min", lowest), ctx.attr("max", highest)
    else:
        low, high = _clip_bound(ctx, 1, "min", lowest), _clip_bound(ctx, 2, "max", highest)
    return [emit_activation(ctx, "clip", (low, high))]


@handler("Gelu")
def lower_gelu(ctx: NodeContext) -> list[Result]:
    """Gelu -> activation(gelu) for approximate="none", activation(gelu_tanh) for "tanh"."""
    approximate = ctx.attr("approximate", "none")
    functions = {"none": "gelu", "tanh": "gelu_tanh"}
    if approximate not in functions:
        ctx.unsupported(f"approximate={approximate!r} is not 'none' or 'tanh'")
    return [emit_activation(ctx, functions[approximate], ())]
