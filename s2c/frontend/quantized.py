"""Models that are already quantised: QDQ and QOperator graphs (onnxruntime's `quantize_static`).

Such a model compiles with its own scales and zero points. Before lowering, it is split into the
float model it computes and the quantisation it applies (`QuantSpec`); the float model is lowered
as any other, then `passes.fold_qdq.FoldQDQ` gives the IR graph the model's quantisation in the
form docs/numerics.md defines (the form `passes.quantise` produces).

QDQ form: `QuantizeLinear` (Q) and `DequantizeLinear` (DQ) around float ops.
- Q -> DQ on an activation: both nodes go; the float value before Q takes the pair's parameters
  and readers of the DQ read that value. A graph output that is a DQ result becomes an Identity
  of the value (output names survive). A value quantised twice with different parameters is
  copied (Identity) for the second set.
- DQ of a constant (weights: int8 per output channel or per tensor; biases: int32): the constant
  becomes the float initializer DQ computes, (q - z) * s in float32, exactly what the model's
  float ops read. For a Conv, Gemm or MatMul whose weight is such a constant, the weight scales
  are recorded in the IR layout (conv [M, C/g, *k] per M; dense [K, N] per N, Gemm's alpha and
  transB applied), so that `FoldQDQ` recovers exactly the model's int8 weights. Biases are
  re-quantised to the scale docs/numerics.md requires (see `FoldQDQ`).
- Q of a constant is evaluated (round half to even, saturate).

QOperator form: QLinearConv, QLinearMatMul, QGemm, QLinearAdd, QLinearMul, QLinearConcat,
QLinearAveragePool, QLinearGlobalAveragePool, QLinearSigmoid, QLinearLeakyRelu and QLinearSoftmax
(all but the first two in onnxruntime's `com.microsoft` domain) become their float op between the
implied DQ and Q, which is their definition (QGemm's C is an int32 bias at alpha * sa * sb). Ops
that only move or select values (MaxPool, Reshape, Flatten, Transpose, ...) and read a quantised
tensor directly keep its parameters.

Activations may be int8 or uint8: a uint8 value q with zero point z is the int8 value q - 128
with zero point z - 128, exactly. Weights become the int8 values q - z (zero point 0): exact for
symmetric weights (zero point 0, or 128 for uint8) and for asymmetric ones whose q - z fits int8;
other asymmetric weights (q - z needs 9 bits) are unsupported, naming the node.

Values the model leaves in float (a partially quantised model) get parameters from calibration
when the caller provides it (`passes.fold_qdq.Calibration`), else they are unsupported.

Bad input: a scale that is not positive and finite, or a zero point that is not int8 or uint8
(int32 for biases), is a one-line `InputError` naming the node and the value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ir.errors import InputError, UnsupportedError
from ir.verifier import verify
from passes.fold_qdq import Calibration, FoldQDQ
from s2c.frontend.context import LoweringState
from s2c.frontend.reader import DEFAULT_DOMAINS
from s2c.frontend.weights import weight_array

MS_DOMAIN = "com.microsoft"
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
QOPERATOR_OPS = frozenset({"QLinearConv", "QLinearMatMul"})  # default domain
MS_QOPERATOR_OPS = frozenset(
    {
        "QGemm",
        "QLinearAdd",
        "QLinearMul",
        "QLinearConcat",
        "QLinearAveragePool",
        "QLinearGlobalAveragePool",
        "QLinearSigmoid",
        "QLinearLeakyRelu",
        "QLinearSoftmax",
    }
)
# Default-domain ops that move or select values: on a quantised tensor (QOperator form) their
# results keep the operand's parameters. Operand 0 is the data; other operands are shapes/axes.
TRANSPARENT_OPS = frozenset(
    {
        "MaxPool",
        "GlobalMaxPool",
        "Reshape",
        "Flatten",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
        "Identity",
        "Slice",
        "Split",
        "Dropout",
    }
)
_INT8_RANGE = {"int8": (-128, 127), "uint8": (0, 255)}

Params = tuple[float, int]  # per-tensor (scale, int8 zero point)


@dataclass
class QuantSpec:
    """The quantisation a model applies, by ONNX tensor name of the float model.

    activations: float value -> (scale, int8 zero point) of the Q that quantises it.
    weight_scales: result of a Conv/Gemm/MatMul -> its weight's scale per output channel, in
        the IR layout (conv weight [M, ...] per M, dense weight [K, N] per N).
    constants: dequantised constant -> (scale, int8 zero point) when per tensor.
    """

    activations: dict[str, Params] = field(default_factory=dict)
    weight_scales: dict[str, tuple[float, ...]] = field(default_factory=dict)
    constants: dict[str, Params] = field(default_factory=dict)


def is_quantised_model(model: onnx.ModelProto) -> bool:
    """True when the graph holds QDQ or QOperator nodes."""
    for node in model.graph.node:
        if node.domain in DEFAULT_DOMAINS and node.op_type in QDQ_OPS | QOPERATOR_OPS:
            return True
        if node.domain == MS_DOMAIN and node.op_type in MS_QOPERATOR_OPS:
            return True
    return False


def split_quantisation(model: onnx.ModelProto) -> tuple[onnx.ModelProto, QuantSpec | None]:
    """(the float model, its quantisation), or (model, None) for a model that is not quantised.

    Raises:
        InputError: a scale is not positive and finite, or a zero point is not int8/uint8.
        UnsupportedError: the quantisation has no form in s2c's int8 IR (asymmetric or
            per-row weights, per-channel activations, 16-bit types, int8 graph inputs, ...).
    """
    if not is_quantised_model(model):
        return model, None
    return _Splitter(model).run()


def apply_quantisation(
    state: LoweringState, spec: QuantSpec, calibration: Calibration | None = None
) -> None:
    """Give the lowered float graph the model's quantisation (names mapped to IR values).

    `calibration` gives parameters to values the model leaves in float (else unsupported).
    """
    values = state.values
    activations = {values[n].name: p for n, p in spec.activations.items() if n in values}
    weights = {values[n].name: s for n, s in spec.weight_scales.items() if n in values}
    # Constants with per-tensor parameters: DQ'd ones, and quantised values the frontend folded.
    constants = {
        state.ir_constants[n].name: p
        for n, p in {**spec.activations, **spec.constants}.items()
        if n in state.ir_constants
    }
    FoldQDQ(
        activations=activations,
        weight_scales=weights,
        constants=constants,
        calibration=calibration,
    ).run(state.graph)
    verify(state.graph)


# -- the split ------------------------------------------------------------------------------------
@dataclass
class _Quantised:
    """An integer activation tensor of the model: the float value it stands for, its parameters."""

    float_name: str
    scale: float
    zero_point: int  # as stored (uint8 or int8)
    dtype: str

    @property
    def params(self) -> Params:
        return self.scale, self.zero_point - (128 if self.dtype == "uint8" else 0)


@dataclass
class _ConstantQuant:
    """The parameters a DQ applied to a constant: scales, zero points (1-D), axis, type, and
    q - z (float32, exact)."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None
    dtype: str
    steps: np.ndarray


class _Splitter:
    """One split of one model, node by node in graph order."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.constants: dict[str, np.ndarray] = {}
        for tensor in self.graph.initializer:
            self.constants[tensor.name] = _decode(tensor)
        self.inputs = {v.name for v in self.graph.input if v.name not in self.constants}
        self.names = {t.name for t in self.graph.initializer} | self.inputs
        self.names |= {n for node in self.graph.node for n in [*node.input, *node.output] if n}
        self.alias: dict[str, str] = {}  # DQ result -> the float value it reads
        self.quantised: dict[str, _Quantised] = {}  # integer activation tensors
        self.dequantised: dict[str, _ConstantQuant] = {}  # float constants made by a DQ
        self.nodes: list[onnx.NodeProto] = []
        self.new_constants: dict[str, np.ndarray] = {}
        self.spec = QuantSpec()
        self.node_name = ""
        self.op_type = ""

    def run(self) -> tuple[onnx.ModelProto, QuantSpec]:
        for index, node in enumerate(self.graph.node):
            self.node_name = node.name or f"{node.op_type}_{index}"
            self.op_type = node.op_type
            self._split_node(node)
        outputs = self._outputs()
        return self._model(outputs), self.spec

    # -- helpers ------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"'{self.node_name}' ({self.op_type})"

    def _unsupported(self, reason: str) -> UnsupportedError:
        problem = f"{self._where()}: {reason}"
        return UnsupportedError(f"unsupported quantised model: {problem}", [problem])

    def _fresh(self, base: str) -> str:
        name, index = base, 1
        while name in self.names:
            name = f"{base}_{index}"
            index += 1
        self.names.add(name)
        return name

    def _read(self, name: str) -> str:
        return self.alias.get(name, name)

    def _emit(self, op_type: str, inputs: list[str], outputs: list[str], **attrs) -> None:
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=self.node_name, **attrs))

    def _add_constant(self, base: str, array: np.ndarray) -> str:
        name = self._fresh(base)
        self.constants[name] = array
        self.new_constants[name] = array
        return name

    def _constant(self, name: str, what: str) -> np.ndarray:
        if not name or name not in self.constants:
            raise self._unsupported(f"{what} '{name}' is not a constant")
        return self.constants[name]

    def _scale(self, name: str) -> np.ndarray:
        scale = self._constant(name, "scale")
        if scale.dtype.kind != "f" or scale.size == 0:
            raise InputError(f"{self._where()}: scale '{name}' is {scale.dtype}; it must be float")
        values = scale.astype(np.float64).reshape(-1)
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            raise InputError(
                f"{self._where()}: scale '{name}' holds {values[bad][0]:g}; "
                "scales must be positive and finite"
            )
        return values

    def _zero_point(self, name: str, size: int, default: str, allowed: tuple[str, ...]):
        """(zero points as int64 of `size` entries, their element type)."""
        if not name:
            return np.zeros(size, np.int64), default
        zero = self._constant(name, "zero point")
        dtype = str(zero.dtype)
        if dtype not in allowed:
            raise InputError(
                f"{self._where()}: zero point '{name}' is {dtype}, outside "
                f"{' / '.join(allowed)}; s2c takes int8 or uint8 activations and weights"
            )
        values = zero.astype(np.int64).reshape(-1)
        if values.size not in (1, size):
            raise InputError(
                f"{self._where()}: zero point '{name}' has {values.size} values for {size} scales"
            )
        return np.broadcast_to(values, (size,)).copy(), dtype

    def _activation_params(self, inputs: list[str], scale_at: int, default: str) -> _Quantised:
        """Per-tensor (scale, zero point) of an activation from operands `scale_at`, +1."""
        scale_name = inputs[scale_at] if scale_at < len(inputs) else ""
        zero_name = inputs[scale_at + 1] if scale_at + 1 < len(inputs) else ""
        scale = self._scale(scale_name)
        if scale.size != 1:
            raise self._unsupported(
                f"activation quantised per channel (scale '{scale_name}' has {scale.size} "
                "values); s2c quantises activations per tensor"
            )
        zero, dtype = self._zero_point(zero_name, 1, default, tuple(_INT8_RANGE))
        return _Quantised("", float(scale[0]), int(zero[0]), dtype)

    # -- nodes --------------------------------------------------------------------------------
    def _split_node(self, node: onnx.NodeProto) -> None:
        inputs = list(node.input)
        if node.domain in DEFAULT_DOMAINS:
            if node.op_type == "QuantizeLinear":
                return self._quantize(node, inputs)
            if node.op_type == "DequantizeLinear":
                return self._dequantize(node, inputs)
            if node.op_type in QOPERATOR_OPS:
                return _QOPERATOR[node.op_type](self, node, inputs)
            if node.op_type == "Constant":
                self._record_constant(node)
        elif node.domain == MS_DOMAIN and node.op_type in MS_QOPERATOR_OPS:
            return _QOPERATOR[node.op_type](self, node, inputs)
        reads_quantised = [n for n in inputs if n in self.quantised]
        if reads_quantised:
            return self._transparent(node, inputs, reads_quantised)
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.ClearField("input")
        copy.input.extend(self._read(n) if n else "" for n in inputs)
        self.nodes.append(copy)
        if node.domain in DEFAULT_DOMAINS and node.op_type in ("Conv", "Gemm", "MatMul"):
            self._record_weight_scales(node, [self._read(n) if n else "" for n in inputs])

    def _record_constant(self, node: onnx.NodeProto) -> None:
        for attribute in node.attribute:
            if attribute.name == "value" and node.output:
                what = f"'{self.node_name}' (Constant) value"
                self.constants[node.output[0]] = weight_array(attribute.t, what)

    def _quantize(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        if self._has_attr(node, "block_size", 0):
            raise self._unsupported("blocked quantisation (block_size) is not supported")
        x, out = inputs[0], node.output[0]
        if x in self.constants:
            self._quantize_constant(node, inputs)
            return
        params = self._activation_params(inputs, 1, "uint8")
        source = self._read(x)
        known = self.spec.activations.get(source)
        if known is not None and known != params.params:
            # quantised again with other parameters: a copy of the value carries them
            copy = self._fresh(f"{out}/float")
            self._emit("Identity", [source], [copy])
            source = copy
        self.spec.activations[source] = params.params
        self.quantised[out] = _Quantised(source, params.scale, params.zero_point, params.dtype)

    def _quantize_constant(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        """Q of a constant: the integer constant, computed now (round half to even, saturate)."""
        data = self.constants[inputs[0]].astype(np.float32)
        scale = self._scale(inputs[1])
        axis = self._axis(int(_attr(node, "axis", 1)), data.ndim, scale.size)
        zero, dtype = self._zero_point(
            inputs[2] if len(inputs) > 2 else "", scale.size, "uint8", tuple(_INT8_RANGE)
        )
        shape = _channel_shape(data.ndim, axis)
        low, high = _INT8_RANGE[dtype]
        q = np.rint(data / scale.astype(np.float32).reshape(shape)) + zero.reshape(shape)
        self.constants[node.output[0]] = np.clip(q, low, high).astype(dtype)

    def _dequantize(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        if self._has_attr(node, "block_size", 0):
            raise self._unsupported("blocked quantisation (block_size) is not supported")
        q, out = inputs[0], node.output[0]
        if q in self.constants:
            self._dequantize_constant(inputs, out, int(_attr(node, "axis", 1)))
            return
        if q in self.quantised:
            quantised = self.quantised[q]
            params = self._activation_params(inputs, 1, quantised.dtype)
            if (params.scale, params.zero_point, params.dtype) != (
                quantised.scale,
                quantised.zero_point,
                quantised.dtype,
            ):
                raise self._unsupported(
                    f"dequantises '{q}' with other parameters than it was quantised with"
                )
            self.alias[out] = quantised.float_name
            return
        if q in self.inputs:
            raise self._unsupported(
                f"graph input '{q}' is already quantised; s2c's host quantises float inputs "
                "(quantise the model with float inputs)"
            )
        raise self._unsupported(f"'{q}' is not the result of a QuantizeLinear or a constant")

    def _dequantize_constant(self, inputs: list[str], out: str, axis_attr: int) -> None:
        """DQ of a constant: the float constant (q - z) * s, as float32 like DequantizeLinear."""
        q = self.constants[inputs[0]]
        dtype = str(q.dtype)
        if dtype not in ("int8", "uint8", "int32"):
            raise self._unsupported(f"dequantises a {dtype} constant '{inputs[0]}'")
        scale = self._scale(inputs[1])
        axis = self._axis(axis_attr, q.ndim, scale.size)
        allowed = ("int32",) if dtype == "int32" else tuple(_INT8_RANGE)
        zero, _ = self._zero_point(inputs[2] if len(inputs) > 2 else "", scale.size, dtype, allowed)
        shape = _channel_shape(q.ndim, axis)
        steps = (q.astype(np.int64) - zero.reshape(shape)).astype(np.float32)
        self.constants[out] = steps * scale.astype(np.float32).reshape(shape)
        self.new_constants[out] = self.constants[out]
        self.dequantised[out] = _ConstantQuant(scale, zero, axis, dtype, steps)
        if scale.size == 1 and dtype != "int32":
            shift = 128 if dtype == "uint8" else 0
            self.spec.constants[out] = (float(scale[0]), int(zero[0]) - shift)

    def _dequantized(self, name: str, scale: str, zero: str, axis: int) -> str:
        """The float constant a DQ of constant `name` along `axis` makes (a QOperator operand)."""
        self._constant(name, "operand")
        out = self._fresh(f"{name}_dequantized")
        self._dequantize_constant([name, scale, zero], out, axis)
        return out

    def _axis(self, axis: int, rank: int, size: int) -> int | None:
        if size == 1:
            return None
        if not -rank <= axis < rank:
            raise InputError(f"{self._where()}: axis {axis} is outside rank {rank}")
        return axis % rank

    def _has_attr(self, node: onnx.NodeProto, key: str, default: int) -> bool:
        return int(_attr(node, key, default)) != default

    def _set_params(self, name: str, params: Params) -> None:
        known = self.spec.activations.get(name)
        if known is not None and known != params:
            raise self._unsupported(
                f"'{name}' is quantised twice with different parameters ({known} and {params})"
            )
        self.spec.activations[name] = params

    def _transparent(self, node: onnx.NodeProto, inputs: list[str], reads: list[str]) -> None:
        """A data-movement op reading a quantised tensor: the float op, same parameters."""
        if node.domain not in DEFAULT_DOMAINS or node.op_type not in TRANSPARENT_OPS:
            raise self._unsupported(
                f"reads the quantised tensor '{reads[0]}' but is not a QLinear op or one that "
                "only moves values"
            )
        if inputs[0] not in self.quantised or len(reads) != 1:
            raise self._unsupported(f"reads the quantised tensor '{reads[0]}' as a shape or axis")
        source = self.quantised[inputs[0]]
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.ClearField("input")
        copy.input.extend([source.float_name, *(self._read(n) if n else "" for n in inputs[1:])])
        self.nodes.append(copy)
        for out in node.output[:1] if node.op_type in ("MaxPool", "Dropout") else node.output:
            if out:
                self._set_params(out, source.params)
                self.quantised[out] = _Quantised(out, source.scale, source.zero_point, source.dtype)

    # -- weights ------------------------------------------------------------------------------
    def _record_weight_scales(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        """Weight scales per output channel in the IR layout, for a DQ'd constant weight."""
        if len(inputs) < 2 or inputs[1] not in self.dequantised or not node.output:
            return
        weight = self.dequantised[inputs[1]]
        if weight.dtype == "int32":
            raise self._unsupported(f"weight '{inputs[1]}' is int32; s2c takes int8 weights")
        data = self.constants[inputs[1]]
        if weight.steps.size and (weight.steps.min() < -128 or weight.steps.max() > 127):
            # asymmetric weights (uint8 zero points other than 128, int8 ones other than 0)
            raise self._unsupported(
                f"weight '{inputs[1]}' is asymmetric (zero points {_summary(weight.zero_point)}):"
                f" w - z spans [{int(weight.steps.min())}, {int(weight.steps.max())}], which "
                "does not fit int8; quantise weights symmetrically"
            )
        op, alpha = node.op_type, 1.0
        if op == "Conv":
            channels, axis = data.shape[0] if data.ndim else 0, 0
        elif data.ndim != 2:
            return  # a batched MatMul: matmul of two values, not a layer with weights
        elif op == "Gemm":
            trans = bool(_attr(node, "transB", 0))
            channels, axis = data.shape[0 if trans else 1], 0 if trans else 1
            alpha = abs(float(_attr(node, "alpha", 1.0)))
        else:
            channels, axis = data.shape[1], 1
        if weight.axis is not None and weight.axis != axis:
            raise self._unsupported(
                f"weight '{inputs[1]}' is quantised along axis {weight.axis}; s2c quantises "
                f"weights per output channel (axis {axis} here) or per tensor"
            )
        scales = np.broadcast_to(weight.scale, (channels,)) * alpha
        if alpha == 0.0:
            return
        self.spec.weight_scales[node.output[0]] = tuple(float(s) for s in scales)

    def _bias(self, name: str, scale: np.ndarray, axis: int) -> str:
        """A QOperator int32 bias at `scale` (per channel along `axis`, or per tensor)."""
        data = self._constant(name, "bias")
        if data.dtype != np.int32:
            raise self._unsupported(f"bias '{name}' is {data.dtype}; QLinear biases are int32")
        scale_name = self._add_constant(f"{name}_scale", scale.astype(np.float32))
        return self._dequantized(name, scale_name, "", axis)

    # -- QOperator ----------------------------------------------------------------------------
    def _dq_operand(self, inputs: list[str], at: int) -> str:
        """Operand `at` of a QLinear op (its scale and zero point follow) as a float value."""
        name = inputs[at]
        if name in self.constants:
            zero = inputs[at + 2] if at + 2 < len(inputs) else ""
            return self._dequantized(name, inputs[at + 1], zero, 1)
        source = self.quantised.get(name)
        if source is None:
            raise self._unsupported(f"operand '{name}' is not a quantised tensor")
        params = self._activation_params(inputs, at + 1, source.dtype)
        if (params.scale, params.zero_point) != (source.scale, source.zero_point):
            raise self._unsupported(
                f"reads '{name}' with other parameters than it was quantised with"
            )
        return source.float_name

    def _q_result(self, out: str, inputs: list[str], at: int, dtype: str) -> None:
        """The float result `out` takes the parameters at operands `at`, `at + 1`."""
        params = self._activation_params(inputs, at, dtype)
        self._set_params(out, params.params)
        self.quantised[out] = _Quantised(out, params.scale, params.zero_point, params.dtype)

    def _operand_dtype(self, name: str) -> str:
        if name in self.quantised:
            return self.quantised[name].dtype
        if name in self.constants:
            return str(self.constants[name].dtype)
        return "uint8"

    def _qlinear_conv(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        """QLinearConv(x, sx, zx, w, sw, zw, sy, zy, B?) = Q(Conv(DQ x, DQ w, DQ B))."""
        x = self._dq_operand(inputs, 0)
        w_scale = self._scale(inputs[4])
        weight = self._dequantized(inputs[3], inputs[4], inputs[5], 0)
        operands = [x, weight]
        if len(inputs) > 8 and inputs[8]:
            x_scale = self._scale(inputs[1])
            operands.append(self._bias(inputs[8], (x_scale * w_scale).astype(np.float32), 0))
        out = node.output[0]
        self._emit("Conv", operands, [out], **_attrs(node))
        self._record_weight_scales(_like(node, "Conv", operands, out), operands)
        self._q_result(out, inputs, 6, self._operand_dtype(inputs[0]))

    def _qlinear_matmul(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        """QLinearMatMul(a, sa, za, b, sb, zb, sy, zy) = Q(MatMul(DQ a, DQ b))."""
        a = self._dq_operand(inputs, 0)
        if inputs[3] in self.constants:
            b = self._dequantized(
                inputs[3], inputs[4], inputs[5], self.constants[inputs[3]].ndim - 1
            )
        else:
            b = self._dq_operand(inputs, 3)
        out = node.output[0]
        self._emit("MatMul", [a, b], [out])
        self._record_weight_scales(_like(node, "MatMul", [a, b], out), [a, b])
        self._q_result(out, inputs, 6, self._operand_dtype(inputs[0]))

    def _qgemm(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        """QGemm(A, sa, za, B, sb, zb, C?, sy?, zy?) = Q(Gemm(DQ A, DQ B, DQ C)), C at alpha*sa*sb.

        onnxruntime computes alpha * sa * sb * ((A - za)(B - zb) + C): C is an int32 bias at
        scale alpha * sa * sb.
        """
        a = self._dq_operand(inputs, 0)
        trans_b = int(_attr(node, "transB", 0))
        alpha = float(_attr(node, "alpha", 1.0))
        if inputs[3] not in self.constants:
            raise self._unsupported("B is not a constant")
        b = self._dequantized(inputs[3], inputs[4], inputs[5], 0 if trans_b else 1)
        operands = [a, b]
        if len(inputs) > 6 and inputs[6]:
            c = self._constant(inputs[6], "C")
            scale = alpha * self._scale(inputs[1]) * self._scale(inputs[4])
            axis = max(c.ndim - 1, 0)
            if scale.size > 1 and (c.ndim == 0 or c.shape[-1] != scale.size):
                raise self._unsupported(f"C of shape {c.shape} does not fit per-column scales")
            operands.append(self._bias(inputs[6], scale.astype(np.float32), axis))
        attrs = {k: v for k, v in _attrs(node).items() if k in ("alpha", "transA", "transB")}
        quantised_output = len(inputs) > 7 and bool(inputs[7])
        out = node.output[0]
        self._emit("Gemm", operands, [out], **attrs)
        self._record_weight_scales(_like(node, "Gemm", operands, out, **attrs), operands)
        if quantised_output:
            self._q_result(out, inputs, 7, self._operand_dtype(inputs[0]))

    def _qlinear_binary(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        """QLinearAdd/Mul(A, sa, za, B, sb, zb, sy, zy) = Q(Add/Mul(DQ A, DQ B))."""
        a, b = self._dq_operand(inputs, 0), self._dq_operand(inputs, 3)
        out = node.output[0]
        self._emit(node.op_type.removeprefix("QLinear"), [a, b], [out])
        self._q_result(out, inputs, 6, self._operand_dtype(inputs[0]))

    def _qlinear_concat(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        """QLinearConcat(sy, zy, (x, sx, zx)...) = Q(Concat(DQ x...))."""
        operands = [self._dq_operand(inputs, at) for at in range(2, len(inputs), 3)]
        out = node.output[0]
        self._emit("Concat", operands, [out], axis=int(_attr(node, "axis", 0)))
        self._q_result(out, inputs, 0, self._operand_dtype(inputs[2]))

    def _qlinear_unary(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        """QLinearAveragePool, QLinearGlobalAveragePool, QLinearSigmoid, QLinearLeakyRelu."""
        if int(_attr(node, "channels_last", 0)):
            raise self._unsupported("channels_last=1 is not supported")
        x = self._dq_operand(inputs, 0)
        attrs = {k: v for k, v in _attrs(node).items() if k != "channels_last"}
        out = node.output[0]
        self._emit(node.op_type.removeprefix("QLinear"), [x], [out], **attrs)
        self._q_result(out, inputs, 3, self._operand_dtype(inputs[0]))

    def _qlinear_softmax(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        """QLinearSoftmax(x, sx, zx, sy, zy) = Q(Softmax(DQ x)), Softmax of opset `opset`."""
        model_opset = next(
            (o.version for o in self.model.opset_import if o.domain in DEFAULT_DOMAINS), 0
        )
        if (int(_attr(node, "opset", model_opset)) >= 13) != (model_opset >= 13):
            raise self._unsupported(
                f"Softmax semantics of opset {_attr(node, 'opset', 0)} in an opset "
                f"{model_opset} model"
            )
        x = self._dq_operand(inputs, 0)
        out = node.output[0]
        self._emit("Softmax", [x], [out], axis=int(_attr(node, "axis", -1)))
        self._q_result(out, inputs, 3, self._operand_dtype(inputs[0]))

    # -- the float model ----------------------------------------------------------------------
    def _outputs(self) -> list[str]:
        """Graph outputs: an aliased one becomes an Identity of the value it stands for."""
        names = []
        for output in self.graph.output:
            name = output.name
            if name in self.quantised:
                self.node_name, self.op_type = name, "graph output"
                raise self._unsupported(
                    f"graph output '{name}' is a quantised tensor; s2c's host hands out float "
                    "outputs (end the graph with DequantizeLinear)"
                )
            if name in self.alias:
                source = self.alias[name]
                self.node_name = f"{name}/copy"
                self._emit("Identity", [source], [name])
                if source in self.spec.activations:
                    self.spec.activations[name] = self.spec.activations[source]
            names.append(name)
        return names

    def _model(self, outputs: list[str]) -> onnx.ModelProto:
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        graph = model.graph
        used = {n for node in self.nodes for n in node.input if n} | set(outputs)
        kept = [t for t in graph.initializer if t.name in used and t.name not in self.new_constants]
        new = [
            numpy_helper.from_array(np.ascontiguousarray(array), name)
            for name, array in self.new_constants.items()
            if name in used
        ]
        graph.ClearField("initializer")
        graph.initializer.extend([*kept, *new])
        graph.ClearField("node")
        graph.node.extend(self.nodes)
        graph.ClearField("value_info")
        initializers = {t.name for t in graph.initializer}
        inputs = [v for v in graph.input if v.name not in self.constants or v.name in initializers]
        graph.ClearField("input")
        graph.input.extend(inputs)
        domains = [o for o in model.opset_import if o.domain != MS_DOMAIN]
        model.ClearField("opset_import")
        model.opset_import.extend(domains)
        return model


# -- small helpers --------------------------------------------------------------------------------
def _summary(values: np.ndarray) -> str:
    unique = np.unique(values)
    return ", ".join(str(int(v)) for v in unique[:4]) + (", ..." if unique.size > 4 else "")


def _decode(tensor: onnx.TensorProto) -> np.ndarray:
    """An initializer's data; NaN and infinity are reported later, naming the node that reads
    them (a scale) or by the frontend (a float initializer of the float model)."""
    try:
        return numpy_helper.to_array(tensor)
    except Exception:  # numpy_helper raises anything: the frontend's decoder reports it
        return weight_array(tensor, f"initializer '{tensor.name}'")


def _attr(node: onnx.NodeProto, key: str, default):
    for attribute in node.attribute:
        if attribute.name == key:
            return helper.get_attribute_value(attribute)
    return default


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _like(node: onnx.NodeProto, op_type: str, inputs: list[str], out: str, **attrs):
    return helper.make_node(op_type, inputs, [out], name=node.name, **attrs)


def _channel_shape(rank: int, axis: int | None) -> tuple[int, ...]:
    if axis is None:
        return ()
    shape = [1] * rank
    shape[axis] = -1
    return tuple(shape)


_Handler = Callable[[_Splitter, onnx.NodeProto, list[str]], None]
_QOPERATOR: dict[str, _Handler] = {
    "QLinearConv": _Splitter._qlinear_conv,
    "QLinearMatMul": _Splitter._qlinear_matmul,
    "QGemm": _Splitter._qgemm,
    "QLinearAdd": _Splitter._qlinear_binary,
    "QLinearMul": _Splitter._qlinear_binary,
    "QLinearConcat": _Splitter._qlinear_concat,
    "QLinearAveragePool": _Splitter._qlinear_unary,
    "QLinearGlobalAveragePool": _Splitter._qlinear_unary,
    "QLinearSigmoid": _Splitter._qlinear_unary,
    "QLinearLeakyRelu": _Splitter._qlinear_unary,
    "QLinearSoftmax": _Splitter._qlinear_softmax,
}
