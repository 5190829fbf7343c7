"""Fuse a residual add into the layer normalisation that follows it (float only).

    %h = add(%x, %r);  %y = layer_norm(%h, %scale, %bias)
        ->  %y = add_layer_norm(%x, %r, %scale, %bias)

Transformer layers normalise after each residual connection (x + attention(x), x + ffn(x)).
Both operands of the add must be activations of the layer norm's input shape (no broadcasting)
and the sum must have no other use and not be a graph output. The node computes the same sum in
float32 and the same normalisation; each fusion is one kernel fewer (one PE's work and its
packets).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ir.graph import Graph, Node
from passes.base import Pass
from passes.rewrite import replace_value, single_use


def _fuse(graph: Graph, norm: Node) -> bool:
    """Replace `norm` and the add that produces its input by one add_layer_norm node."""
    add = norm.inputs[0].producer
    if add is None or add.op != "add" or single_use(graph, add.outputs[0]) is not norm:
        return False
    x, residual = add.inputs
    if x.is_constant or residual.is_constant or not x.type == residual.type == add.outputs[0].type:
        return False
    node = graph.add_node(
        "add_layer_norm",
        [x, residual, *norm.inputs[1:]],
        [norm.outputs[0].type],
        dict(norm.attrs),
        name=norm.name,
        index=graph.nodes.index(norm),
    )
    replace_value(graph, norm.outputs[0], node.outputs[0])
    graph.remove_node(norm)
    graph.remove_node(add)
    return True


@dataclass(frozen=True)
class FuseResidual(Pass):
    """Fuse residual adds into the layer norms after them."""

    name: ClassVar[str] = "fuse-residual"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.op == "layer_norm":
                changed |= _fuse(graph, node)
        return changed
