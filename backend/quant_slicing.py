"""The int8 part of a slice: attributes and parameters its integer kernel needs.

Applied after the geometric rule of `backend.slicing` when a layer's result is int8 (see
docs/numerics.md). Per output channel requantisation (`multiplier`, `shift`) and the bias are cut
to the slice's channel range; element-wise activations get a 256-entry lookup table; ops without
an integer kernel become fp32 islands that know the scales and zero points of their operands.
"""

from __future__ import annotations

import math

import numpy as np

from backend.slicing import Layer, SliceSpec
from ir.errors import UnsupportedError
from ir.graph import Node
from ir.quant import (
    INT8_MAX,
    INT8_MIN,
    accumulator_multipliers,
    dequantise,
    quantise,
    quantize_multiplier,
)
from ir.reference import apply_activation
from ir.registry import get_op
from ir.types import TensorType

INTEGER_OPS = frozenset(
    {
        "conv",
        "dense",
        "partial_sum",
        "pool",
        "global_pool",
        "reshape",
        "transpose",
        "slice",
        "concat",
        "add",
        "sub",
        "mul",
        "matmul",
        "gather",
        "activation",
        "identity",
        "dropout",
    }
)


def is_int8(layer: Layer) -> bool:
    return layer.node.outputs[0].type.dtype == "int8"


def _params(type_: TensorType) -> tuple[float, int]:
    if type_.quant is None or type_.quant.axis is not None:
        raise ValueError(f"expected per-tensor quantisation, got {type_}")
    return type_.quant.scale[0], type_.quant.zero_point[0]


def clamp_bounds(function: str, params: tuple[float, ...], scale: float, zero: int):
    """Quantised bounds of a fused ReLU/Clip (or the whole int8 range)."""
    low, high = INT8_MIN, INT8_MAX
    if function == "relu":
        low = max(low, zero)
    elif function == "clip":
        low = max(low, int(quantise(np.array([params[0]]), scale, zero)[0]))
        high = min(high, int(quantise(np.array([params[1]]), scale, zero)[0]))
    return low, high


def requantisation(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel (multiplier, shift) for M[c] = s_x s_w[c] / s_y."""
    x_scale, _ = _params(layer.node.inputs[0].type)
    y_scale, _ = _params(layer.node.outputs[0].type)
    weight_quant = layer.node.inputs[1].type.quant
    assert weight_quant is not None
    return accumulator_multipliers(x_scale, np.asarray(weight_quant.scale), y_scale)


def add_int8(layer: Layer, spec: SliceSpec, partial: bool) -> SliceSpec:
    """Attach the integer attributes and parameters of `spec` (a slice of an int8 layer)."""
    _check_quantised(layer)
    if spec.opcode not in INTEGER_OPS or _averages(spec):
        return _float_island(layer, spec)
    handler = _HANDLERS.get(spec.opcode)
    if handler is not None:
        handler(layer, spec, partial)
    spec.attrs["int8"] = 1
    return spec


def _check_quantised(layer: Layer) -> None:
    """Every int8 activation an int8 layer reads or writes has one scale and zero point."""
    node = layer.node
    for value in (*node.inputs, *node.outputs):
        quant = value.type.quant
        if value.type.dtype != "int8" or value.is_constant:
            continue
        if quant is None or quant.axis is not None:
            raise UnsupportedError(
                f"'{node.name}' ({node.op}): int8 tensor '{value.name}' has no per-tensor scale "
                "and zero point; int8 activations compile in --mode int8 from a quantised model "
                "(QDQ or QOperator), and float mode takes float32 inputs"
            )


def _averages(spec: SliceSpec) -> bool:
    """Average pooling runs in fp32, as the QDQ reference computes it (see docs/numerics.md)."""
    return spec.opcode in ("pool", "global_pool") and spec.attrs.get("kind") == "avg"


def _accumulating(layer: Layer, spec: SliceSpec, partial: bool) -> None:
    """conv / dense / partial_sum: zero points, clamp, per-channel requantisation."""
    _, x_zero = _params(layer.node.inputs[0].type)
    y_scale, y_zero = _params(layer.node.outputs[0].type)
    spec.attrs["input_zero_point"] = x_zero
    spec.attrs["partial"] = int(partial)
    if partial:
        spec.params = [(role, array) for role, array in spec.params if role == "weight"]
        return
    axis = len(spec.out_box.start) - 1 if layer.op == "dense" else 1
    c0, c1 = spec.out_box.start[axis], spec.out_box.stop[axis]
    multipliers, shifts = requantisation(layer)
    spec.params += [("multiplier", multipliers[c0:c1]), ("shift", shifts[c0:c1])]
    low, high = clamp_bounds(
        layer.attrs["activation"], tuple(layer.attrs["activation_params"]), y_scale, y_zero
    )
    spec.attrs.update(output_zero_point=y_zero, clamp_low=low, clamp_high=high)


def _pooling(layer: Layer, spec: SliceSpec, partial: bool) -> None:
    _, zero = _params(layer.node.inputs[0].type)
    spec.attrs["zero_point"] = zero


def _concat(layer: Layer, spec: SliceSpec, partial: bool) -> None:
    y_scale, y_zero = _params(layer.node.outputs[0].type)
    rescale = []
    for operand in spec.attrs["operands"]:
        index = operand if operand >= 0 else -1 - operand
        scale, zero = _params(layer.node.inputs[index].type)
        multiplier, shift = quantize_multiplier(scale / y_scale)
        rescale += [zero, multiplier, shift]
    spec.attrs["rescale"] = tuple(rescale)
    spec.attrs["output_zero_point"] = y_zero


def _binary(layer: Layer, spec: SliceSpec, partial: bool) -> None:
    """add/sub (TFLite ADD with 20-bit left shift) and mul: scalars as attributes."""
    (a_scale, a_zero), (b_scale, b_zero) = (_params(v.type) for v in layer.node.inputs)
    y_scale, y_zero = _params(layer.node.outputs[0].type)
    spec.attrs.update(a_zero_point=a_zero, b_zero_point=b_zero, output_zero_point=y_zero)
    if layer.op in ("mul", "matmul"):  # the product of two operands: M = s_a s_b / s_y
        spec.attrs["multiplier"], spec.attrs["shift"] = quantize_multiplier(
            a_scale * b_scale / y_scale
        )
        return
    a_mult, b_mult, y_mult = add_rescale(a_scale, b_scale, y_scale)
    spec.attrs["rescale"] = (*a_mult, *b_mult, *y_mult)


def add_rescale(a_scale: float, b_scale: float, y_scale: float):
    """TFLite ADD's (multiplier, shift) pairs: each input to twice the larger input scale, and
    that (with the 2^20 headroom shift undone) to the output scale."""
    twice = 2 * max(a_scale, b_scale)
    return (
        quantize_multiplier(a_scale / twice),
        quantize_multiplier(b_scale / twice),
        quantize_multiplier(twice / ((1 << 20) * y_scale)),
    )


def _gather(layer: Layer, spec: SliceSpec, partial: bool) -> None:
    """int8 gather takes codes: a constant (float) table is quantised to the result's scale and
    zero point at compile time; an int8 data operand's codes are rescaled when its parameters
    differ from the result's (`rescale` = zero point, multiplier, shift)."""
    y_scale, y_zero = _params(layer.node.outputs[0].type)
    spec.attrs["output_zero_point"] = y_zero
    data = layer.node.inputs[0]
    if data.is_constant:
        spec.params = [
            (role, quantise(array, y_scale, y_zero) if role == "operand0" else array)
            for role, array in spec.params
        ]
        return
    scale, zero = _params(data.type)
    spec.attrs["rescale"] = (zero, *quantize_multiplier(scale / y_scale))


def _lookup_table(layer: Layer, spec: SliceSpec, partial: bool) -> None:
    spec.params.append(("table", lookup_table(layer.node)))
    spec.opcode = "lookup"


def lookup_table(node: Node) -> np.ndarray:
    """Element-wise function as a table: T[i] = quantise(f(dequantise(i - 128)))."""
    x_scale, x_zero = _params(node.inputs[0].type)
    y_scale, y_zero = _params(node.outputs[0].type)
    codes = np.arange(-128, 128, dtype=np.int32)
    real = dequantise(codes, x_scale, x_zero)
    if node.op == "activation":
        attrs = get_op(node.op).with_defaults(node.attrs)
        real = apply_activation(attrs["function"], tuple(attrs["params"]), real)
    return quantise(real, y_scale, y_zero)


def _float_island(layer: Layer, spec: SliceSpec) -> SliceSpec:
    """An op without an integer kernel: dequantise, compute in fp32, quantise."""
    scales, zeros = [], []
    for value in layer.node.inputs:
        if value.type.quant is not None and value.type.quant.axis is None:
            scale, zero = _params(value.type)
        else:
            scale, zero = math.nan, 0
        scales.append(scale)
        zeros.append(zero)
    y_scale, y_zero = _params(layer.node.outputs[0].type)
    spec.attrs.update(
        float_island=1,
        input_scales=tuple(scales),
        input_zero_points=tuple(zeros),
        output_scale=y_scale,
        output_zero_point=y_zero,
    )
    return spec


_HANDLERS = {
    "conv": _accumulating,
    "dense": _accumulating,
    "partial_sum": _accumulating,
    "pool": _pooling,
    "global_pool": _pooling,
    "concat": _concat,
    "add": _binary,
    "sub": _binary,
    "mul": _binary,
    "matmul": _binary,
    "gather": _gather,
    "activation": _lookup_table,
    "identity": _lookup_table,
    "dropout": _lookup_table,
}
