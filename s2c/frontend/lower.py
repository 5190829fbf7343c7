"""The frontend driver: an ONNX model becomes a verified `ir.Graph`.

1. read and check the model (`reader`), bind dynamic input dimensions and run ONNX shape
   inference (`shapes`);
2. graph inputs become IR inputs, initializers become constants (inputs that are also
   initializers, as old exporters wrote weights, are constants);
3. nodes are lowered in order: a node whose operands are all constants is folded (`folding`),
   any other node goes to the handler of its op type (`registry`); every result is cross-checked
   against the shape ONNX inferred;
4. graph outputs are bound (an output that is an input or a constant is copied by an identity
   node, so that every output is a node result, in ONNX order);
5. every unsupported node is reported at once; the graph is verified.

IR value names are the ONNX value names where possible; IR node names are the ONNX node names,
or `<op_type>_<index>` for unnamed nodes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import inliner

from ir.errors import InputError, InternalError, S2CError, UnsupportedError
from ir.graph import Graph, Value
from ir.types import TensorType
from ir.verifier import verify
from passes.fold_qdq import Calibration
from s2c.frontend import (  # noqa: F401  (each module registers its handlers)
    activations,
    constants,
    conv,
    elementwise,
    normalise,
    pool,
    recurrent,
    reduce,
    sequence,
    shape_ops,
    slicing,
)
from s2c.frontend.context import LoweringState, NodeContext, NodeUnsupported
from s2c.frontend.dtypes import ir_dtype, onnx_type_name
from s2c.frontend.folding import can_fold, evaluate
from s2c.frontend.quantized import apply_quantisation, split_quantisation
from s2c.frontend.reader import (
    DEFAULT_DOMAINS,
    check_model_proto,
    check_text,
    default_opset,
    load_model_proto,
)
from s2c.frontend.registry import HANDLERS, Result
from s2c.frontend.shapes import bind_inputs, infer_types
from s2c.frontend.weights import sparse_weight_array, weight_array

SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(HANDLERS))

# Handlers that compute their own constant results; the generic folding skips them.
# (Dropout too: folding it with training_mode=True would draw a random mask.)
SELF_FOLDING = frozenset({"Constant", "ConstantOfShape", "Dropout", "Identity", "Shape", "Size"})


def load_onnx(
    source: str | Path | onnx.ModelProto, batch: int = 1, calibration: Calibration | None = None
) -> Graph:
    """Lower an ONNX model (a path or a loaded ModelProto) to a verified IR graph.

    A quantised model (QDQ or QOperator) becomes a quantised graph with the model's own
    parameters (`s2c.frontend.quantized`).

    Args:
        source: the model file, or a ModelProto whose external data is already loaded.
        batch: the size given to every graph input's dynamic leading dimension.
        calibration: for a quantised model, where values it leaves in float get parameters;
            without it such values are unsupported.

    Raises:
        InputError: the model is unreadable or invalid, or has dynamic non-batch dimensions.
        UnsupportedError: some nodes cannot be lowered; all are listed, one per problem.
        InternalError: the lowering broke an IR invariant (a bug in s2c).
    """
    model = _read(source)
    if model.functions:
        model = inliner.inline_local_functions(model)
    check_text(model)
    bind_inputs(model, batch)
    model, quantisation = split_quantisation(model)  # QDQ / QOperator: float model + parameters
    lowering = _Lowering(model, infer_types(model))
    graph = lowering.run()
    if quantisation is not None:
        apply_quantisation(lowering.state, quantisation, calibration)
    return graph


def _read(source: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    """The checked model; a caller's ModelProto is copied, never changed."""
    if isinstance(source, onnx.ModelProto):
        check_model_proto(source)
        model = onnx.ModelProto()
        model.CopyFrom(source)
        return model
    if isinstance(source, (str, Path)):
        return load_model_proto(source)
    raise InputError(f"cannot read a model from a {type(source).__name__}")


def _refuse_double(value: onnx.ValueInfoProto, kind: str) -> None:
    """float64 graph inputs and outputs: the machine computes float32 (and integers).

    Weights in float64 are narrowed to float32 like any other constant, but a float64 input or
    output would silently lose range and precision at the user's boundary.
    """
    if value.type.tensor_type.elem_type != onnx.TensorProto.DOUBLE:
        return
    problem = f"{kind} '{value.name}': float64"
    raise UnsupportedError(
        f"{problem} is not supported: SpiNNaker2 computes in float32 and int8; export the "
        "model in float32",
        [problem],
    )


def unsupported_message(problems: list[str]) -> str:
    """The one-line message listing every problem and the supported ops."""
    count = len(problems)
    noun = "node" if count == 1 else "nodes"
    listed = "; ".join(problems)
    return f"{count} unsupported {noun}: {listed}; supported ops: {', '.join(SUPPORTED_OPS)}"


class _Lowering:
    """One lowering of one model."""

    def __init__(self, model: onnx.ModelProto, onnx_types: dict) -> None:
        self.model = model
        graph = Graph(model.graph.name or "graph")
        self.state = LoweringState(graph, default_opset(model), onnx_types=onnx_types)
        self.domains = {entry.domain: entry.version for entry in model.opset_import}
        self.problems: list[str] = []

    def run(self) -> Graph:
        self._collect_names()
        self._add_initializers()
        self._add_inputs()
        for index, node in enumerate(self.model.graph.node):
            self._lower_node(index, node)
        if not self.problems:
            self._add_outputs()
        if self.problems:
            raise UnsupportedError(unsupported_message(self.problems), self.problems)
        verify(self.state.graph)
        return self.state.graph

    # -- setup --------------------------------------------------------------------------------
    def _collect_names(self) -> None:
        graph, state = self.model.graph, self.state
        state.output_names = {v.name for v in graph.output}
        state.used_names = {n for node in graph.node for n in node.input if n}
        state.used_names |= state.output_names
        state.value_names = {n for node in graph.node for n in node.output if n}
        state.value_names |= {v.name for v in graph.input} | {t.name for t in graph.initializer}

    def _add_initializers(self) -> None:
        for tensor in self.model.graph.initializer:
            what = f"initializer '{tensor.name}'"
            self.state.constants[tensor.name] = weight_array(tensor, what)
        for sparse in self.model.graph.sparse_initializer:
            what = f"sparse initializer '{sparse.values.name}'"
            self.state.constants[sparse.values.name] = sparse_weight_array(sparse, what)

    def _add_inputs(self) -> None:
        for value in self.model.graph.input:
            if value.name in self.state.constants:
                continue
            tensor = value.type.tensor_type
            _refuse_double(value, "input")
            dtype = ir_dtype(tensor.elem_type)
            if dtype is None:
                problem = f"input '{value.name}': element type {onnx_type_name(tensor.elem_type)}"
                raise UnsupportedError(
                    f"{problem} is not supported; s2c computes with float and integer tensors",
                    [problem],
                )
            shape = tuple(int(d.dim_value) for d in tensor.shape.dim)
            self.state.values[value.name] = self.state.graph.add_input(
                value.name, TensorType(shape, dtype)
            )

    # -- nodes --------------------------------------------------------------------------------
    def _lower_node(self, index: int, node: onnx.NodeProto) -> None:
        known = self.state.values.keys() | self.state.constants.keys()
        if any(name and name not in known for name in node.input):
            return  # it reads a result of an unsupported node, already reported
        ctx = NodeContext(self.state, node, node.name or f"{node.op_type}_{index}")
        try:
            self._bind(ctx, self._results(ctx))
        except NodeUnsupported as exc:
            self.problems.append(f"'{ctx.display_name}' ({self._op_label(node)}): {exc.reason}")
            self._bind_placeholders(node)
        except S2CError:
            raise
        except Exception as exc:
            where = f"'{ctx.display_name}' ({self._op_label(node)})"
            raise InternalError(f"{where}: lowering failed: {type(exc).__name__}: {exc}") from exc

    def _results(self, ctx: NodeContext) -> list[Result]:
        node = ctx.node
        if node.domain not in DEFAULT_DOMAINS:
            raise NodeUnsupported("no lowering (s2c lowers the default ONNX domain only)")
        lower = HANDLERS.get(node.op_type)
        if node.op_type not in SELF_FOLDING and can_fold(node, self.state.constants):
            try:
                return list(evaluate(node, self.state.constants, self.state.opset))
            except ValueError as exc:
                if lower is None:
                    raise NodeUnsupported(f"no lowering, and folding it failed: {exc}") from None
        if lower is None:
            raise NodeUnsupported("no lowering")
        return lower(ctx)

    def _bind(self, ctx: NodeContext, results: list[Result]) -> None:
        for index, name in enumerate(ctx.node.output):
            result = results[index] if index < len(results) else None
            if not name:
                continue
            if result is None:
                if ctx.output_used(index):
                    raise NodeUnsupported(
                        f"output {index} '{name}' is used; s2c computes output 0 only"
                    )
                continue
            if isinstance(result, Value):
                self._check_shape(ctx, name, result)
                self.state.values[name] = result
            else:
                self.state.constants[name] = np.asarray(result)

    def _check_shape(self, ctx: NodeContext, name: str, value: Value) -> None:
        """The IR shape rule and ONNX shape inference must agree."""
        inferred = self.state.onnx_types.get(name)
        if not ctx.cross_check_shapes or inferred is None or None in inferred[0]:
            return
        if tuple(inferred[0]) != value.type.shape:
            raise InternalError(
                f"'{ctx.display_name}' ({ctx.op_type}): result '{name}' has shape "
                f"{value.type.shape} in the IR but {tuple(inferred[0])} by ONNX shape inference"
            )

    def _bind_placeholders(self, node: onnx.NodeProto) -> None:
        """Typed stand-ins for an unsupported node's results, so later nodes are still checked."""
        for name in node.output:
            inferred = self.state.onnx_types.get(name)
            if not name or name in self.state.values or inferred is None or None in inferred[0]:
                continue
            dtype = ir_dtype(inferred[1]) or "float32"
            self.state.values[name] = Value(name, TensorType(tuple(inferred[0]), dtype))

    def _op_label(self, node: onnx.NodeProto) -> str:
        if node.domain in DEFAULT_DOMAINS:
            return f"{node.op_type}, opset {self.state.opset}"
        version = self.domains.get(node.domain, "?")
        return f"{node.op_type}, {node.domain} opset {version}"

    # -- outputs ------------------------------------------------------------------------------
    def _add_outputs(self) -> None:
        graph, seen = self.state.graph, set()
        for output in self.model.graph.output:
            _refuse_double(output, "output")
            value = self._output_source(output.name)
            if value.producer is None or id(value) in seen:
                node = graph.add_node(
                    "identity",
                    [value],
                    [value.type],
                    name=f"{output.name}/copy",
                    output_names=[output.name],
                )
                value = node.outputs[0]
            seen.add(id(value))
            graph.outputs.append(value)

    def _output_source(self, name: str) -> Value:
        if name in self.state.constants:
            try:
                return self.state.ir_constant(name)
            except NodeUnsupported as exc:
                raise UnsupportedError(f"output '{name}': {exc.reason}", [exc.reason]) from None
        if name not in self.state.values:
            raise InputError(f"graph output '{name}' is never computed")
        return self.state.values[name]
