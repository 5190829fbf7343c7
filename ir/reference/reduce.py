"""Reductions over a set of axes (ONNX ReduceSum, ReduceMean, ReduceMax, ...), in x's dtype.

    sum  sum(x)        mean  sum(x) / count    max  max(x)        min  min(x)
    prod prod(x)       sum_square  sum(x^2)    l1   sum(|x|)      l2   sqrt(sum(x^2))

`keepdims` keeps the reduced axes as size-1 axes. Empty `axes` reduces over no axis, so every
element is reduced alone: x for sum, mean, max, min and prod, but x^2 for sum_square and |x| for
l1 and l2. That is onnxruntime's behaviour for noop_with_empty_axes=1 (the ONNX text says the
input is returned unchanged); a full reduction has every axis spelled out by the frontend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ir.errors import InternalError

Attrs = dict[str, Any]
Reduction = Callable[[np.ndarray, tuple[int, ...], bool], np.ndarray]


def _mean(x: np.ndarray, axes: tuple[int, ...], keep: bool) -> np.ndarray:
    count = math.prod(x.shape[a] for a in axes)
    return np.sum(x, axis=axes, keepdims=keep, dtype=x.dtype) / x.dtype.type(count)


_REDUCTIONS: dict[str, Reduction] = {
    "sum": lambda x, axes, keep: np.sum(x, axis=axes, keepdims=keep, dtype=x.dtype),
    "mean": _mean,
    "max": lambda x, axes, keep: np.max(x, axis=axes, keepdims=keep),
    "min": lambda x, axes, keep: np.min(x, axis=axes, keepdims=keep),
    "prod": lambda x, axes, keep: np.prod(x, axis=axes, keepdims=keep, dtype=x.dtype),
    "sum_square": lambda x, axes, keep: np.sum(np.square(x), axis=axes, keepdims=keep),
    "l1": lambda x, axes, keep: np.sum(np.abs(x), axis=axes, keepdims=keep, dtype=x.dtype),
    "l2": lambda x, axes, keep: np.sqrt(np.sum(np.square(x), axis=axes, keepdims=keep)),
}


def reduce(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Reduce x over `axes` with the reduction `kind` (see module docstring)."""
    x = inputs[0]
    axes = tuple(attrs["axes"])
    kind = attrs["kind"]
    if kind not in _REDUCTIONS:
        raise InternalError(f"no reference for reduction {kind!r}")
    result = _REDUCTIONS[kind](x, axes, bool(attrs["keepdims"]))
    return [np.array(result, dtype=x.dtype)]


KERNELS = {"reduce": reduce}
