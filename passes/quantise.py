"""Static post-training int8 quantisation (see docs/numerics.md).

1. Calibrate: run the float graph on the calibration samples and pick each activation's range
   with the chosen observer (`passes.calibration`).
2. Activation parameters: range widened to contain 0, s = (hi - lo) / 255,
   z = round(-128 - lo / s). Ops that only move or select values (pooling, reshape, transpose,
   slice, pad, identity) give their result the parameters of their input, so they stay exact.
3. Weights of conv and dense: int8, symmetric, per output channel (or per tensor on request);
   biases: int32 at scale s_x * s_w[c]. Weights of gru and lstm: int8 per row
   (`passes.quantise_recurrent`). Constant operands of other integer ops (add, mul,
   concat): int8 per tensor with their own range.
4. Every float activation value (graph inputs and outputs included) becomes int8 with its
   parameters; ops keep their names and read integer semantics from their operand types.

Every scale is rounded to float32, the type ONNX stores scales in, so the multipliers derived
from them are those of the exported QDQ model (`float32_scales`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ir.graph import Graph, Node, Value
from ir.types import QuantParams, TensorType
from passes.base import Pass
from passes.calibration import calibrate, value_range, zero_fractions
from passes.quantise_recurrent import RECURRENT_OPS, quantise_recurrent_weights

# Ops whose result takes the quantisation parameters of operand 0.
SAME_PARAMETERS = frozenset(
    {"pool", "global_pool", "reshape", "transpose", "slice", "pad", "identity", "dropout"}
)
# Ops with an integer kernel that reads constant operands as int8.
INTEGER_CONSTANT_OPERANDS = frozenset({"add", "sub", "mul", "concat"})


def float32_scales(scales: np.ndarray) -> np.ndarray:
    """Scales rounded to float32, the type in which ONNX (and the exported model) stores them.

    Every multiplier M = s_x s_w / s_y is derived from the scales of the IR; rounded here, they
    are exactly the scales the exported QDQ model carries, so the image requantises by the
    model's own M (to the multiplier's 31 bits) rather than by one up to 3 * 2^-24 off.
    """
    return np.asarray(scales, dtype=np.float64).astype(np.float32).astype(np.float64)


def activation_parameters(low: float, high: float) -> tuple[float, int]:
    """(scale, zero point) of an asymmetric int8 range that contains 0 (scale a float32)."""
    low, high = min(low, 0.0), max(high, 0.0)
    if high - low < 1e-12:
        high = low + 1e-6
    scale = float(np.float32((high - low) / 255.0))
    zero = int(np.clip(np.round(-128 - low / scale), -128, 127))
    return scale, zero


def _int8_type(value: Value, scale: float, zero: int) -> TensorType:
    return TensorType(value.type.shape, "int8", QuantParams((scale,), (zero,), None))


@dataclass(frozen=True)
class Quantise(Pass):
    """Quantise the graph to int8 with calibration data (samples along a leading axis)."""

    name: ClassVar[str] = "quantise"
    calibration: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False)
    method: str = "minmax"
    percentile: float = 99.99
    per_tensor_weights: bool = False
    # Hears a status line per calibration sample (a terminal shows it); not an option.
    progress: Callable[[str], None] | None = field(default=None, compare=False, repr=False)
    # Filled by `run`: per node, the fraction of its float output that was 0 at calibration.
    zeros: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def run(self, graph: Graph) -> bool:
        stats = calibrate(graph, self.calibration, self.progress)
        self.zeros.update(zero_fractions(graph, stats))
        parameters = self._activation_parameters(graph, stats)
        for node in graph.nodes:
            self._quantise_constants(graph, node, parameters)
        for value in _activations(graph):
            scale, zero = parameters[id(value)]
            value.type = _int8_type(value, scale, zero)
        return True

    def _activation_parameters(self, graph: Graph, stats) -> dict[int, tuple[float, int]]:
        parameters: dict[int, tuple[float, int]] = {}
        for value in graph.inputs:
            parameters[id(value)] = self._from_stats(stats, value)
        for node in graph.nodes:
            for value in node.outputs:
                if not value.type.dtype.startswith("float"):
                    continue
                source = node.inputs[0] if node.inputs else None
                if node.op in SAME_PARAMETERS and source is not None and id(source) in parameters:
                    parameters[id(value)] = parameters[id(source)]
                else:
                    parameters[id(value)] = self._from_stats(stats, value)
        return parameters

    def _from_stats(self, stats, value: Value) -> tuple[float, int]:
        entry = stats.get(id(value))
        if entry is None:
            return activation_parameters(0.0, 1.0)
        return activation_parameters(*value_range(entry, self.method, self.percentile))

    def _quantise_constants(self, graph: Graph, node: Node, parameters) -> None:
        if node.op in RECURRENT_OPS:
            quantise_recurrent_weights(graph, node)
            return
        if node.op in ("conv", "dense") and all(v.is_constant for v in node.inputs[1:]):
            x_scale = parameters[id(node.inputs[0])][0]
            _quantise_weights(graph, node, x_scale, self.per_tensor_weights)
            return
        if node.op not in INTEGER_CONSTANT_OPERANDS:
            return
        for position, value in enumerate(node.inputs):
            if value.is_constant and value.type.dtype.startswith("float"):
                graph.set_input(node, position, _quantised_constant(graph, value))


def _activations(graph: Graph) -> list[Value]:
    """Float values computed by nodes or given as graph inputs."""
    values = list(graph.inputs)
    values += [v for node in graph.nodes for v in node.outputs]
    return [v for v in values if v.type.dtype.startswith("float")]


def _quantised_constant(graph: Graph, value: Value) -> Value:
    data = value.constant_data.astype(np.float64)
    scale, zero = activation_parameters(float(data.min()), float(data.max()))
    q = np.clip(np.rint(data / scale) + zero, -128, 127).astype(np.int8)
    return graph.constant(value.name + "_q", q, _int8_type(value, scale, zero))


def _quantise_weights(graph: Graph, node: Node, x_scale: float, per_tensor: bool) -> None:
    """int8 symmetric weights per output channel and int32 bias at s_x * s_w[c]."""
    weight = node.inputs[1].constant_data.astype(np.float64)
    axis = 0 if node.op == "conv" else 1
    moved = np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)
    peak = np.abs(moved).max(axis=1)
    if per_tensor:
        peak = np.full_like(peak, peak.max())
    scales = float32_scales(np.where(peak > 0, peak / 127.0, 1.0))
    shape = [1] * weight.ndim
    shape[axis] = -1
    q = np.clip(np.rint(weight / scales.reshape(shape)), -127, 127).astype(np.int8)
    quant = QuantParams(tuple(float(s) for s in scales), (0,) * len(scales), axis)
    graph.set_input(
        node,
        1,
        graph.constant(node.inputs[1].name + "_q", q, TensorType(weight.shape, "int8", quant)),
    )
    bias = (
        node.inputs[2].constant_data.astype(np.float64)
        if len(node.inputs) == 3
        else np.zeros(len(scales))
    )
    bias_scales = float32_scales(x_scale * scales)
    q_bias = np.clip(np.rint(bias / bias_scales), -(2**31), 2**31 - 1).astype(np.int32)
    bias_quant = QuantParams(tuple(float(s) for s in bias_scales), (0,) * len(scales), 0)
    bias_value = graph.constant(
        node.name + "_bias_q", q_bias, TensorType((len(scales),), "int32", bias_quant)
    )
    if len(node.inputs) == 3:
        graph.set_input(node, 2, bias_value)
    else:
        node.inputs.append(bias_value)
        bias_value.uses.append((node, 2))
