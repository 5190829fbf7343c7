"""Element-wise activation functions with their ONNX definitions.

    relu max(x, 0)                        leaky_relu x if x >= 0 else alpha * x
    clip min(max(x, min), max)            sigmoid 1 / (1 + exp(-x))        tanh tanh(x)
    hard_sigmoid max(0, min(1, alpha * x + beta))     hard_swish x * hard_sigmoid(x; 1/6, 1/2)
    elu x if x >= 0 else alpha * (exp(x) - 1)         selu gamma * elu(x; alpha)
    celu max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
    softplus log(1 + exp(x))              softsign x / (1 + |x|)
    exp, log, abs, neg (-x), sqrt, reciprocal (1 / x), floor, ceil, sign (-1, 0 or 1)
    erf 2/sqrt(pi) * integral_0^x exp(-t^2) dt        gelu x/2 * (1 + erf(x / sqrt(2)))
    gelu_tanh x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
    thresholded_relu x if x > alpha else 0
    shrink x + bias if x < -lambd, x - bias if x > lambd, else 0

Each function maps an array to an array of the same shape and dtype. Piecewise-linear functions
and comparisons are evaluated in the input's dtype with the parameters rounded to it, as
onnxruntime does (so a float32 input equal to float32(lambd) is not above lambd); transcendental
functions are evaluated in float64 and rounded once, within a few float32 ulps of onnxruntime's
vectorised approximations. softplus and sigmoid use log(1 + exp(x)) = logaddexp(0, x), which
cannot overflow.

`erf` uses W. J. Cody's rational Chebyshev approximations ("Rational Chebyshev approximations for
the error function", Math. Comp. 23 (1969) 631-638; the coefficients of Netlib's `calerf`), which
are accurate to about 1e-16 relative in float64; numpy has no erf and scipy is not a dependency.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ir.activations import ACTIVATION_PARAMS
from ir.errors import InternalError

Function = Callable[[np.ndarray, tuple[float, ...]], np.ndarray]

# Cody's coefficients. erf(x) = x P(x^2)/Q(x^2) for |x| <= 0.46875 (A, B);
# erfc(x) = exp(-x^2) P(x)/Q(x) for 0.46875 < |x| <= 4 (C, D);
# erfc(x) = exp(-x^2)/x (1/sqrt(pi) + z P(z)/Q(z)), z = 1/x^2, for |x| > 4 (P, Q).
# Numerators list their leading coefficient last, as in calerf.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)  # fmt: skip
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)  # fmt: skip
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
          2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
          2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)  # fmt: skip
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)  # fmt: skip
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
          1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)  # fmt: skip
_ERF_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)  # fmt: skip
_ONE_OVER_SQRT_PI = 5.6418958354775628695e-1


def _rational(y: np.ndarray, num: tuple[float, ...], den: tuple[float, ...]) -> np.ndarray:
    """calerf's evaluation of num(y)/den(y): num[-1] leads, den is monic."""
    top = num[-1] * y
    bottom = y
    for a, b in zip(num[: len(den) - 1], den[: len(den) - 1], strict=True):
        top = (top + a) * y
        bottom = (bottom + b) * y
    return (top + num[len(den) - 1]) / (bottom + den[-1])


def _erfc_tail(y: np.ndarray) -> np.ndarray:
    """erfc(y) for y > 0.46875 (float64), with exp(-y^2) split as calerf does for accuracy."""
    middle = _rational(y, _ERF_C, _ERF_D)
    z = 1.0 / (y * y)
    far = (_ONE_OVER_SQRT_PI - z * _rational(z, _ERF_P, _ERF_Q)) / y
    ratio = np.where(y <= 4.0, middle, far)
    ysq = np.trunc(y * 16.0) / 16.0
    delta = (y - ysq) * (y + ysq)
    return np.exp(-ysq * ysq) * np.exp(-delta) * ratio


def erf(x: np.ndarray) -> np.ndarray:
    """The error function 2/sqrt(pi) * integral_0^x exp(-t^2) dt, in float64."""
    x = np.asarray(x, dtype=np.float64)
    y = np.abs(x)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        near = x * _rational(y * y, _ERF_A, _ERF_B)
        far = np.copysign(1.0 - _erfc_tail(np.minimum(y, 27.0)), x)  # erfc(27) underflows
    return np.where(y <= 0.46875, near, far)


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _param(x: np.ndarray, value: float) -> Any:
    """A parameter rounded to x's dtype (clamped to its range for integers, e.g. clip to inf)."""
    if np.issubdtype(x.dtype, np.integer):
        limits = np.iinfo(x.dtype)
        return x.dtype.type(min(max(value, limits.min), limits.max))
    return x.dtype.type(value)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), evaluated without overflow as exp(-softplus(-x))."""
    return np.exp(-np.logaddexp(0.0, -_f64(x)))


def _hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """max(0, min(1, alpha * x + beta)) in the input dtype."""
    return np.clip(x * _param(x, alpha) + _param(x, beta), 0, 1)


def _elu(x: np.ndarray, alpha: float) -> np.ndarray:
    """x for x >= 0, alpha * (exp(x) - 1) otherwise."""
    xd = _f64(x)
    return np.where(xd >= 0, xd, alpha * np.expm1(np.minimum(xd, 0.0)))


def _celu(x: np.ndarray, alpha: float) -> np.ndarray:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    xd = _f64(x)
    return np.maximum(xd, 0.0) + np.minimum(0.0, alpha * np.expm1(xd / alpha))


def _gelu(x: np.ndarray) -> np.ndarray:
    """x/2 * (1 + erf(x / sqrt(2)))."""
    xd = _f64(x)
    return 0.5 * xd * (1.0 + erf(xd / math.sqrt(2.0)))


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    """x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))."""
    xd = _f64(x)
    return 0.5 * xd * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (xd + 0.044715 * xd**3)))


def _shrink(x: np.ndarray, lambd: float, bias: float) -> np.ndarray:
    """x + bias for x < -lambd, x - bias for x > lambd, else 0 (in the input dtype)."""
    lambd_x, bias_x = _param(x, lambd), _param(x, bias)
    zero = x.dtype.type(0)
    return np.where(x < -lambd_x, x + bias_x, np.where(x > lambd_x, x - bias_x, zero))


# function -> f(x, params); results are cast back to the input dtype by apply_activation.
_FUNCTIONS: dict[str, Function] = {
    "relu": lambda x, p: np.maximum(x, x.dtype.type(0)),
    "leaky_relu": lambda x, p: np.where(x >= 0, x, x * _param(x, p[0])),
    "clip": lambda x, p: np.minimum(np.maximum(x, _param(x, p[0])), _param(x, p[1])),
    "sigmoid": lambda x, p: _sigmoid(x),
    "tanh": lambda x, p: np.tanh(_f64(x)),
    "hard_sigmoid": lambda x, p: _hard_sigmoid(x, p[0], p[1]),
    "hard_swish": lambda x, p: x * _hard_sigmoid(x, 1.0 / 6.0, 0.5),
    "elu": lambda x, p: _elu(x, p[0]),
    "selu": lambda x, p: p[1] * _elu(x, p[0]),
    "celu": lambda x, p: _celu(x, p[0]),
    "softplus": lambda x, p: np.logaddexp(0.0, _f64(x)),
    "softsign": lambda x, p: x / (1 + np.abs(x)),
    "exp": lambda x, p: np.exp(_f64(x)),
    "log": lambda x, p: np.log(_f64(x)),
    "abs": lambda x, p: np.abs(x),
    "neg": lambda x, p: np.negative(x),
    "sqrt": lambda x, p: np.sqrt(_f64(x)),
    "reciprocal": lambda x, p: 1 / x,
    "floor": lambda x, p: np.floor(x),
    "ceil": lambda x, p: np.ceil(x),
    "erf": lambda x, p: erf(x),
    "gelu": lambda x, p: _gelu(x),
    "gelu_tanh": lambda x, p: _gelu_tanh(x),
    "sign": lambda x, p: np.sign(x),
    "thresholded_relu": lambda x, p: np.where(x > _param(x, p[0]), x, x.dtype.type(0)),
    "shrink": lambda x, p: _shrink(x, p[0], p[1]),
}

assert set(_FUNCTIONS) == set(ACTIVATION_PARAMS), "every activation needs a reference"


def apply_activation(function: str, params: tuple[float, ...], x: np.ndarray) -> np.ndarray:
    """`function(params)` applied element-wise to x; the result has x's shape and dtype."""
    if function == "none":
        return x
    if function not in _FUNCTIONS:
        raise InternalError(f"no reference for activation function {function!r}")
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        result = _FUNCTIONS[function](x, tuple(params))
    return np.asarray(result).astype(x.dtype, copy=False)
