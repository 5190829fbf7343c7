"""The export driver: an IR graph becomes an ONNX model that onnxruntime runs.

1. verify the graph; choose the opset: the one asked for, raised to what the graph needs
   (13 for quantised values, 19 for dilated average pooling, ...) unless `exact_opset`;
2. graph inputs keep their names and types; a quantised input is declared float and passes
   QuantizeLinear -> DequantizeLinear, as the host quantises it;
3. nodes are written in order by the emitter of their op (`registry`), reading each operand's
   ONNX name: a constant's initializer (dequantised when quantised) or a result written earlier;
   a quantised result is written as float, then quantised and dequantised (`qdq`);
4. graph outputs keep their names: the tensor of that name is the result itself, or, when the
   output is a constant or listed twice, an Identity of it;
5. every node that cannot be written is reported at once.

Names: a result keeps its IR name (its dequantised float, for a quantised result; the raw int8 is
`<name>/quantized`, the float before quantisation `<name>/float`); helper tensors are named
`<IR node>/<what>`; clashes get `_1`, `_2`, ... suffixes.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ir.errors import InputError, UnsupportedError
from ir.graph import Graph, Node, Value
from ir.types import QuantParams
from ir.verifier import verify
from s2c.export.context import ModelBuilder, NodeContext, NodeUnsupported
from s2c.export.integer import IntegerEmitter, integer_form
from s2c.export.qdq import (
    DEQUANTIZE_DTYPES,
    QUANTIZE_DTYPES,
    QuantTensors,
    dequantize,
    derived_bias_quant,
    quant_tensors,
    quantize,
)
from s2c.export.registry import EMITTERS
from s2c.frontend.reader import MAX_OPSET

MIN_OPSET = 11  # Clip, Pad and Slice take their parameters as operands from here on
PRODUCER = "s2c"


def export_onnx(
    graph: Graph, opset: int = 17, *, exact_opset: bool = False, integer_ops: bool = True
) -> onnx.ModelProto:
    """The ONNX model computing what `graph` computes (a QDQ model for a quantised graph).

    Args:
        graph: a verified IR graph, float or quantised (docs/numerics.md).
        opset: the default-domain opset to write, in [MIN_OPSET, MAX_OPSET].
        exact_opset: when the graph needs a newer opset than `opset` (see `opset_needs`), raise
            instead of raising the opset to the lowest one that expresses every node.
        integer_ops: write the ops the image computes in integers as that exact integer
            computation (`integer`). False writes every quantised op as DequantizeLinear ->
            float op -> QuantizeLinear, the usual QDQ form, which onnxruntime evaluates in fp32
            and which is therefore not bit-exact with the image (benchmarks compare with it).

    Raises:
        InputError: `opset` is outside [MIN_OPSET, MAX_OPSET].
        UnsupportedError: some nodes have no ONNX form (or need a newer opset and
            `exact_opset` is set); all are listed, one per problem.
        VerifyError: the graph breaks an IR invariant.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InputError(f"export opset {opset} is outside the supported {MIN_OPSET}..{MAX_OPSET}")
    verify(graph)
    needs = [(need, why) for need, why in opset_needs(graph) if need > opset]
    if needs and exact_opset:
        problems = [f"{why} needs opset {need}, asked for {opset}" for need, why in needs]
        raise UnsupportedError(f"cannot export at opset {opset}: {'; '.join(problems)}", problems)
    target = max([opset, *(need for need, _ in needs)])
    return _Export(graph, target, integer_ops).run()


def opset_needs(graph: Graph) -> list[tuple[int, str]]:
    """(opset, what needs it) for everything in `graph` that needs more than MIN_OPSET."""
    needs: list[tuple[int, str]] = []
    for value in graph.values():
        quant, dtype = value.type.quant, value.type.dtype
        if quant is None:
            continue
        table = DEQUANTIZE_DTYPES if value.is_constant else QUANTIZE_DTYPES
        if dtype in table:  # other element types are reported as unsupported
            needs.append((table[dtype], f"quantised {dtype} value %{value.name}"))
    for node in graph.nodes:
        emitter = EMITTERS.get(node.op)
        need = emitter.needs(node) if emitter and emitter.needs else None
        if need is not None:
            needs.append((need[0], f"'{node.name}' ({node.op}): {need[1]}"))
    return [(need, why) for need, why in needs if need > MIN_OPSET]


def _elem_type(dtype: str) -> int:
    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def _onnx_dtype(value: Value) -> str:
    """The element type ONNX consumers see: float32 for a quantised value (dequantised)."""
    return "float32" if value.type.quant is not None else value.type.dtype


class _Export:
    """One export of one graph."""

    def __init__(self, graph: Graph, opset: int, integer_ops: bool = True) -> None:
        self.graph = graph
        self.integer_ops = integer_ops
        self.builder = ModelBuilder(opset)
        self.read: dict[int, str] = {}  # value -> the ONNX name its consumers read
        self.output_names: dict[int, str] = {}  # graph output value -> its reserved name
        self.codes: dict[int, str] = {}  # quantised value -> the ONNX name of its integer codes
        self.problems: list[str] = []

    def run(self) -> onnx.ModelProto:
        inputs = [self._add_input(value) for value in self.graph.inputs]
        self._reserve_output_names()
        for node in self.graph.nodes:
            self._add_node(node)
        outputs = self._bind_outputs()
        if self.problems:
            count = len(self.problems)
            noun = "node" if count == 1 else "nodes"
            message = f"cannot export {count} {noun} to ONNX: {'; '.join(self.problems)}"
            raise UnsupportedError(message, self.problems)
        return self._model(inputs, outputs)

    # -- inputs and outputs ---------------------------------------------------------------------
    def _add_input(self, value: Value) -> onnx.ValueInfoProto:
        name = self.builder.tensor_names.fresh(value.name)
        self.read[id(value)] = name
        if value.type.quant is not None:
            stored = self.builder.tensor_names.fresh(f"{value.name}/quantized")
            real = self.builder.tensor_names.fresh(f"{value.name}/dequantized")
            params = self._quant_tensors(value, value.type.quant)
            quantize(self.builder, name, params, stored)
            dequantize(self.builder, stored, params, real)
            self.read[id(value)] = real
            self.codes[id(value)] = stored
        return self._value_info(name, value)

    def _reserve_output_names(self) -> None:
        for value in self.graph.outputs:
            if id(value) in self.output_names or any(value is v for v in self.graph.inputs):
                continue
            self.output_names[id(value)] = self.builder.tensor_names.fresh(value.name)

    def _bind_outputs(self) -> list[onnx.ValueInfoProto]:
        """One ValueInfo per graph output; constants and repeats are copied by Identity."""
        outputs, listed = [], set()
        for value in self.graph.outputs:
            try:
                source = self._operand(value)
            except NodeUnsupported as exc:
                self.problems.append(f"output %{value.name}: {exc.reason}")
                continue
            name = self.output_names.get(id(value), source)
            if name in listed:
                name = self.builder.tensor_names.fresh(value.name)
            if name != source:
                self.builder.node("Identity", [source], [name], f"{name}/copy")
            listed.add(name)
            outputs.append(self._value_info(name, value))
        return outputs

    def _value_info(self, name: str, value: Value) -> onnx.ValueInfoProto:
        elem = _elem_type(_onnx_dtype(value))
        return helper.make_tensor_value_info(name, elem, list(value.type.shape))

    # -- operands -------------------------------------------------------------------------------
    def _operand(self, value: Value, quant: QuantParams | None = None) -> str:
        """The ONNX name that holds `value` as its consumers read it."""
        if id(value) in self.read:
            return self.read[id(value)]
        if not value.is_constant:
            # Only a result of an unsupported node (already reported) can be missing.
            return value.name
        quant = quant or value.type.quant
        if quant is not None and value.type.dtype not in DEQUANTIZE_DTYPES:
            raise NodeUnsupported(
                f"quantised constant %{value.name} has element type {value.type.dtype}; "
                f"DequantizeLinear reads {', '.join(DEQUANTIZE_DTYPES)}"
            )
        data = np.asarray(value.constant_data, dtype=np.dtype(value.type.dtype))
        name = self.builder.initializer(data, value.name)
        if quant is not None:
            real = self.builder.tensor_names.fresh(f"{value.name}/dequantized")
            dequantize(self.builder, name, self._quant_tensors(value, quant), real)
            name = real
        self.read[id(value)] = name
        return name

    def _quant_tensors(self, value: Value, quant: QuantParams) -> QuantTensors:
        return quant_tensors(self.builder, quant, value.type.dtype, value.name)

    # -- nodes ----------------------------------------------------------------------------------
    def _add_node(self, node: Node) -> None:
        if self.integer_ops and integer_form(node):
            self._add_integer_node(node)
            return
        results = [self._result_name(value) for value in node.outputs]
        try:
            operands, dtypes = self._operands(node)
            self._emit(NodeContext(self.builder, node, operands, results, dtypes))
        except NodeUnsupported as exc:
            self.problems.append(f"'{node.name}' ({node.op}): {exc.reason}")
        for value, result in zip(node.outputs, results, strict=True):
            self.read[id(value)] = self._quantised(value, result)

    def _add_integer_node(self, node: Node) -> None:
        """A node written as integer ops (`integer`): int8 codes in, int8 codes out."""
        (value,) = node.outputs
        stored = self.builder.tensor_names.fresh(f"{value.name}/quantized")
        read = node.inputs[:1] if node.op in ("conv", "dense") else node.inputs  # weights inline
        IntegerEmitter(self.builder, node, [self._codes(v) for v in read]).emit(stored)
        self.codes[id(value)] = stored
        real = self._final_name(value)
        dequantize(self.builder, stored, self._quant_tensors(value, value.type.quant), real)
        self.read[id(value)] = real

    def _codes(self, value: Value) -> str:
        """The ONNX name of a quantised value's int8 codes (an initializer for a constant)."""
        if id(value) not in self.codes:
            if not value.is_constant:  # the result of an unsupported node, already reported
                return value.name
            data = np.asarray(value.constant_data, dtype=np.dtype(value.type.dtype))
            self.codes[id(value)] = self.builder.initializer(data, f"{value.name}/quantized")
        return self.codes[id(value)]

    def _operands(self, node: Node) -> tuple[list[str], list[str]]:
        """The ONNX names of the node's operands and the element types ONNX sees for them."""
        bias_quant = derived_bias_quant(node)
        operands, dtypes = [], []
        for position, value in enumerate(node.inputs):
            quant = bias_quant if position == 2 else None
            operands.append(self._operand(value, quant))
            dtypes.append("float32" if quant is not None else _onnx_dtype(value))
        return operands, dtypes

    def _emit(self, ctx: NodeContext) -> None:
        emitter = EMITTERS.get(ctx.node.op)
        if emitter is None:
            ctx.unsupported("no ONNX form")
        for value in ctx.node.outputs:
            if value.type.quant is not None and value.type.dtype not in QUANTIZE_DTYPES:
                ctx.unsupported(
                    f"quantised result %{value.name} has element type {value.type.dtype}; "
                    f"QuantizeLinear produces {', '.join(QUANTIZE_DTYPES)}"
                )
        emitter.emit(ctx)

    def _result_name(self, value: Value) -> str:
        """The name the emitter writes: `<name>/float` for a quantised result, else its name."""
        if value.type.quant is not None:
            return self.builder.tensor_names.fresh(f"{value.name}/float")
        return self._final_name(value)

    def _final_name(self, value: Value) -> str:
        if id(value) in self.output_names:
            return self.output_names[id(value)]
        return self.builder.tensor_names.fresh(value.name)

    def _quantised(self, value: Value, result: str) -> str:
        """Quantise and dequantise a quantised result; returns the name consumers read."""
        if value.type.quant is None:
            return result
        stored = self.builder.tensor_names.fresh(f"{value.name}/quantized")
        real = self._final_name(value)
        params = self._quant_tensors(value, value.type.quant)
        quantize(self.builder, result, params, stored)
        dequantize(self.builder, stored, params, real)
        self.codes[id(value)] = stored
        return real

    # -- the model ------------------------------------------------------------------------------
    def _model(
        self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
    ) -> onnx.ModelProto:
        builder = self.builder
        graph = helper.make_graph(
            builder.nodes, self.graph.name, inputs, outputs, builder.initializers
        )
        opsets = [helper.make_opsetid("", builder.opset)]
        return helper.make_model(
            graph,
            opset_imports=opsets,
            ir_version=helper.find_min_ir_version_for(opsets),
            producer_name=PRODUCER,
        )
