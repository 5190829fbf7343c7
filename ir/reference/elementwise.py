"""Element-wise binary ops (numpy broadcasting) and the `activation` op.

The result has the dtype of the first operand (ONNX requires equal dtypes except for Pow, whose
result takes the base's dtype).

    add a + b    sub a - b    mul a * b    max maximum(a, b)    min minimum(a, b)
    div a / b; for integers the quotient is truncated toward zero (C semantics, as onnxruntime)
    pow a ** b
    prelu a if a >= 0 else slope * a, with slope = b broadcast against a
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ir.reference.activation import apply_activation

Attrs = dict[str, Any]
Binary = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b; integer quotients truncated toward zero."""
    if not np.issubdtype(a.dtype, np.integer):
        return np.divide(a, b)
    quotient = np.floor_divide(a, b)
    inexact = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return quotient + inexact


def _power(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a ** b, evaluated in a's dtype."""
    return np.power(a, b.astype(a.dtype, copy=False))


def _prelu(a: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """a where a >= 0, slope * a elsewhere."""
    return np.where(a >= 0, a, slope * a)


_BINARY: dict[str, Binary] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": _divide,
    "max": np.maximum,
    "min": np.minimum,
    "pow": _power,
    "prelu": _prelu,
}


def _binary_kernel(function: Binary) -> Callable[[Attrs, list[np.ndarray]], list[np.ndarray]]:
    def kernel(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
        a, b = inputs
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            result = np.asarray(function(a, b))
        return [result.astype(a.dtype, copy=False)]

    return kernel


def activation(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """y = function(x; params) element-wise (see ir.reference.activation)."""
    return [apply_activation(attrs["function"], attrs["params"], inputs[0])]


KERNELS = {name: _binary_kernel(function) for name, function in _BINARY.items()}
KERNELS["activation"] = activation
