"""Fold chains of data movement into fewer nodes (exporters wrap attention in such chains).

    %y = transpose(%x) {p}, p keeps the order of x's axes longer than 1
        ->  %y = reshape(%x) {y's shape}          (only unit axes move: the same element order)
    %y = reshape(%x) {s1};  %z = reshape(%y) {s2}
        ->  %z = reshape(%x) {s2}                 (row-major order is kept by both)
    %y = transpose(%x) {p};  %z = transpose(%y) {q}
        ->  %z = transpose(%x) {r}, r[i] = p[q[i]] (z[i] = y[q[i]] = x[p[q[i]]])

The first node of a folded pair must have no other use and not be a graph output. Each fold
removes one kernel (one PE's work and its packets) and changes no value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ir.graph import Graph, Node
from passes.base import Pass
from passes.rewrite import single_use


def _moves_only_unit_axes(node: Node) -> bool:
    """A transpose whose axes longer than 1 keep their order is a reshape."""
    shape = node.inputs[0].type.shape
    kept = [axis for axis in node.attrs["perm"] if shape[axis] != 1]
    return kept == sorted(kept)


def _fold_into_producer(graph: Graph, node: Node) -> bool:
    """Read the producer's operand when producer and node are both reshapes or transposes."""
    producer = node.inputs[0].producer
    if producer is None or producer.op != node.op or single_use(graph, node.inputs[0]) is not node:
        return False
    if node.op == "transpose":
        inner, outer = producer.attrs["perm"], node.attrs["perm"]
        node.attrs = {"perm": tuple(int(inner[axis]) for axis in outer)}
    graph.set_input(node, 0, producer.inputs[0])
    graph.remove_node(producer)
    return True


@dataclass(frozen=True)
class FoldMovement(Pass):
    """Turn unit-axis transposes into reshapes and fold reshape and transpose pairs."""

    name: ClassVar[str] = "fold-movement"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.op == "transpose" and _moves_only_unit_axes(node):
                node.op = "reshape"
                node.attrs = {"shape": tuple(node.outputs[0].type.shape)}
                changed = True
        for node in list(graph.nodes):
            if node.op in ("reshape", "transpose"):
                changed |= _fold_into_producer(graph, node)
        return changed
