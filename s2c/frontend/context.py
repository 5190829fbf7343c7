"""What a handler sees while it lowers one ONNX node: operands, attributes and an IR builder.

`LoweringState` is the model-wide state (the IR graph being built, ONNX name -> IR value,
ONNX name -> compile-time constant). `NodeContext` wraps one node: its attributes with ONNX
defaults, its operands as IR values or as constants, and `emit`, which creates an IR node whose
result types come from the IR op's own shape rule. A handler that cannot lower its node raises
`NodeUnsupported` with the reason the user will read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import onnx
from onnx import helper

from ir.errors import InputError
from ir.graph import Attr, Graph, Value
from ir.registry import get_op
from ir.types import TensorType
from s2c.frontend.dtypes import ir_array


def make_constant(graph: Graph, base: str, array: np.ndarray) -> Value:
    """`graph.constant(base, array)`, except that a 0-d array stays 0-d.

    `Graph.constant` stores np.ascontiguousarray(data), which turns a scalar into shape (1,);
    ONNX scalars must keep shape () for broadcasting to give ONNX's result shapes.
    """
    if array.ndim:
        return graph.constant(base, array)
    return Value(graph.unique_name(base), TensorType((), str(array.dtype)), data=array.copy())


class NodeUnsupported(Exception):
    """Raised by a handler: this node cannot be lowered, for `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class LoweringState:
    """The model-wide state of one lowering."""

    graph: Graph
    opset: int
    values: dict[str, Value] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    ir_constants: dict[str, Value] = field(default_factory=dict)
    onnx_types: dict[str, tuple[tuple[int | None, ...], int]] = field(default_factory=dict)
    used_names: set[str] = field(default_factory=set)
    output_names: set[str] = field(default_factory=set)
    value_names: set[str] = field(default_factory=set)

    def ir_constant(self, name: str) -> Value:
        """The IR constant of the compile-time constant ONNX value `name` (made once)."""
        if name in self.ir_constants:
            return self.ir_constants[name]
        array = ir_array(np.asarray(self.constants[name]))
        if array is None:
            dtype = self.constants[name].dtype
            raise NodeUnsupported(
                f"constant '{name}' has element type {dtype}, which the IR cannot hold"
            )
        base = f"{name}/constant" if name in self.output_names else name
        value = make_constant(self.graph, base, array)
        self.ir_constants[name] = value
        return value


class NodeContext:
    """One ONNX node being lowered: its operands, attributes and an IR node builder."""

    def __init__(self, state: LoweringState, node: onnx.NodeProto, display_name: str) -> None:
        self.state = state
        self.node = node
        self.op_type = node.op_type
        self.opset = state.opset
        self.display_name = display_name
        clash = display_name in state.value_names
        self.name = f"{display_name}_node" if clash else display_name
        self._attributes = {a.name: a for a in node.attribute}
        # A handler clears this where ONNX shape inference is known to differ from onnxruntime.
        self.cross_check_shapes = True

    # -- attributes ---------------------------------------------------------------------------
    def has_attr(self, key: str) -> bool:
        return key in self._attributes

    def attr(self, key: str, default: Any = None) -> Any:
        """The attribute's value (bytes decoded, lists as tuples), or `default` when absent."""
        attribute = self._attributes.get(key)
        if attribute is None:
            return default
        value = helper.get_attribute_value(attribute)
        try:
            if isinstance(value, bytes):
                return value.decode("utf-8")
            if isinstance(value, list):
                return tuple(v.decode("utf-8") if isinstance(v, bytes) else v for v in value)
        except UnicodeDecodeError:
            raise InputError(
                f"'{self.display_name}' ({self.op_type}): attribute '{key}' is not valid UTF-8"
            ) from None
        return value

    # -- operands -----------------------------------------------------------------------------
    def has_input(self, index: int) -> bool:
        return index < len(self.node.input) and self.node.input[index] != ""

    def input_names(self) -> list[str]:
        return [n for n in self.node.input if n]

    def constant(self, index: int) -> np.ndarray | None:
        """The operand's compile-time value, or None when it has none (or is absent)."""
        if not self.has_input(index):
            return None
        return self.state.constants.get(self.node.input[index])

    def require_constant(self, index: int, what: str) -> np.ndarray:
        """The operand's compile-time value; the node is unsupported when it has none."""
        value = self.constant(index)
        if value is None:
            self.unsupported(f"{what} operand is not a compile-time constant")
        return value

    def input(self, index: int) -> Value:
        """The operand as an IR value (constants become IR constants)."""
        name = self.node.input[index]
        if name in self.state.constants:
            return self.state.ir_constant(name)
        return self.state.values[name]

    def inputs(self) -> list[Value]:
        """Every present operand as an IR value, in order."""
        return [self.input(i) for i in range(len(self.node.input)) if self.has_input(i)]

    def input_type(self, index: int) -> TensorType:
        return self.input(index).type

    def input_shape(self, index: int) -> tuple[int, ...]:
        """The operand's static shape (constants included)."""
        name = self.node.input[index]
        if name in self.state.constants:
            return tuple(int(d) for d in np.shape(self.state.constants[name]))
        return self.state.values[name].type.shape

    # -- results ------------------------------------------------------------------------------
    def output_name(self, index: int) -> str:
        return self.node.output[index]

    def output_used(self, index: int) -> bool:
        """True when a later node or the graph output reads this result."""
        if index >= len(self.node.output) or not self.node.output[index]:
            return False
        return self.node.output[index] in self.state.used_names

    def emit(
        self,
        op: str,
        inputs: list[Value],
        attrs: dict[str, Attr] | None = None,
        *,
        output: int | None = 0,
        tag: str | None = None,
    ) -> Value:
        """Add a one-result IR node; its result is ONNX output `output`, or a temporary."""
        names = [self.output_name(output) if output is not None else self._temp_name(tag or op)]
        return self.emit_many(op, inputs, attrs, names, tag=tag)[0]

    def emit_many(
        self,
        op: str,
        inputs: list[Value],
        attrs: dict[str, Attr] | None,
        result_names: list[str],
        *,
        tag: str | None = None,
    ) -> list[Value]:
        """Add an IR node whose result types come from the op's shape rule."""
        attrs = dict(attrs or {})
        types = self._result_types(op, inputs, attrs)
        node_name = self.name if tag is None else f"{self.name}/{tag}"
        node = self.state.graph.add_node(
            op, inputs, types, attrs, name=node_name, output_names=result_names
        )
        return node.outputs

    def emit_step(
        self,
        op: str,
        inputs: list[Value],
        attrs: dict[str, Attr] | None = None,
        *,
        final: bool,
        tag: str,
    ) -> Value:
        """One step of a multi-node lowering: the final step yields ONNX output 0."""
        if final:
            return self.emit(op, inputs, attrs)
        return self.emit(op, inputs, attrs, output=None, tag=tag)

    def normalise_axis(self, axis: int, rank: int) -> int:
        """An ONNX axis (negative counts from the end) as 0..rank-1."""
        if not -rank <= axis < rank:
            self.unsupported(f"axis {axis} is outside rank {rank}")
        return axis % rank

    def new_constant(self, array: np.ndarray, tag: str) -> Value:
        """A fresh IR constant made by this handler (e.g. a transposed weight)."""
        data = ir_array(np.asarray(array))
        if data is None:
            self.unsupported(
                f"{tag} has element type {np.asarray(array).dtype}, which the IR cannot hold"
            )
        return make_constant(self.state.graph, f"{self.name}/{tag}", data)

    def unsupported(self, reason: str) -> NoReturn:
        raise NodeUnsupported(reason)

    def _temp_name(self, tag: str) -> str:
        first = next((n for n in self.node.output if n), self.name)
        return f"{first}/{tag}"

    def _result_types(self, op: str, inputs: list[Value], attrs: dict[str, Attr]) -> list:
        """The op's shape rule; an operand the rule rejects makes the node unsupported."""
        definition = get_op(op)
        full = definition.with_defaults(attrs)
        types = [v.type for v in inputs]
        try:
            reason = definition.verify(types, full) if definition.verify else None
            if reason:
                operands = ", ".join(f"'{name}'" for name in self.input_names())
                self.unsupported(f"cannot lower to {op} (operands {operands}): {reason}")
            return definition.infer(types, full) if definition.infer else []
        except (ValueError, IndexError) as exc:
            self.unsupported(f"cannot lower to {op}: {exc}")
