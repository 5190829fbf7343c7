"""Small graph-rewriting helpers shared by passes."""

from __future__ import annotations

from ir.graph import Graph, Node, Value
from ir.registry import get_op


def is_graph_output(graph: Graph, value: Value) -> bool:
    return any(v is value for v in graph.outputs)


def single_use(graph: Graph, value: Value) -> Node | None:
    """The only node using `value` when it has exactly one use and is not a graph output."""
    if len(value.uses) != 1 or is_graph_output(graph, value):
        return None
    return value.uses[0][0]


def replace_value(graph: Graph, old: Value, new: Value) -> None:
    """Redirect every use of `old` to `new`.

    When `old` is a graph output, `new` takes over its name, so that the model's output names
    survive rewriting (`new` must then be a node result that is not already a graph output).
    """
    if is_graph_output(graph, old):
        if new.producer is None or is_graph_output(graph, new):
            raise ValueError(f"cannot move graph output %{old.name} onto %{new.name}")
        new.name = old.name
    graph.replace_all_uses(old, new)


def attrs_of(node: Node) -> dict:
    """The node's attributes completed with the op's defaults."""
    return get_op(node.op).with_defaults(node.attrs)
