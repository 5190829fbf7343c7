"""Fuse an element-wise activation into the conv or dense layer that produces its operand.

    %y = conv(%x, %w, %b)        %z = conv(%x, %w, %b) {activation = "relu"}
    %z = activation(%y) {relu} -> (%y had no other use)

The MAC array applies ReLU as a clamp of its output, and the ARM core applies the other fusable
functions (ir.activations.FUSABLE) on the slice it just computed, so no extra kernel is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ir.activations import FUSABLE
from ir.graph import Graph, Node
from passes.base import Pass
from passes.rewrite import replace_value, single_use


def _fusable_producer(graph: Graph, node: Node, functions: frozenset[str]) -> Node | None:
    if node.op != "activation" or node.attrs["function"] not in functions:
        return None
    producer = node.inputs[0].producer
    if producer is None or producer.op not in ("conv", "dense"):
        return None
    if producer.attrs.get("activation", "none") != "none":
        return None
    if single_use(graph, node.inputs[0]) is not node:
        return None
    return producer


@dataclass(frozen=True)
class FuseActivation(Pass):
    """Move fusable activations into their conv/dense producer."""

    name: ClassVar[str] = "fuse-activation"
    # int8 fuses only the clamps (ReLU, Clip); other functions become lookup tables.
    functions: frozenset[str] = FUSABLE

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            producer = _fusable_producer(graph, node, self.functions)
            if producer is None:
                continue
            producer.attrs["activation"] = node.attrs["function"]
            producer.attrs["activation_params"] = tuple(node.attrs.get("params", ()))
            replace_value(graph, node.outputs[0], producer.outputs[0])
            graph.remove_node(node)
            changed = True
        return changed
