"""Element-wise activation functions: names and the parameters each takes, in order.

The `activation` op and the fused activation of `conv`/`dense` both carry a function name and a
tuple of float parameters. This table is the single definition of what those parameters mean.
"""

from __future__ import annotations

# function -> names of its parameters, in the order they appear in the params tuple.
ACTIVATION_PARAMS: dict[str, tuple[str, ...]] = {
    "relu": (),
    "leaky_relu": ("alpha",),
    "clip": ("min", "max"),
    "sigmoid": (),
    "tanh": (),
    "hard_sigmoid": ("alpha", "beta"),
    "hard_swish": (),
    "elu": ("alpha",),
    "selu": ("alpha", "gamma"),
    "celu": ("alpha",),
    "softplus": (),
    "softsign": (),
    "exp": (),
    "log": (),
    "abs": (),
    "neg": (),
    "sqrt": (),
    "reciprocal": (),
    "floor": (),
    "ceil": (),
    "erf": (),
    "gelu": (),
    "gelu_tanh": (),
    "sign": (),
    "thresholded_relu": ("alpha",),
    "shrink": ("lambd", "bias"),
}

# Activations that can be fused into the producing conv/dense (applied to its accumulator result).
FUSABLE: frozenset[str] = frozenset(
    {"relu", "leaky_relu", "clip", "sigmoid", "tanh", "hard_sigmoid", "hard_swish"}
)


def check_activation(function: str, params: tuple[float, ...]) -> str | None:
    """None when `function(params)` is a known activation, else the reason."""
    if function not in ACTIVATION_PARAMS:
        return f"unknown activation function {function!r}"
    expected = ACTIVATION_PARAMS[function]
    if len(params) != len(expected):
        names = ", ".join(expected) or "none"
        return (
            f"activation {function} takes {len(expected)} parameters ({names}), got {len(params)}"
        )
    return None
