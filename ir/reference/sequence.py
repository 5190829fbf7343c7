"""Sequence-model ops: layer normalisation, where, equal and less (ONNX semantics).

layer_norm (ONNX LayerNormalization-17, stash_type float), over the axes A = axis..rank-1:
    mean = mean_A(x);  var = mean_A((x - mean)^2);
    y = (x - mean) / sqrt(var + epsilon) * scale + bias
The statistics are summed in float64 and y is rounded once to float32 (onnxruntime accumulates
in a wider type too), so a row's result does not depend on how the rows are batched or sliced.
add_layer_norm: layer_norm of x + residual, the sum rounded to float32 first (as an Add node).
where (ONNX Where): y = x where condition else other, numpy broadcasting.
equal, less (ONNX Equal, Less): a == b, a < b, numpy broadcasting, bool results.
attention (heads H, positions along `axis`): each operand's positions are moved next to its
features and the features split into H heads, x[..., L, H d] -> x_h[..., H, L, d]; then
    y_h = softmax(q_h @ k_h^T) @ v_h
in float32 as the matmul and softmax references compute it (the exporters' MatMul, Softmax and
MatMul), and the heads are merged back into y's features and y's positions moved to `axis`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ir.reference.normalise import softmax

Attrs = dict[str, Any]


def layer_norm(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Layer normalisation over axes `axis`.. (see module docstring): one array operation per
    step, in place on a float64 copy of x."""
    x = inputs[0]
    axes = tuple(range(attrs["axis"], x.ndim))
    count = math.prod(x.shape[attrs["axis"] :])
    centred = x.astype(np.float64)
    mean = np.add.reduce(centred, axis=axes, keepdims=True)
    mean /= count
    centred -= mean
    var = np.add.reduce(np.square(centred), axis=axes, keepdims=True)
    var /= count
    var += float(attrs["epsilon"])
    centred /= np.sqrt(var, out=var)
    centred *= inputs[1]  # a float32 scale or bias widens exactly
    if len(inputs) == 3:
        centred += inputs[2]
    return [centred.astype(x.dtype)]


def add_layer_norm(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Layer normalisation of the sum of the first two operands."""
    return layer_norm(attrs, [np.add(inputs[0], inputs[1]), *inputs[2:]])


def head_order(rank: int, axis: int, transposed: bool = False) -> list[int]:
    """The axes of x[..., H, d] (x of `rank` axes, its features split) in the order
    [batch axes..., H, positions, d], or [batch axes..., H, d, positions] when `transposed`."""
    last = [axis, rank] if not transposed else [rank, axis]
    return [a for a in range(rank - 1) if a != axis] + [rank - 1, *last]


def merge_order(rank: int, axis: int) -> list[int]:
    """The transpose that undoes `head_order(rank, axis)`."""
    order = head_order(rank, axis)
    return [order.index(a) for a in range(rank + 1)]


def split_heads(x: np.ndarray, heads: int, axis: int) -> np.ndarray:
    """x[..., L (at axis), ..., H d] -> [..., H, L, d], a view (one reshape, one transpose)."""
    split = x.reshape(*x.shape[:-1], heads, x.shape[-1] // heads)
    return split.transpose(head_order(x.ndim, axis))


def merge_heads(y: np.ndarray, axis: int) -> np.ndarray:
    """[..., H, L, d] -> [..., L (at axis), ..., H d]: `split_heads` undone."""
    back = y.transpose(merge_order(y.ndim - 1, axis))
    return back.reshape(*back.shape[:-2], back.shape[-2] * back.shape[-1])


def attention(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Multi-head attention (see module docstring)."""
    heads, axis = attrs["heads"], attrs["axis"]
    q, k, v = (split_heads(x, heads, axis) for x in inputs)
    scores = np.matmul(q, k.swapaxes(-2, -1))
    (weights,) = softmax({"axis": scores.ndim - 1, "log": 0}, [scores])
    return [np.ascontiguousarray(merge_heads(np.matmul(weights, v), axis))]


def where(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Element-wise select by a bool condition."""
    condition, x, other = inputs
    return [np.where(condition, x, other).astype(np.result_type(x, other))]


def equal(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Element-wise a == b."""
    return [np.equal(inputs[0], inputs[1])]


def less(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Element-wise a < b."""
    return [np.less(inputs[0], inputs[1])]


KERNELS = {
    "layer_norm": layer_norm,
    "add_layer_norm": add_layer_norm,
    "where": where,
    "attention": attention,
    "equal": equal,
    "less": less,
}
