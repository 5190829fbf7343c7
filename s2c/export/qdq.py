"""Quantised values in ONNX's QDQ form: QuantizeLinear and DequantizeLinear around float ops.

A quantised value (`TensorType.quant` set, real = scale * (q - zero_point)) is written as

    producer (float) -> QuantizeLinear(scale, zero_point) -> q (int8) -> DequantizeLinear -> float

and every consumer reads the dequantised float, so each op computes in float between a DQ and a Q,
which is the semantics of the image's fp32 islands (and exact for data movement and max pool);
ops the image computes in integers are written by `integer` instead.
QuantizeLinear rounds half to even and saturates, as the host does for graph inputs. Quantised
constants (int8 weights, int32 biases) are integer initializers followed by DequantizeLinear.
Per-channel parameters become 1-D scale and zero-point initializers with DequantizeLinear's
`axis` (from opset 13); per-tensor ones are scalars.

A bias of a quantised conv or dense that is an int32 constant without parameters of its own gets
scale s_x * s_w[c] and zero point 0, as docs/numerics.md defines it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ir.graph import Node
from ir.types import QuantParams, TensorType
from s2c.export.context import ModelBuilder

QDQ_SINCE = 13  # DequantizeLinear's axis (per-channel parameters)
INT16_QUANTIZE_SINCE = 21
# Element types QuantizeLinear produces, with the opset that introduced them.
QUANTIZE_DTYPES = {"int8": QDQ_SINCE, "uint8": QDQ_SINCE, "int16": INT16_QUANTIZE_SINCE}
# Element types DequantizeLinear reads (int32 for biases), with their opset.
DEQUANTIZE_DTYPES = {**QUANTIZE_DTYPES, "int32": QDQ_SINCE}


@dataclass(frozen=True)
class QuantTensors:
    """The initializers holding one value's quantisation: scale, zero point, axis."""

    scale: str
    zero_point: str
    axis: int | None

    def attrs(self) -> dict[str, int]:
        return {} if self.axis is None else {"axis": self.axis}


def quant_tensors(builder: ModelBuilder, quant: QuantParams, dtype: str, base: str) -> QuantTensors:
    """Scale (float32) and zero point (`dtype`) initializers: scalars, or 1-D per channel."""
    scale = np.asarray(quant.scale, dtype=np.float32)
    zero_point = np.asarray(quant.zero_point, dtype=np.dtype(dtype))
    if quant.axis is None:
        scale, zero_point = scale.reshape(()), zero_point.reshape(())
    return QuantTensors(
        builder.initializer(scale, f"{base}/scale"),
        builder.initializer(zero_point, f"{base}/zero_point"),
        quant.axis,
    )


def quantize(builder: ModelBuilder, x: str, params: QuantTensors, output: str) -> None:
    """output = QuantizeLinear(x): round half to even, add the zero point, saturate."""
    inputs = [x, params.scale, params.zero_point]
    builder.node("QuantizeLinear", inputs, [output], f"{output}/quantize", **params.attrs())


def dequantize(builder: ModelBuilder, q: str, params: QuantTensors, output: str) -> None:
    """output = DequantizeLinear(q) = scale * (q - zero_point), as float."""
    inputs = [q, params.scale, params.zero_point]
    builder.node("DequantizeLinear", inputs, [output], f"{output}/dequantize", **params.attrs())


def derived_bias_quant(node: Node) -> QuantParams | None:
    """The parameters of an unparameterised int32 bias of a quantised conv or dense, else None."""
    if node.op not in ("conv", "dense") or len(node.inputs) != 3:
        return None
    x, weight, bias = (v.type for v in node.inputs)
    if bias.quant is not None or bias.dtype != "int32":
        return None
    if x.quant is None or weight.quant is None or x.quant.axis is not None:
        return None
    s_x = x.quant.scale[0]
    scales = tuple(s_x * s_w for s_w in weight.quant.scale)
    if len(scales) == 1:
        return QuantParams(scales, (0,))
    return QuantParams(scales, (0,) * len(scales), axis=0)


def is_quantised(type_: TensorType) -> bool:
    return type_.quant is not None
