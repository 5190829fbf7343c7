"""Fold chains of data movement into fewer nodes (exporters wrap attention in such chains).

    %y = transpose(%x) {p}, p keeps the order of x's axes longer than 1
        ->  %y = reshape(%x) {y's shape}          (only unit axes move: the same element order)
    %y = reshape(%x) {s1};  %z = reshape(%y) {s2}
        ->  %z = reshape(%x) {s2}                 (row-major order is kept by both)
    %y = transpose(%x) {p};  %z = transpose(%y) {q}
        ->  %z = transpose(%x) {r}, r[i] = p[q[i]] (z[i] = y[q[i]] = x[p[q[i]]])

    %y = reshape(%x);  %z = dense(%y, ...);  %r = reshape(%z) {s}
        ->  %z = dense(%x, ...);  %r = reshape(%z) {s}   when the first reshape keeps the last axis
        ->  %y = reshape(%x) {s[:-1], K};  %r = dense(%y, ...)   when the second one does

    %y = reshape(%x);  %t = transpose(%y) {p};  %z = reshape(%t), which only adds or drops unit axes
        ->  %y = reshape(%x) {y's axes longer than 1, then the unit axes z needs};
            %z = transpose(%y) {q}, q placing those axes where z has them

A reshape that keeps the last axis only regroups the rows that dense maps one by one, so it
commutes with dense; moved to the other side it folds into the other reshape.
The first node of a folded pair must have no other use and not be a graph output, except for
a reshape before dense layers that keeps the last axis: each dense layer then reads its operand
(the three projections of a split attention layer share one). Each fold removes one kernel
(one PE's work and its packets) and changes no value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ir.graph import Graph, Node
from passes.base import Pass
from passes.rewrite import is_graph_output, replace_value, single_use


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


def _keeps_last_axis(node: Node) -> bool:
    """A reshape of the leading axes only: rows of the last axis stay whole and in order."""
    return node.inputs[0].type.shape[-1:] == node.outputs[0].type.shape[-1:]


def _set_shape(node: Node, shape: tuple[int, ...]) -> None:
    """Give the node's result the shape `shape` (a reshape also takes it as its attribute)."""
    if node.op == "reshape":
        node.attrs = {"shape": shape}
    result = node.outputs[0]
    result.type = result.type.with_shape(shape)


def _fold_around_dense(graph: Graph, dense: Node) -> bool:
    """Drop one of the two reshapes around a dense layer (see the module docstring)."""
    before = dense.inputs[0].producer
    after = single_use(graph, dense.outputs[0])
    if before is None or before.op != "reshape" or after is None or after.op != "reshape":
        return False
    features = dense.outputs[0].type.shape[-1]
    if _keeps_last_axis(before):  # other readers of the reshape keep it
        graph.set_input(dense, 0, before.inputs[0])
        if not before.outputs[0].uses and not is_graph_output(graph, before.outputs[0]):
            graph.remove_node(before)
        _set_shape(dense, (*before.inputs[0].type.shape[:-1], features))
        return True
    if single_use(graph, dense.inputs[0]) is not dense:
        return False
    if _keeps_last_axis(after):
        _set_shape(before, (*after.outputs[0].type.shape[:-1], before.outputs[0].type.shape[-1]))
        _set_shape(dense, tuple(after.outputs[0].type.shape))
        replace_value(graph, after.outputs[0], dense.outputs[0])
        graph.remove_node(after)
        return True
    return False


def long_axes(shape: tuple[int, ...]) -> list[int]:
    """The axes of `shape` longer than 1, in order."""
    return [axis for axis, size in enumerate(shape) if size != 1]


def _fold_unit_reshape_into_transpose(graph: Graph, reshape: Node) -> bool:
    """Move a reshape that only adds or drops unit axes from after a transpose into the
    reshape before it (see the module docstring)."""
    transpose = reshape.inputs[0].producer
    if transpose is None or transpose.op != "transpose":
        return False
    before = transpose.inputs[0].producer
    if before is None or before.op != "reshape":
        return False
    if single_use(graph, reshape.inputs[0]) is not reshape:
        return False
    if single_use(graph, transpose.inputs[0]) is not transpose:
        return False
    shape, target = transpose.outputs[0].type.shape, reshape.outputs[0].type.shape
    long_lengths = [shape[axis] for axis in long_axes(shape)]
    if long_lengths != [target[axis] for axis in long_axes(target)]:
        return False
    source = before.outputs[0].type.shape
    source_long = long_axes(source)
    # z's long axes, in order, are y's axes p[a] for the transpose's long axes a
    order = [source_long.index(int(transpose.attrs["perm"][axis])) for axis in long_axes(shape)]
    units = iter(range(len(source_long), len(target)))
    long_order = iter(order)
    perm = tuple(next(long_order) if size != 1 else next(units) for size in target)
    _set_shape(before, (*(source[axis] for axis in source_long), *[1] * (len(target) - len(order))))
    transpose.attrs = {"perm": perm}
    _set_shape(transpose, tuple(target))
    replace_value(graph, reshape.outputs[0], transpose.outputs[0])
    graph.remove_node(reshape)
    return True


@dataclass(frozen=True)
class FoldMovement(Pass):
    """Turn unit-axis transposes into reshapes, fold reshape and transpose pairs and the
    reshapes around dense layers."""

    name: ClassVar[str] = "fold-movement"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.op == "transpose" and _moves_only_unit_axes(node):
                node.op = "reshape"
                node.attrs = {"shape": tuple(node.outputs[0].type.shape)}
                changed = True
        while _fold_once(graph):  # a fold around a dense layer can make a new pair
            changed = True
        return changed


def _fold_once(graph: Graph) -> bool:
    changed = False
    for node in list(graph.nodes):
        if node.op in ("reshape", "transpose"):
            changed |= _fold_into_producer(graph, node)
    for node in list(graph.nodes):
        if node.op == "dense":
            changed |= _fold_around_dense(graph, node)
        elif node.op == "reshape":
            changed |= _fold_unit_reshape_into_transpose(graph, node)
    return changed
