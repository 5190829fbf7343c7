"""Give a float graph the quantisation of the already-quantised model it was lowered from.

The frontend splits a QDQ or QOperator model into the float model it computes and the scales and
zero points it applies (`s2c.frontend.quantized`), lowers the float model, then runs this pass
with those parameters, keyed by IR value name:

- `activations`: value -> (scale, int8 zero point) of the QuantizeLinear that quantises it;
- `weight_scales`: result of a conv or dense -> the model's weight scale per output channel;
- `constants`: constant -> (scale, int8 zero point) of a per-tensor DequantizeLinear.

The result is the quantised IR of docs/numerics.md, the form `passes.quantise` produces, so the
rest of the compiler does not know where the parameters came from. Op by op (graph order):

- conv, dense: weights become int8 with the model's scales (re-quantising the dequantised
  weights recovers the model's integers exactly); a weight the model left in float gets
  symmetric per-channel scales as `passes.quantise` gives them. The bias becomes int32 at
  s_x * s_w[c] as docs/numerics.md requires: when the model quantised its bias at another
  scale (onnxruntime's QDQ Gemm uses s_x * s_w * beta, other tools their own), the bias the
  model adds, (q_b - z_b) * s_b, is re-quantised to s_x * s_w[c], which changes it by at most
  half a step of that scale. The result takes the parameters of the Q after it; with no Q after
  it and a ReLU/Clip as its only reader, the activation is fused and the result takes the
  activation's parameters (Conv -> Relu -> Q).
- batch_norm on a quantised value (onnxruntime leaves it when no conv precedes it directly):
  a depthwise 1x1 conv with k = gamma / sqrt(var + eps) as weight, so one rounding as in the
  model.
- data movement (reshape, transpose, slice, identity, dropout, split) and max pooling run on the
  integers: the result has the operand's parameters. When the model requantises the result
  (DQ -> op -> Q with other parameters), a lookup-table activation (identity clip) requantises
  it afterwards, exactly as DQ -> Q does.
- average and global average pooling keep the operand's parameters when the model does; with
  other output parameters they become a depthwise conv with weights 1/count (int8 127 at scale
  1/(127 count)), which rounds once, as the model does (when padding is not counted, or ceil_mode
  adds partial windows, the divisor varies: pool, then requantise, two roundings).
- add, sub, mul, concat: constant operands become int8 per tensor (the model's parameters when
  it dequantised them per tensor, else their own range); result from the Q after it.
- every other op (activations as lookup tables, softmax and ops without an integer kernel as
  fp32 islands): the result from the Q after it; with no Q, value-preserving ops (relu, pad,
  expand, tile, gather) keep the operand's parameters.

Where the model gives no parameters, they are taken backwards through data movement (DQ -> GAP
-> Flatten -> Q gives the GAP result the Q's parameters). A float value still without parameters
(a partially quantised model: onnxruntime leaves ops it has no quantised form of, e.g. Tanh, or
in QOperator form HardSwish and BatchNormalization, in float) gets them from calibration, as
`passes.quantise` does: the float graph (as lowered, before this pass changes it) runs on the
samples `Calibration.samples` provides, which it is asked for only then. Those values are rounded
where the model computes in float, so agreement with the model is closest for fully quantised
models. Without calibration such values are unsupported: the error lists every one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ir.errors import InternalError, UnsupportedError
from ir.graph import Graph, Node, Value
from ir.types import QuantParams, TensorType
from passes.base import Pass
from passes.calibration import ValueStats, calibrate, value_range
from passes.quantise import activation_parameters
from passes.rewrite import replace_value, single_use

Params = tuple[float, int]


@dataclass(frozen=True)
class Calibration:
    """Where values the model leaves in float get their parameters (docs/numerics.md).

    `samples(graph)` returns calibration inputs for the float graph (keyed by input name, leading
    sample axis); it is called only when some value needs them.
    """

    samples: Callable[[Graph], Mapping[str, np.ndarray]]
    method: str = "minmax"
    percentile: float = 99.99


# Integer kernels whose result has the parameters of operand 0.
SAME_PARAMETERS = frozenset({"reshape", "transpose", "slice", "identity", "dropout", "split"})
# Ops whose result may keep operand 0's parameters when the model gives none.
VALUE_PRESERVING = frozenset({"pad", "expand", "tile", "gather"})
INTEGER_CONSTANT_OPERANDS = frozenset({"add", "sub", "mul", "concat"})
FUSABLE_CLAMPS = frozenset({"relu", "clip"})
POOL_WEIGHT = 127  # the int8 weight of an average pool done as a depthwise conv
FLOAT_LOWEST = float(np.finfo(np.float32).min)
FLOAT_HIGHEST = float(np.finfo(np.float32).max)
# The identity as an element-wise function: a lookup table that requantises.
REQUANTISE_ATTRS = {"function": "clip", "params": (FLOAT_LOWEST, FLOAT_HIGHEST)}


def int8_type(shape: tuple[int, ...], params: Params) -> TensorType:
    return TensorType(shape, "int8", QuantParams((float(params[0]),), (int(params[1]),), None))


def quant_params(value: Value) -> Params | None:
    """(scale, zero point) of a per-tensor int8 value, else None."""
    quant = value.type.quant
    if value.type.dtype != "int8" or quant is None or quant.axis is not None:
        return None
    return quant.scale[0], quant.zero_point[0]


@dataclass(frozen=True)
class FoldQDQ(Pass):
    """Quantise a float graph with the parameters of the model it came from."""

    name: ClassVar[str] = "fold-qdq"
    activations: Mapping[str, Params] = field(default_factory=dict, compare=False)
    weight_scales: Mapping[str, tuple[float, ...]] = field(default_factory=dict, compare=False)
    constants: Mapping[str, Params] = field(default_factory=dict, compare=False)
    # For values the model leaves in float (see the module docstring).
    calibration: Calibration | None = field(default=None, compare=False)

    def run(self, graph: Graph) -> bool:
        _Folding(graph, self).run()
        return True


class _Folding:
    """One run of the pass."""

    def __init__(self, graph: Graph, spec: FoldQDQ) -> None:
        self.graph = graph
        self.spec = spec
        self.target: dict[int, Params] = {}
        for value in graph.values():
            params = spec.activations.get(value.name)
            if params is not None and not value.is_constant:
                self.target[id(value)] = (float(params[0]), int(params[1]))
        self.missing: list[Value] = []
        self.removed: set[int] = set()  # nodes replaced or fused during the walk
        # The float graph as lowered (constants shared), for calibration when it is needed.
        self.float_graph: Graph | None = None
        self.origin: dict[int, Value] = {}
        if spec.calibration is not None:
            self.float_graph, self.origin = _float_copy(graph)
        self.stats: dict[int, ValueStats] | None = None

    def run(self) -> None:
        self._targets_backwards()
        for value in self.graph.inputs:
            if _is_float(value):
                self._assign(value, self.target.get(id(value)))
        for node in list(self.graph.nodes):
            if id(node) not in self.removed:
                self._node(node)
        if self.missing:
            problems = [_describe(v) for v in self.missing]
            raise UnsupportedError(
                f"{len(problems)} value(s) of the quantised model have no quantisation "
                f"parameters: {'; '.join(problems[:8])}"
                f"{'; ...' if len(problems) > 8 else ''}; the model computes them in float, "
                "and s2c's int8 mode needs every activation quantised: quantise those ops in "
                "the model too, or give calibration data",
                problems,
            )

    # -- parameters ---------------------------------------------------------------------------
    def _targets_backwards(self) -> None:
        """A value without parameters read only by data movement takes its results' ones."""
        for node in reversed(self.graph.nodes):
            movement = node.op in SAME_PARAMETERS or (
                node.op in ("pool", "global_pool") and node.attrs.get("kind") == "max"
            )
            if not movement or not node.inputs or node.inputs[0].is_constant:
                continue
            source = node.inputs[0]
            if id(source) in self.target or any(v is source for v in self.graph.outputs):
                continue
            found: set[Params] = set()
            for user, _ in source.uses:
                user_moves = user.op in SAME_PARAMETERS or (
                    user.op in ("pool", "global_pool") and user.attrs.get("kind") == "max"
                )
                params = [self.target.get(id(v)) for v in user.outputs]
                if not user_moves or None in params:
                    found = set()
                    break
                found.update(p for p in params if p is not None)
            if len(found) == 1:
                self.target[id(source)] = found.pop()

    def _assign(self, value: Value, params: Params | None) -> None:
        if params is None:
            params = self._calibrated(value)
        if params is None:
            self.missing.append(value)
            return
        value.type = int8_type(value.type.shape, params)

    def _calibrated(self, value: Value) -> Params | None:
        """Parameters from calibrating the float graph, for a value the model left in float."""
        origin = self.origin.get(id(value))
        calibration = self.spec.calibration
        if origin is None or self.float_graph is None or calibration is None:
            return None
        if self.stats is None:
            self.stats = calibrate(self.float_graph, calibration.samples(self.float_graph))
        stats = self.stats.get(id(origin))
        if stats is None:
            return None
        low, high = value_range(stats, calibration.method, calibration.percentile)
        return activation_parameters(low, high)

    def _result(self, node: Node, forward: bool) -> None:
        """Every float result of `node` takes its Q's parameters (or operand 0's if `forward`)."""
        source = quant_params(node.inputs[0]) if node.inputs and forward else None
        for value in node.outputs:
            if _is_float(value):
                self._assign(value, self.target.get(id(value), source))

    # -- nodes --------------------------------------------------------------------------------
    def _node(self, node: Node) -> None:
        if not any(_is_float(v) for v in node.outputs):
            return
        operands = [v for v in node.inputs if not v.is_constant]
        if any(_is_float(v) for v in operands):
            return  # an operand has no parameters (reported): its results stay float
        if node.op == "batch_norm":
            self._batch_norm(node)
        elif node.op in ("conv", "dense"):
            self._layer(node, None)
        elif node.op in ("pool", "global_pool"):
            self._pool(node)
        elif node.op in SAME_PARAMETERS:
            self._same(node)
        elif node.op in INTEGER_CONSTANT_OPERANDS:
            self._constant_operands(node)
            self._result(node, forward=False)
        elif node.op == "activation":
            self._result(node, forward=node.attrs["function"] == "relu")
        else:
            self._result(node, forward=node.op in VALUE_PRESERVING)

    def _same(self, node: Node) -> None:
        """Data movement on integers: results keep operand 0's parameters, then requantise."""
        params = quant_params(node.inputs[0])
        assert params is not None
        for value in node.outputs:
            wanted = self.target.get(id(value))
            self._assign(value, params)
            if wanted is not None and wanted != params:
                self._requantise_after(node, value, wanted)

    def _requantise_after(self, node: Node, value: Value, params: Params) -> None:
        """Insert a lookup-table identity after `value` that gives its readers `params`."""
        graph = self.graph
        index = graph.nodes.index(node) + 1
        requant = graph.add_node(
            "activation",
            [value],
            [int8_type(value.type.shape, params)],
            dict(REQUANTISE_ATTRS),
            name=f"{node.name}/requantise",
            index=index,
        )
        result = requant.outputs[0]
        for user, position in list(value.uses):
            if user is not requant:
                graph.set_input(user, position, result)
        if any(v is value for v in graph.outputs):
            graph.outputs = [result if v is value else v for v in graph.outputs]
            value.name, result.name = result.name, value.name

    def _pool(self, node: Node) -> None:
        if node.attrs["kind"] == "max":
            self._same(node)
            return
        params = quant_params(node.inputs[0])
        wanted = self.target.get(id(node.outputs[0]))
        if wanted is None or wanted == params:
            self._same(node)
            return
        x = node.inputs[0]
        spatial = x.type.rank - 2
        if node.op == "global_pool":
            attrs = {
                "strides": (1,) * spatial,
                "pads": (0,) * (2 * spatial),
                "dilations": (1,) * spatial,
            }
            kernel = tuple(x.type.shape[2:])
        else:
            counted = node.attrs.get("count_include_pad", 0) or not any(node.attrs["pads"])
            if node.attrs.get("ceil_mode", 0) or not counted:
                self._same(node)  # the divisor varies: pool, then requantise
                return
            attrs = {k: tuple(node.attrs[k]) for k in ("strides", "pads", "dilations")}
            kernel = tuple(node.attrs["kernel"])
        channels = x.type.shape[1]
        count = int(np.prod(kernel))
        weight = np.full((channels, 1, *kernel), 1.0 / count, dtype=np.float32)
        conv = self._replace_by_conv(node, weight, np.zeros(channels, np.float32), attrs)
        # int8 weight 127 at scale 1 / (127 count), not 1 at 1 / count: the accumulator is 127
        # times larger, so mbqm's first rounding (of acc * multiplier) loses 7 bits less.
        self._layer(conv, (1.0 / (POOL_WEIGHT * count),) * channels)

    def _batch_norm(self, node: Node) -> None:
        """batch_norm on a quantised value -> depthwise 1x1 conv (one rounding, as the model)."""
        x = node.inputs[0]
        if x.type.rank < 3 or not all(v.is_constant for v in node.inputs[1:]):
            raise _unsupported(node, "batch normalisation of a quantised value needs [N, C, ...]")
        gamma, beta, mean, var = (v.constant_data.astype(np.float64) for v in node.inputs[1:])
        k = gamma / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
        spatial = x.type.rank - 2
        weight = k.reshape(-1, *([1] * (spatial + 1))).astype(np.float32)
        attrs = {
            "strides": (1,) * spatial,
            "pads": (0,) * (2 * spatial),
            "dilations": (1,) * spatial,
        }
        bias = (beta - mean * k).astype(np.float32)
        conv = self._replace_by_conv(node, weight, bias, attrs)
        self._layer(conv, None)

    def _replace_by_conv(
        self, node: Node, weight: np.ndarray, bias: np.ndarray, attrs: dict
    ) -> Node:
        """A depthwise conv (float weights) computing what `node` computes, in its place."""
        graph = self.graph
        x, result = node.inputs[0], node.outputs[0]
        operands = [
            x,
            graph.constant(f"{node.name}/weight", weight),
            graph.constant(f"{node.name}/bias", bias),
        ]
        conv = graph.add_node(
            "conv",
            operands,
            [TensorType(result.type.shape, "float32")],
            {**attrs, "group": int(weight.shape[0])},
            name=node.name,
            index=graph.nodes.index(node),
        )
        if id(result) in self.target:
            self.target[id(conv.outputs[0])] = self.target.pop(id(result))
        if id(result) in self.origin:
            self.origin[id(conv.outputs[0])] = self.origin[id(result)]
        replace_value(graph, result, conv.outputs[0])
        graph.remove_node(node)
        self.removed.add(id(node))
        return conv

    def _layer(self, node: Node, scales: tuple[float, ...] | None) -> None:
        """conv / dense: int8 weights, int32 bias at s_x * s_w[c], result parameters."""
        x, weight = node.inputs[0], node.inputs[1]
        if not all(v.is_constant for v in node.inputs[1:]):
            raise _unsupported(node, "weights or bias are not constants")
        x_params = quant_params(x)
        assert x_params is not None
        result = node.outputs[0]
        given = self.spec.weight_scales.get(result.name) if scales is None else scales
        q_weight, weight_scales = _quantise_weight(node, weight.constant_data, given)
        axis = 0 if node.op == "conv" else 1
        zeros = (0,) * len(weight_scales)
        weight_type = TensorType(
            weight.type.shape, "int8", QuantParams(tuple(weight_scales), zeros, axis)
        )
        base = weight.name.removesuffix("_DequantizeLinear_Output")
        self.graph.set_input(node, 1, self.graph.constant(f"{base}_q", q_weight, weight_type))
        self._bias(node, x_params[0], weight_scales)
        params = self.target.get(id(result))
        if params is None:
            params = self._fuse_clamp(node)
        self._assign(result, params)

    def _bias(self, node: Node, x_scale: float, weight_scales: np.ndarray) -> None:
        channels = len(weight_scales)
        bias = np.zeros(channels)
        if len(node.inputs) == 3:
            bias = node.inputs[2].constant_data.astype(np.float64).reshape(-1)
        scales = x_scale * np.asarray(weight_scales, dtype=np.float64)
        # The model's own bias (any scale) re-quantised to s_x * s_w[c], docs/numerics.md.
        q_bias = np.clip(np.rint(bias / scales), -(2**31), 2**31 - 1).astype(np.int32)
        bias_type = TensorType(
            (channels,), "int32", QuantParams(tuple(float(s) for s in scales), (0,) * channels, 0)
        )
        value = self.graph.constant(f"{node.name}_bias_q", q_bias, bias_type)
        if len(node.inputs) == 3:
            self.graph.set_input(node, 2, value)
        else:
            node.inputs.append(value)
            value.uses.append((node, 2))

    def _fuse_clamp(self, node: Node) -> Params | None:
        """Conv -> Relu/Clip -> Q with no Q in between: fuse, take the activation's parameters."""
        user = single_use(self.graph, node.outputs[0])
        if user is None or user.op != "activation":
            return None
        if (
            user.attrs["function"] not in FUSABLE_CLAMPS
            or node.attrs.get("activation", "none") != "none"
        ):
            return None
        params = self.target.get(id(user.outputs[0]))
        if params is None:
            return None
        node.attrs["activation"] = user.attrs["function"]
        node.attrs["activation_params"] = tuple(user.attrs.get("params", ()))
        replace_value(self.graph, user.outputs[0], node.outputs[0])
        self.graph.remove_node(user)
        self.removed.add(id(user))
        return params

    def _constant_operands(self, node: Node) -> None:
        """Constant operands of add/sub/mul/concat become int8 per tensor."""
        for position, value in enumerate(node.inputs):
            if not (value.is_constant and _is_float(value)):
                continue
            data = value.constant_data.astype(np.float64)
            params = self.spec.constants.get(value.name)
            if params is None:
                params = activation_parameters(float(data.min()), float(data.max()))
            scale, zero = params
            q = np.clip(np.rint(data / scale) + zero, -128, 127).astype(np.int8)
            constant = self.graph.constant(
                f"{value.name}_q", q, int8_type(value.type.shape, (scale, zero))
            )
            self.graph.set_input(node, position, constant)


def _quantise_weight(
    node: Node, weight: np.ndarray, given: tuple[float, ...] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(int8 weight, scale per output channel): the model's scales, or symmetric ones."""
    data = weight.astype(np.float64)
    axis = 0 if node.op == "conv" else 1
    channels = data.shape[axis]
    shape = [1] * data.ndim
    shape[axis] = -1
    if given is None:
        moved = np.moveaxis(data, axis, 0).reshape(channels, -1)
        peak = np.abs(moved).max(axis=1) if moved.size else np.zeros(channels)
        scales = np.where(peak > 0, peak / 127.0, 1.0)
    else:
        if len(given) != channels:
            raise InternalError(
                f"'{node.name}' ({node.op}): {len(given)} weight scales for {channels} channels"
            )
        scales = np.asarray(given, dtype=np.float64)
    q = np.rint(data / scales.reshape(shape))
    if given is not None:
        off = np.abs(data - q * scales.reshape(shape)).max(initial=0.0)
        if off > 1e-3 * scales.min():
            raise InternalError(
                f"'{node.name}' ({node.op}): the weights are not on the model's quantisation grid "
                f"(off by {off:g})"
            )
    if q.size and (q.min() < -128 or q.max() > 127):
        raise _unsupported(node, "the weights do not fit int8 with the model's scales")
    return q.astype(np.int8), scales


def _float_copy(graph: Graph) -> tuple[Graph, dict[int, Value]]:
    """A copy of the graph's structure (constant data shared) and original id -> copied value."""
    copy = Graph(graph.name)
    mapping: dict[int, Value] = {}
    for value in graph.inputs:
        mapping[id(value)] = copy.add_input(value.name, value.type)

    def copied(value: Value) -> Value:
        if id(value) not in mapping:  # a constant
            mapping[id(value)] = Value(value.name, value.type, data=value.data)
        return mapping[id(value)]

    for node in graph.nodes:
        operands = [copied(v) for v in node.inputs]
        new = copy.add_node(node.op, operands, [v.type for v in node.outputs], dict(node.attrs))
        mapping.update((id(old), value) for old, value in zip(node.outputs, new.outputs))
    copy.outputs = [copied(v) for v in graph.outputs]
    return copy, mapping


def _is_float(value: Value) -> bool:
    return value.type.dtype == "float32"


def _describe(value: Value) -> str:
    producer = value.producer
    if producer is None:
        return f"graph input '{value.name}'"
    return f"'{value.name}' (result of '{producer.name}', {producer.op})"


def _unsupported(node: Node, reason: str) -> UnsupportedError:
    problem = f"'{node.name}' ({node.op}): {reason}"
    return UnsupportedError(f"unsupported quantised model: {problem}", [problem])
