"""Integer ops of a quantised graph, written as the exact integer computation of docs/numerics.md.

A conv, dense, add, sub, mul, concat or element-wise activation whose result is int8 is not
written as DequantizeLinear -> float op -> QuantizeLinear: onnxruntime would accumulate in fp32
and round with QuantizeLinear, which differs from the image's exact int32 accumulation and
fixed-point requantisation near rounding ties, and the differences grow through deep graphs.
Each is written with ONNX integer ops instead, so onnxruntime computes the very integers the
interpreter does:

- conv / dense: `ConvInteger` / `MatMulInteger` on uint8 operands (int8 code + 128, zero points
  + 128, so (x - z_x) * w is unchanged; onnxruntime's uint8 x uint8 kernels accumulate exactly
  in int32 and pad with the input zero point), + int32 bias, then requantisation;
- requantisation `mbqm(acc, multiplier, shift)` = round(acc * multiplier / 2^(31 - shift)), half
  away from zero, in int64: p = acc * multiplier (exact), sign(p) * ((|p| + d / 2) / d) with
  d = 2^(31 - shift) and truncating integer `Div`; a multiplier of 2^31 or more (shift > 31) is a
  left shift folded into the factor;
- add / sub: TFLite's ADD ((q - z) * 2^20, each rescaled, summed, rescaled); mul: the product of
  the centred codes, rescaled; concat: each input rescaled to the output's parameters;
- an element-wise activation: its 256-entry table, `Gather(table, q + 128)`.

The result is clamped (`Clip`), cast to int8 (the value's `<name>/quantized`) and dequantised for
the float consumers of the rest of the model. Parameters (multipliers, shifts, tables, clamps)
come from `backend.quant_slicing`, the same definitions the image stores.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from backend.quant_slicing import add_rescale, clamp_bounds, lookup_table
from ir.graph import Node, Value
from ir.quant import INT8_MAX, INT8_MIN, accumulator_multipliers, quantize_multiplier
from ir.registry import get_op
from ir.types import TensorType
from s2c.export.context import ModelBuilder

UINT8_OFFSET = 128  # int8 code + 128 = uint8 code
ADD_LEFT_SHIFT = 20  # TFLite ADD's headroom shift


def _per_tensor(type_: TensorType) -> bool:
    return type_.dtype == "int8" and type_.quant is not None and type_.quant.axis is None


def integer_form(node: Node) -> bool:
    """True when `node` is written as integer ops (its result and activations are int8)."""
    if not node.outputs or not _per_tensor(node.outputs[0].type):
        return False
    if node.op in ("conv", "dense"):
        weight = node.inputs[1]
        return (
            _per_tensor(node.inputs[0].type)
            and weight.is_constant
            and weight.type.dtype == "int8"
            and weight.type.quant is not None
            and all(z == 0 for z in weight.type.quant.zero_point)
            and all(v.is_constant and v.type.dtype == "int32" for v in node.inputs[2:])
        )
    if node.op in ("add", "sub", "mul", "matmul", "concat"):
        return all(_per_tensor(v.type) for v in node.inputs)
    if node.op in ("activation", "identity", "dropout"):
        return _per_tensor(node.inputs[0].type)
    if node.op == "gather":  # of int8 data (a constant table is quantised exactly as it is)
        return _per_tensor(node.inputs[0].type) and not node.inputs[0].is_constant
    return False


class IntegerEmitter:
    """Writes one integer-form node; `codes` maps an operand to the ONNX name of its int8 codes."""

    def __init__(self, builder: ModelBuilder, node: Node, codes: list[str]) -> None:
        self.builder = builder
        self.node = node
        self.codes = codes

    def emit(self, output: str) -> None:
        """Write the node so that `output` holds its int8 result."""
        op = self.node.op
        if op in ("conv", "dense"):
            result = self._accumulate()
        elif op in ("add", "sub"):
            result = self._add()
        elif op in ("mul", "matmul"):
            result = self._mul()
        elif op == "concat":
            result = self._concat()
        elif op == "gather":
            result = self._gather()
        else:
            result = self._lookup()
        self._op("Cast", [result], output, to=TensorProto.INT8)

    # -- ops -------------------------------------------------------------------------------------
    def _accumulate(self) -> str:
        """acc = sum((x - z_x) w) + bias (int32, exact); z_y + mbqm(acc, M[c]), clamped."""
        x, weight = self.node.inputs[0], self.node.inputs[1]
        x_scale, x_zero = _params(x)
        y_scale, y_zero = _params(self.node.outputs[0])
        codes = np.asarray(weight.constant_data, dtype=np.int16) + UINT8_OFFSET
        operands = [
            self._to_uint8(self.codes[0]),
            self._init(codes.astype(np.uint8), "weight_u8"),
            self._init(np.uint8(x_zero + UINT8_OFFSET), "x_zero_u8"),
            self._init(np.uint8(UINT8_OFFSET), "weight_zero_u8"),
        ]
        channel_shape = self._channel_shape()
        if self.node.op == "conv":
            conv = get_op("conv").with_defaults(self.node.attrs)
            attrs = {
                "kernel_shape": list(weight.type.shape[2:]),
                "strides": list(conv["strides"]),
                "pads": list(conv["pads"]),
                "dilations": list(conv["dilations"]),
                "group": int(conv["group"]),
            }
            acc = self._op("ConvInteger", operands, **attrs)
        else:
            acc = self._op("MatMulInteger", operands)
        if len(self.node.inputs) == 3:
            bias = np.asarray(self.node.inputs[2].constant_data, dtype=np.int32)
            acc = self._op("Add", [acc, self._init(bias.reshape(channel_shape), "bias")])
        weight_scales = np.asarray(weight.type.quant.scale, dtype=np.float64)  # type: ignore[union-attr]
        multipliers, shifts = accumulator_multipliers(x_scale, weight_scales, y_scale)
        scaled = self._mbqm(self._to_int64(acc), multipliers, shifts, channel_shape)
        low, high = clamp_bounds(
            self.node.attrs.get("activation", "none"),
            tuple(self.node.attrs.get("activation_params", ())),
            y_scale,
            y_zero,
        )
        return self._finish(scaled, y_zero, low, high)

    def _add(self) -> str:
        """TFLite ADD: each (q - z) * 2^20 rescaled to 2 max(s_a, s_b), summed, rescaled."""
        (a_scale, _), (b_scale, _) = (_params(v) for v in self.node.inputs)
        y_scale, y_zero = _params(self.node.outputs[0])
        a_rescale, b_rescale, y_rescale = add_rescale(a_scale, b_scale, y_scale)
        terms = []
        for index, (multiplier, shift) in enumerate((a_rescale, b_rescale)):
            centred = self._centred(index)
            widened = self._op("Mul", [centred, self._int64(1 << ADD_LEFT_SHIFT, "headroom")])
            terms.append(self._mbqm(widened, multiplier, shift))
        total = self._op("Sub" if self.node.op == "sub" else "Add", terms)
        return self._finish(self._mbqm(total, *y_rescale), y_zero, INT8_MIN, INT8_MAX)

    def _mul(self) -> str:
        """z_y + mbqm((a - z_a)(b - z_b), s_a s_b / s_y), clamped (mul: element-wise; matmul:
        the int64 matrix product of the centred codes, the MAC array's exact int32 sums)."""
        (a_scale, _), (b_scale, _) = (_params(v) for v in self.node.inputs)
        y_scale, y_zero = _params(self.node.outputs[0])
        product_op = "MatMul" if self.node.op == "matmul" else "Mul"
        product = self._op(product_op, [self._centred(0), self._centred(1)])
        multiplier, shift = quantize_multiplier(a_scale * b_scale / y_scale)
        return self._finish(self._mbqm(product, multiplier, shift), y_zero, INT8_MIN, INT8_MAX)

    def _concat(self) -> str:
        """Each input as z_y + mbqm(q - z_i, s_i / s_y), clamped, then concatenated."""
        y_scale, y_zero = _params(self.node.outputs[0])
        pieces = []
        for index, value in enumerate(self.node.inputs):
            scale, _ = _params(value)
            multiplier, shift = quantize_multiplier(scale / y_scale)
            scaled = self._mbqm(self._centred(index), multiplier, shift)
            pieces.append(self._finish(scaled, y_zero, INT8_MIN, INT8_MAX))
        return self._op("Concat", pieces, axis=int(self.node.attrs["axis"]))

    def _gather(self) -> str:
        """z_y + mbqm(q - z, s / s_y) of the gathered codes, clamped (the kernel's rescale)."""
        scale, _ = _params(self.node.inputs[0])
        y_scale, y_zero = _params(self.node.outputs[0])
        axis = int(self.node.attrs.get("axis", 0))
        taken = self._op("Gather", [self._centred(0), self.codes[1]], axis=axis)
        multiplier, shift = quantize_multiplier(scale / y_scale)
        return self._finish(self._mbqm(taken, multiplier, shift), y_zero, INT8_MIN, INT8_MAX)

    def _lookup(self) -> str:
        """T[q + 128] with the image's 256-entry table."""
        table = lookup_table(self.node)
        index = self._op("Add", [self._to_int64(self.codes[0]), self._int64(128, "table_offset")])
        return self._op("Gather", [self._init(table, "table"), index], axis=0)

    # -- arithmetic ------------------------------------------------------------------------------
    def _mbqm(self, acc: str, multiplier, shift, shape: list[int] | None = None) -> str:
        """round(acc * multiplier / 2^(31 - shift)), half away from zero, in int64."""
        multiplier = np.asarray(multiplier, dtype=np.int64)
        right = 31 - np.asarray(shift, dtype=np.int64)
        factor = multiplier << np.maximum(-right, 0)
        divisor = np.int64(1) << np.maximum(right, 0)
        half = divisor >> 1
        shape = shape if shape is not None and factor.ndim else list(factor.shape)
        product = self._op("Mul", [acc, self._init(factor.reshape(shape), "multiplier")])
        magnitude = self._op("Abs", [product])
        rounded = self._op("Add", [magnitude, self._init(half.reshape(shape), "half")])
        quotient = self._op("Div", [rounded, self._init(divisor.reshape(shape), "divisor")])
        return self._op("Mul", [quotient, self._op("Sign", [product])])

    def _finish(self, scaled: str, zero: int, low: int, high: int) -> str:
        shifted = self._op("Add", [scaled, self._int64(zero, "output_zero")])
        return self._op("Clip", [shifted, self._int64(low, "low"), self._int64(high, "high")])

    def _centred(self, index: int) -> str:
        """q - z of operand `index`, int64."""
        _, zero = _params(self.node.inputs[index])
        return self._op("Sub", [self._to_int64(self.codes[index]), self._int64(zero, "zero")])

    def _channel_shape(self) -> list[int]:
        """Broadcast shape of per-output-channel parameters (axis 1 of conv, last of dense)."""
        rank = len(self.node.outputs[0].type.shape)
        if self.node.op == "conv":
            return [-1] + [1] * (rank - 2)
        return [-1]

    # -- node and constant builders --------------------------------------------------------------
    def _to_uint8(self, codes: str) -> str:
        shifted = self._op("Add", [self._to_int64(codes), self._int64(UINT8_OFFSET, "offset")])
        return self._op("Cast", [shifted], to=TensorProto.UINT8)

    def _to_int64(self, name: str) -> str:
        return self._op("Cast", [name], to=TensorProto.INT64)

    def _int64(self, value: int, tag: str) -> str:
        return self._init(np.int64(value), tag)

    def _init(self, array, tag: str) -> str:
        return self.builder.initializer(np.asarray(array), f"{self.node.name}/{tag}")

    def _op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        if output is None:
            output = self.builder.tensor_names.fresh(f"{self.node.name}/{op_type.lower()}")
        self.builder.node(op_type, inputs, [output], f"{self.node.name}/{op_type.lower()}", **attrs)
        return output


def _params(value: Value) -> tuple[float, int]:
    quant = value.type.quant
    assert quant is not None
    return float(quant.scale[0]), int(quant.zero_point[0])
