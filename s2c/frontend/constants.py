"""Handlers whose results are compile-time constants: Constant, ConstantOfShape, Shape, Size.

Shapes are static in s2c, so Shape and Size of any value are constants; their consumers (Gather,
Concat, Reshape, ...) then fold or read them as constant operands.
"""

from __future__ import annotations

import math

import numpy as np
import onnx

from s2c.frontend.context import NodeContext
from s2c.frontend.registry import Result, handler
from s2c.frontend.weights import check_finite, sparse_weight_array, weight_array

# The list-valued forms of Constant; "value" and "sparse_value" hold tensors (weight_array).
_LIST_FORMS = {
    "value_float": lambda v: np.array(v, dtype=np.float32),
    "value_floats": lambda v: np.array(v, dtype=np.float32),
    "value_int": lambda v: np.array(v, dtype=np.int64),
    "value_ints": lambda v: np.array(v, dtype=np.int64),
    "value_string": lambda v: np.array(v, dtype=object),
    "value_strings": lambda v: np.array(list(v), dtype=object),
}
_CONSTANT_FORMS = ("value", "sparse_value", *_LIST_FORMS)


@handler("Constant")
def lower_constant(ctx: NodeContext) -> list[Result]:
    """Constant -> a compile-time constant (any of the value_* attribute forms), finite."""
    for key in _CONSTANT_FORMS:
        attribute = next((a for a in ctx.node.attribute if a.name == key), None)
        if attribute is None:
            continue
        value = onnx.helper.get_attribute_value(attribute)
        what = f"'{ctx.display_name}' (Constant) {key}"
        if key == "value":
            return [weight_array(value, what)]
        if key == "sparse_value":
            return [sparse_weight_array(value, what)]
        array = _LIST_FORMS[key](value)
        check_finite(array, what)
        return [array]
    ctx.unsupported("Constant has no value attribute")


@handler("ConstantOfShape")
def lower_constant_of_shape(ctx: NodeContext) -> list[Result]:
    """ConstantOfShape -> a compile-time constant filled with `value` (default float 0)."""
    shape = tuple(int(d) for d in ctx.require_constant(0, "shape").reshape(-1))
    if any(d < 0 for d in shape):
        ctx.unsupported(f"shape {shape} has a negative dimension")
    value = ctx.attr("value")
    what = f"'{ctx.display_name}' (ConstantOfShape) value"
    fill = np.zeros(1, np.float32) if value is None else weight_array(value, what).reshape(-1)
    if fill.size == 0:
        ctx.unsupported("value holds no element")
    return [np.broadcast_to(fill[:1].reshape(()), shape)]  # a view: filled when used


@handler("Shape")
def lower_shape(ctx: NodeContext) -> list[Result]:
    """Shape -> a compile-time int64 constant (start and end clamped as ONNX slices)."""
    shape = ctx.input_shape(0)
    rank = len(shape)
    start, end = int(ctx.attr("start", 0)), int(ctx.attr("end", rank))
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return [np.array(shape[start:end], dtype=np.int64)]


@handler("Size")
def lower_size(ctx: NodeContext) -> list[Result]:
    """Size -> a compile-time int64 scalar constant."""
    return [np.array(math.prod(ctx.input_shape(0)), dtype=np.int64)]
