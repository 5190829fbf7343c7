"""Remove identity-like nodes: identity, dropout (inference) and casts to the same type.

    %y = identity(%x)  ->  uses of %y use %x

When %y is a graph output, %x takes its name if %x is a node result used only here; otherwise
the node stays (the model's output names must survive).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ir.graph import Graph, Node
from passes.base import Pass
from passes.rewrite import is_graph_output, replace_value


def _is_identity(node: Node) -> bool:
    if node.op in ("identity", "dropout"):
        return True
    return node.op == "cast" and node.attrs.get("to") == node.inputs[0].type.dtype


@dataclass(frozen=True)
class RemoveIdentity(Pass):
    """Remove identity, dropout and no-op casts."""

    name: ClassVar[str] = "remove-identity"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if not _is_identity(node):
                continue
            source, result = node.inputs[0], node.outputs[0]
            if is_graph_output(graph, result):
                movable = source.producer is not None and len(source.uses) == 1
                if not movable or is_graph_output(graph, source):
                    continue
            replace_value(graph, result, source)
            graph.remove_node(node)
            changed = True
        return changed
