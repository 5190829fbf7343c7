"""Constant folding: evaluate every node whose operands are all constants.

The node is evaluated with the IR's reference semantics (`ir.reference.evaluate`) and its results
become constants. A result that is a graph output stays computed by a node, since the image has
no way to hand the host a constant (and such models are degenerate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ir.graph import Graph
from ir.reference import evaluate
from passes.base import Pass
from passes.rewrite import attrs_of, is_graph_output


@dataclass(frozen=True)
class ConstantFold(Pass):
    """Replace nodes with constant operands by their constant results."""

    name: ClassVar[str] = "constant-fold"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if not node.inputs or not all(v.is_constant for v in node.inputs):
                continue
            if any(is_graph_output(graph, v) for v in node.outputs):
                continue
            results = evaluate(node.op, attrs_of(node), [v.constant_data for v in node.inputs])
            for value, array in zip(node.outputs, results):
                folded = graph.constant(value.name + "_folded", array.astype(value.type.dtype))
                graph.replace_all_uses(value, folded)
            graph.remove_node(node)
            changed = True
        return changed
