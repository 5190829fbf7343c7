"""Dead-code elimination: remove nodes none of whose results is used or returned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ir.graph import Graph
from passes.base import Pass
from passes.rewrite import is_graph_output


@dataclass(frozen=True)
class DeadCode(Pass):
    """Remove unused nodes, last to first, so chains of dead nodes go in one run."""

    name: ClassVar[str] = "dead-code"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in reversed(list(graph.nodes)):
            live = any(v.uses or is_graph_output(graph, v) for v in node.outputs)
            if not live:
                graph.remove_node(node)
                changed = True
        return changed
