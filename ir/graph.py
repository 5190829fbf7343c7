"""The dataflow graph: nodes connected by SSA values.

Every `Value` has at most one producer (a node output) and records its uses. A value with no
producer is either a graph input or a constant (`data` is set). `Graph.nodes` is kept in a
topological order; mutations go through `Graph` methods so that uses stay consistent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ir.errors import InternalError
from ir.names import UniqueNames
from ir.types import TensorType

Attr = int | float | str | tuple[int, ...] | tuple[float, ...]


@dataclass(eq=False)
class Value:
    """An SSA value: produced once (by a node, or given as input or constant), used many times."""

    name: str
    type: TensorType
    producer: Node | None = None
    data: np.ndarray | None = None
    uses: list[tuple[Node, int]] = field(default_factory=list)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def constant_data(self) -> np.ndarray:
        """The data of a constant; asking a non-constant is a bug in the caller."""
        if self.data is None:
            raise InternalError(f"%{self.name} is not a constant")
        return self.data

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


@dataclass(eq=False)
class Node:
    """An operation: op name, operand values, result values and attributes."""

    name: str
    op: str
    inputs: list[Value]
    outputs: list[Value]
    attrs: dict[str, Any] = field(default_factory=dict)  # kinds checked by the verifier

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def __repr__(self) -> str:
        return f"Node({self.name!r}, {self.op})"


class Graph:
    """A whole model: inputs, constants, nodes in topological order, outputs."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self._names = UniqueNames()

    # -- construction -------------------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        """`base` if unused, else `base_1`, `base_2`, ... (deterministic)."""
        return self._names.fresh(base)

    def add_input(self, name: str, type_: TensorType) -> Value:
        value = Value(self.unique_name(name), type_)
        self.inputs.append(value)
        return value

    def constant(self, name: str, data: np.ndarray, type_: TensorType | None = None) -> Value:
        """A constant value; `data` is stored as given (callers choose the dtype)."""
        array = np.require(data, requirements="C")  # keeps 0-d arrays 0-d
        if type_ is None:
            type_ = TensorType(tuple(int(d) for d in array.shape), str(array.dtype))
        return Value(self.unique_name(name), type_, data=array)

    def add_node(
        self,
        op: str,
        inputs: Iterable[Value],
        output_types: Iterable[TensorType],
        attrs: dict[str, Any] | None = None,
        name: str | None = None,
        output_names: Iterable[str] | None = None,
        index: int | None = None,
    ) -> Node:
        """Create a node, its result values and the use records; insert at `index` (default end)."""
        node_name = self.unique_name(name or op)
        types = list(output_types)
        names = list(output_names) if output_names is not None else []
        names += [f"{node_name}_out{i}" for i in range(len(names), len(types))]
        node = Node(node_name, op, list(inputs), [], dict(attrs or {}))
        node.outputs = [Value(self.unique_name(n), t, producer=node) for n, t in zip(names, types)]
        for position, value in enumerate(node.inputs):
            value.uses.append((node, position))
        if index is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(index, node)
        return node

    # -- mutation -----------------------------------------------------------------------------
    def set_input(self, node: Node, position: int, value: Value) -> None:
        """Make `node.inputs[position]` be `value`, keeping use lists right."""
        old = node.inputs[position]
        old.uses = [(n, p) for n, p in old.uses if not (n is node and p == position)]
        node.inputs[position] = value
        value.uses.append((node, position))

    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Every use of `old` (and graph outputs that are `old`) now uses `new`."""
        for node, position in list(old.uses):
            self.set_input(node, position, new)
        self.outputs = [new if v is old else v for v in self.outputs]

    def remove_node(self, node: Node) -> None:
        """Remove a node whose results are unused."""
        for value in node.outputs:
            if value.uses or any(v is value for v in self.outputs):
                raise ValueError(f"cannot remove {node.name}: result {value.name} still used")
        for position, value in enumerate(node.inputs):
            value.uses = [(n, p) for n, p in value.uses if not (n is node and p == position)]
        self.nodes.remove(node)

    # -- queries ------------------------------------------------------------------------------
    def values(self) -> Iterator[Value]:
        """Every value once: inputs, then constants and results in node order."""
        seen: set[int] = set()
        for value in self.inputs:
            seen.add(id(value))
            yield value
        for node in self.nodes:
            for value in [*node.inputs, *node.outputs]:
                if id(value) not in seen:
                    seen.add(id(value))
                    yield value
        for value in self.outputs:
            if id(value) not in seen:
                seen.add(id(value))
                yield value

    def constants(self) -> list[Value]:
        return [v for v in self.values() if v.is_constant]

    def find_node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def sort_topologically(self) -> None:
        """Reorder nodes so each comes after the producers of its inputs (stable)."""
        placed: set[int] = set()
        ordered: list[Node] = []
        pending = list(self.nodes)
        while pending:
            remaining = []
            for node in pending:
                ready = all(v.producer is None or id(v.producer) in placed for v in node.inputs)
                if ready:
                    ordered.append(node)
                    placed.add(id(node))
                else:
                    remaining.append(node)
            if len(remaining) == len(pending):
                names = ", ".join(n.name for n in remaining[:5])
                raise ValueError(f"graph has a cycle through: {names}")
            pending = remaining
        self.nodes = ordered
