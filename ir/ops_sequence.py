"""IR ops of sequence models: layer normalisation, where and element-wise comparisons.

layer_norm (ONNX LayerNormalization) normalises over the trailing axes `axis`..rank-1 with
operands x, scale and an optional bias that broadcast against those axes. add_layer_norm is
layer_norm(x + residual) with operands x, residual (x's shape and dtype), scale and bias?: a
residual connection and the normalisation after it, as one node. `where` selects
between two operands by a bool condition; `equal` and `less` compare two operands (numpy
broadcasting) and give bool.
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
