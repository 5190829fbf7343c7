"""IR ops of sequence models: layer normalisation, where and element-wise comparisons.

layer_norm (ONNX LayerNormalization) normalises over the trailing axes `axis`..rank-1 with
operands x, scale and an optional bias that broadcast against those axes. add_layer_norm is
layer_norm(x + residual) with operands x, residual (x's shape and dtype), scale and bias?: a
residual connection and the normalisation after it, as one node. `where` selects
between two operands by a bool condition; `equal` and `less` compare two operands (numpy
broadcasting) and give bool.

attention(q, k, v) {heads, axis} is multi-head scaled-dot-product attention with the scale
already in q (or k): positions run along `axis`, features along the last axis (q and k:
heads x d_k, v: heads x d_v), every other axis is a batch axis. For each batch index and head h
(feature columns h d..(h + 1) d of each operand):
    y_h = softmax(q_h k_h^T, over the key positions) v_h
and y holds the heads' results side by side, q's shape with v's feature count. The key and
value positions (k's and v's `axis`) may differ in number from the query positions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ir.ops import broadcast_verify
from ir.registry import AttrSpec, OpDef, register
from ir.types import TensorType

Types = list[TensorType]
Attrs = dict[str, Any]


def _layer_norm_verify(types: Types, attrs: Attrs) -> str | None:
    x = types[0]
    axis = attrs["axis"]
    if not 0 <= axis < x.rank:
        return f"axis {axis} outside rank {x.rank}"
    normalised = x.shape[axis:]
    for parameter in types[1:]:
        try:
            fits = np.broadcast_shapes(parameter.shape, normalised) == normalised
        except ValueError:
            fits = False
        if not fits or parameter.rank > len(normalised):
            return f"scale/bias shape {parameter.shape} does not broadcast to {normalised}"
    return None


register(
    OpDef(
        "layer_norm",
        "layer normalisation over axes axis..rank-1: (x - mean) / sqrt(var + epsilon) * scale"
        " + bias?",
        (2, 3),
        {"axis": AttrSpec("int", required=True), "epsilon": AttrSpec("float", 1e-5)},
        lambda types, attrs: [types[0].with_shape(types[0].shape)],
        _layer_norm_verify,
    )
)


def _add_layer_norm_verify(types: Types, attrs: Attrs) -> str | None:
    if types[1] != types[0]:
        return f"residual {types[1]} differs from x {types[0]}"
    return _layer_norm_verify([types[0], *types[2:]], attrs)


register(
    OpDef(
        "add_layer_norm",
        "layer_norm(x + residual) over axes axis..rank-1 (a residual add, then layer_norm)",
        (3, 4),
        {"axis": AttrSpec("int", required=True), "epsilon": AttrSpec("float", 1e-5)},
        lambda types, attrs: [types[0].with_shape(types[0].shape)],
        _add_layer_norm_verify,
    )
)


def _broadcast_shape(types: Types) -> tuple[int, ...]:
    return tuple(int(d) for d in np.broadcast_shapes(*(t.shape for t in types)))


register(
    OpDef(
        "where",
        "element-wise select: x where condition else y (numpy broadcasting)",
        (3, 3),
        {},
        lambda types, attrs: [TensorType(_broadcast_shape(types), types[1].dtype)],
        lambda types, attrs: (
            broadcast_verify(types, attrs)
            or (None if types[0].dtype == "bool" else "condition must be bool")
        ),
    )
)

for _name, _formula in {"equal": "a == b", "less": "a < b"}.items():
    register(
        OpDef(
            _name,
            f"element-wise comparison {_formula} (numpy broadcasting), bool result",
            (2, 2),
            {},
            lambda types, attrs: [TensorType(_broadcast_shape(types), "bool")],
            broadcast_verify,
        )
    )


def _attention_infer(types: Types, attrs: Attrs) -> Types:
    q, _, v = types
    return [q.with_shape((*q.shape[:-1], v.shape[-1]))]


def _attention_verify(types: Types, attrs: Attrs) -> str | None:
    q, k, v = types
    heads, axis = attrs["heads"], attrs["axis"]
    if not q.rank == k.rank == v.rank >= 2:
        return f"q, k and v need one rank >= 2, got {q.shape}, {k.shape}, {v.shape}"
    if not 0 <= axis < q.rank - 1:
        return f"positions axis {axis} must lie before the features axis of rank {q.rank}"
    if heads < 1 or q.shape[-1] % heads or v.shape[-1] % heads:
        return f"{heads} heads do not divide the features of q {q.shape} and v {v.shape}"
    if k.shape != (*v.shape[:-1], k.shape[-1]) or k.shape[-1] != q.shape[-1]:
        return f"k {k.shape} must have q's features {q.shape[-1]} and v's positions {v.shape}"
    batch = [d for a, d in enumerate(q.shape[:-1]) if a != axis]
    if batch != [d for a, d in enumerate(k.shape[:-1]) if a != axis]:
        return f"q {q.shape} and k {k.shape} differ in a batch axis"
    if not q.dtype == k.dtype == v.dtype == "float32":
        return "attention computes in float32"
    return None


register(
    OpDef(
        "attention",
        "multi-head attention: softmax(q_h k_h^T) v_h per head h, positions along axis",
        (3, 3),
        {"heads": AttrSpec("int", required=True), "axis": AttrSpec("int", required=True)},
        _attention_infer,
        _attention_verify,
    )
)
