"""The IR verifier: checks every invariant a pass may rely on, and names the first broken one.

Checked, in order: graph inputs and constants have no producer; every node's op is registered, its
operand count fits, its attributes are known and of the declared kind, required ones present;
operands are defined before use (topological order, SSA: one producer per value); use lists match
the operands; result types equal what the op's shape rule computes; the op's verify hook passes;
every graph output is defined.
"""

from __future__ import annotations

from ir.errors import VerifyError
from ir.graph import Graph, Node, Value
from ir.registry import OPS


def verify(graph: Graph) -> None:
    """Raise VerifyError naming the node and the broken invariant, or return None."""
    defined: set[int] = set()
    for value in graph.inputs:
        if value.producer is not None or value.is_constant:
            raise VerifyError(f"graph input %{value.name} must be a plain input")
        defined.add(id(value))
    for node in graph.nodes:
        _verify_operands_defined(node, defined)
        _verify_node(node)
        for value in node.outputs:
            if value.producer is not node or id(value) in defined:
                raise VerifyError(f"'{node.name}' ({node.op}): result %{value.name} is not SSA")
            defined.add(id(value))
    _verify_uses(graph)
    for value in graph.outputs:
        if id(value) not in defined and not value.is_constant:
            raise VerifyError(f"graph output %{value.name} is never defined")


def _verify_operands_defined(node: Node, defined: set[int]) -> None:
    for value in node.inputs:
        if value.is_constant:
            if value.producer is not None:
                raise VerifyError(f"constant %{value.name} has a producer")
            continue
        if id(value) not in defined:
            raise VerifyError(
                f"'{node.name}' ({node.op}): operand %{value.name} used before definition"
            )


def _verify_node(node: Node) -> None:
    where = f"'{node.name}' ({node.op})"
    op = OPS.get(node.op)
    if op is None:
        raise VerifyError(f"{where}: unknown op")
    low, high = op.operands
    if not low <= len(node.inputs) <= high:
        raise VerifyError(f"{where}: takes {low}..{high} operands, has {len(node.inputs)}")
    for key, value in node.attrs.items():
        spec = op.attrs.get(key)
        if spec is None:
            raise VerifyError(f"{where}: unknown attribute {key!r}")
        if not spec.accepts(value):
            raise VerifyError(f"{where}: attribute {key}={value!r} is not of kind {spec.kind}")
    missing = [k for k, spec in op.attrs.items() if spec.required and k not in node.attrs]
    if missing:
        raise VerifyError(f"{where}: missing attributes {', '.join(missing)}")
    attrs = op.with_defaults(node.attrs)
    types = [v.type for v in node.inputs]
    if op.verify is not None:
        reason = op.verify(types, attrs)
        if reason:
            raise VerifyError(f"{where}: {reason}")
    if op.infer is not None:
        _verify_result_types(node, op.infer(types, attrs), where)


def _verify_result_types(node: Node, expected: list, where: str) -> None:
    if len(expected) != len(node.outputs):
        raise VerifyError(f"{where}: has {len(node.outputs)} results, expected {len(expected)}")
    for value, type_ in zip(node.outputs, expected):
        if value.type.shape != type_.shape:
            raise VerifyError(
                f"{where}: result %{value.name} has shape {value.type.shape}, "
                f"shape rule gives {type_.shape}"
            )


def _verify_uses(graph: Graph) -> None:
    expected: dict[int, list[tuple[int, int]]] = {}
    values: dict[int, Value] = {}
    for node in graph.nodes:
        for position, value in enumerate(node.inputs):
            expected.setdefault(id(value), []).append((id(node), position))
            values[id(value)] = value
    for key, value in values.items():
        recorded = sorted((id(n), p) for n, p in value.uses)
        if recorded != sorted(expected[key]):
            raise VerifyError(f"use list of %{value.name} is out of date")
