"""Lower `split` into one `slice` per piece, so every node has a single result.

   %a, %b = split(%x) {axis = 1, sizes = (2, 3)}
-> %a = slice(%x) {starts = (0, 0, ..), stops = (N, 2, ..), steps = (1, ..)}
   %b = slice(%x) {starts = (0, 2, ..), stops = (N, 5, ..), steps = (1, ..)}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ir.graph import Graph, Node
from passes.base import Pass
from passes.rewrite import replace_value


@dataclass(frozen=True)
class LowerSplit(Pass):
    """Replace each split by slices."""

    name: ClassVar[str] = "lower-split"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.op == "split":
                _lower(graph, node)
                changed = True
        return changed


def _lower(graph: Graph, node: Node) -> None:
    source = node.inputs[0]
    axis = int(node.attrs["axis"])
    shape = source.type.shape
    index = graph.nodes.index(node)
    offset = 0
    for piece, (result, size) in enumerate(zip(node.outputs, node.attrs["sizes"])):
        starts = tuple(offset if a == axis else 0 for a in range(len(shape)))
        stops = tuple(offset + size if a == axis else d for a, d in enumerate(shape))
        attrs = {"starts": starts, "stops": stops, "steps": (1,) * len(shape)}
        piece_node = graph.add_node(
            "slice",
            [source],
            [result.type],
            attrs,
            name=f"{node.name}_{piece}",
            index=index + piece,
        )
        offset += size
        if result.uses or any(v is result for v in graph.outputs):
            replace_value(graph, result, piece_node.outputs[0])
    graph.remove_node(node)
