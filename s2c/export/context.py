"""What an emitter sees while it writes one IR node as ONNX: a model builder and its operands.

`ModelBuilder` is the model-wide state of one export: the ONNX nodes and initializers written so
far, the tensor and node names taken, and the opset. `NodeContext` wraps one IR node: the ONNX
names of its operands and results, the element type ONNX sees for each operand (float32 for a
quantised operand, which is read after its DequantizeLinear), and small builders for nodes and
constants named after the IR node. An emitter that cannot write its node raises
`NodeUnsupported` with the reason the user will read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ir.graph import Node
from ir.names import UniqueNames
from ir.registry import get_op


class NodeUnsupported(Exception):
    """Raised by an emitter: this node cannot be exported, for `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelBuilder:
    """The ONNX nodes, initializers and names of one export, in the order they were made."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.tensor_names = UniqueNames()
        self.node_names = UniqueNames()

    def node(
        self, op_type: str, inputs: list[str], outputs: list[str], name: str, **attrs: Any
    ) -> None:
        """Append one node; `name` is made unique among node names."""
        self.nodes.append(
            helper.make_node(op_type, inputs, outputs, name=self.node_names.fresh(name), **attrs)
        )

    def initializer(self, array: np.ndarray, base: str) -> str:
        """A new initializer holding `array` (0-d arrays stay scalars); returns its name."""
        name = self.tensor_names.fresh(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name


class NodeContext:
    """One IR node being written: operand and result names, and builders named after it."""

    def __init__(
        self,
        builder: ModelBuilder,
        node: Node,
        inputs: list[str],
        outputs: list[str],
        input_dtypes: list[str],
    ) -> None:
        self.builder = builder
        self.node = node
        self.inputs = inputs
        self.outputs = outputs
        self.input_dtypes = input_dtypes
        self.opset = builder.opset

    def attr(self, key: str) -> Any:
        """An attribute of the IR node, with the op's default when absent."""
        return get_op(self.node.op).with_defaults(self.node.attrs)[key]

    def shape(self, index: int) -> tuple[int, ...]:
        """The static shape of operand `index`."""
        return self.node.inputs[index].type.shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.node.outputs[0].type.shape

    # -- builders -------------------------------------------------------------------------------
    def op(
        self,
        op_type: str,
        inputs: list[str],
        output: str | None = None,
        *,
        tag: str | None = None,
        **attrs: Any,
    ) -> str:
        """Append an ONNX node with one result: `output`, or a fresh temporary; returns its name."""
        label = tag or op_type.lower()
        if output is None:
            output = self.builder.tensor_names.fresh(f"{self.node.name}/{label}")
        self.builder.node(op_type, inputs, [output], f"{self.node.name}/{label}", **attrs)
        return output

    def ints(self, values: Iterable[int], tag: str) -> str:
        """A 1-D int64 initializer (shapes, pads, axes, ...)."""
        array = np.asarray(list(values), dtype=np.int64).reshape(-1)
        return self.builder.initializer(array, f"{self.node.name}/{tag}")

    def scalar(self, value: float, dtype: str, tag: str) -> str:
        """A 0-d initializer of `dtype`; integer types clamp `value` to their range."""
        return self.builder.initializer(scalar_of(value, dtype), f"{self.node.name}/{tag}")

    def unsupported(self, reason: str) -> NoReturn:
        raise NodeUnsupported(reason)


def scalar_of(value: float, dtype: str) -> np.ndarray:
    """`value` as a 0-d array of `dtype`, clamped to the range of an integer type.

    This is how the reference rounds activation parameters to the operand's type.
    """
    kind = np.dtype(dtype)
    if np.issubdtype(kind, np.integer):
        limits = np.iinfo(kind)
        value = min(max(value, limits.min), limits.max)
    if kind == np.bool_:
        return np.array(bool(value))
    return np.array(value, dtype=kind)
