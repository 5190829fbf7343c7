"""Fold the head split and the scaling of attention's packed projection into its dense layers.

Exporters compute attention's query, key and value as one dense layer of 3E features, split it
with data movement and constant gathers, and scale the query and the key by a constant:

    %p = dense(%x, %w, %b)                          [*, 3E]
    %t = transpose(reshape(%p))                     (any chain of reshapes and transposes)
    %q = gather(%t, 0);  %k = gather(%t, 1);  %v = gather(%t, 2)
        ->  %q = reshape(dense(%x, %w[:, C_q], %b[C_q]));  ... for k and v

    %t = movement(dense(%x, %w, %b));  %z = mul(%t, c)    (c one constant value)
        ->  %z = movement(dense(%x, c %w, c %b))

A gather of constant indices from data movement only picks elements of the dense result. The
pass follows every element's position in the dense result [rows, N] through the chain (numpy
on the positions themselves); when the gather picks the same columns C of every row, row after
row, its result is the dense layer restricted to the columns C, reshaped. It folds a dense
layer's gathers only when every use of its result, through the chain, is such a gather, so the
packed layer and its chain then go (`dead-code`). Column selection changes no value: each
output is the same sum. Data movement commutes with multiplying every element by one value, and
(x w + b) c = x (c w) + c b: the product moves into the weights (the dense layer must have no
fused activation, and the chain no other use). That changes a result by at most a rounding
of c w in float32 (none when c is a power of two, such as the 1/sqrt(sqrt(E/heads)) that PyTorch
applies to the query and the key for 16 features per head).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ir.graph import Graph, Node, Value
from passes.base import Pass
from passes.rewrite import attrs_of, is_graph_output, replace_value, single_use

MOVEMENT = frozenset({"reshape", "transpose"})


def _through_movement(value: Value) -> tuple[Node, list[Node]] | None:
    """(dense layer, the reshapes and transposes from its result to `value`, in order) when
    `value` is a dense result moved by reshapes and transposes only."""
    chain = []
    producer = value.producer
    while producer is not None and producer.op in MOVEMENT:
        chain.append(producer)
        producer = producer.inputs[0].producer
    if producer is None or producer.op != "dense":
        return None
    return producer, chain[::-1]


def _positions(dense: Node, chain: list[Node]) -> np.ndarray:
    """The row-major position in the dense result of each element of the chain's result."""
    shape = dense.outputs[0].type.shape
    positions = np.arange(math.prod(shape)).reshape(shape)
    for node in chain:
        if node.op == "reshape":
            positions = positions.reshape(node.outputs[0].type.shape)
        else:
            positions = positions.transpose(attrs_of(node)["perm"])
    return positions


def _columns(positions: np.ndarray, rows: int, features: int) -> np.ndarray | None:
    """The columns C when `positions` (in a [rows, features] result) are, row after row, the
    columns C of each row; else None."""
    flat = positions.reshape(-1)
    if flat.size % rows:
        return None
    table = flat.reshape(rows, flat.size // rows)
    columns = table[0] % features
    expected = np.arange(rows)[:, None] * features + columns[None, :]
    return columns if np.array_equal(table, expected) else None


def _gathers(graph: Graph, value: Value) -> list[Node] | None:
    """Every gather of constant indices that reads `value` through reshapes and transposes, or
    None when `value` (or a value of the chain) has any other use or is a graph output."""
    if is_graph_output(graph, value):
        return None
    found = []
    for node, position in value.uses:
        if node.op in MOVEMENT:
            further = _gathers(graph, node.outputs[0])
            if further is None:
                return None
            found += further
        elif node.op == "gather" and position == 0 and node.inputs[1].is_constant:
            found.append(node)
        else:
            return None
    return found


def _selected_columns(gather: Node) -> tuple[Node, np.ndarray] | None:
    """(dense layer, columns) when the gather picks the same columns of every row of it."""
    found = _through_movement(gather.inputs[0])
    if found is None:
        return None
    dense, chain = found
    indices = gather.inputs[1].constant_data.astype(np.int64)
    positions = np.take(_positions(dense, chain), indices, axis=attrs_of(gather)["axis"])
    shape = dense.outputs[0].type.shape
    features = shape[-1]
    columns = _columns(positions, math.prod(shape[:-1]), features)
    if columns is None or columns.size >= features:
        return None
    return dense, columns


def _narrow_dense(graph: Graph, dense: Node, columns: np.ndarray, gather: Node) -> Value:
    """A copy of `dense` computing only `columns`, inserted before `gather`, named after it."""
    name = gather.name + "_projection"
    weight = dense.inputs[1].constant_data[:, columns]
    inputs = [dense.inputs[0], graph.constant(name + "_weight", weight)]
    if len(dense.inputs) == 3:
        inputs.append(graph.constant(name + "_bias", dense.inputs[2].constant_data[columns]))
    result = dense.outputs[0].type
    shape = (*result.shape[:-1], int(columns.size))
    node = graph.add_node(
        "dense",
        inputs,
        [result.with_shape(shape)],
        dense.attrs,
        name=name,
        index=graph.nodes.index(gather),
    )
    return node.outputs[0]


def _split_packed(graph: Graph, dense: Node) -> bool:
    """Replace every gather reading `dense` through data movement by a narrower dense layer."""
    if len(dense.inputs) < 2 or not dense.inputs[1].is_constant:
        return False
    gathers = _gathers(graph, dense.outputs[0])
    if not gathers:
        return False
    selections = [_selected_columns(gather) for gather in gathers]
    if any(selection is None for selection in selections):
        return False
    for gather, selection in zip(gathers, selections):
        assert selection is not None
        narrow = _narrow_dense(graph, dense, selection[1], gather)
        target = gather.outputs[0].type.shape
        if narrow.type.shape != target:
            reshape = graph.add_node(
                "reshape",
                [narrow],
                [narrow.type.with_shape(target)],
                {"shape": tuple(target)},
                name=gather.name,
                index=graph.nodes.index(gather),
            )
            narrow = reshape.outputs[0]
        replace_value(graph, gather.outputs[0], narrow)
        graph.remove_node(gather)
    return True


def _scaled_operand(node: Node) -> tuple[Value, float] | None:
    """(the other operand, c) of a mul by one constant float value c."""
    if node.op != "mul":
        return None
    for operand, other in (node.inputs, node.inputs[::-1]):
        if not other.is_constant or other.type.size != 1:
            continue
        data = other.constant_data
        if np.issubdtype(data.dtype, np.floating) and node.outputs[0].type == operand.type:
            return operand, float(data.reshape(-1)[0])
    return None


def _fold_scale(graph: Graph, node: Node) -> bool:
    """Multiply the weights of the dense layer behind a scalar mul (see module docstring)."""
    scaled = _scaled_operand(node)
    if scaled is None:
        return False
    operand, factor = scaled
    found = _through_movement(operand)
    if found is None:
        return False
    dense, chain = found
    if attrs_of(dense)["activation"] != "none" or not dense.inputs[1].is_constant:
        return False
    values = [dense.outputs[0], *(link.outputs[0] for link in chain)]
    users = [*chain, node]
    if any(single_use(graph, value) is not user for value, user in zip(values, users)):
        return False
    scale = np.float32(factor)
    for position in range(1, len(dense.inputs)):
        data = dense.inputs[position].constant_data
        name = dense.name + ("_scaled_weight" if position == 1 else "_scaled_bias")
        graph.set_input(dense, position, graph.constant(name, (data * scale).astype(data.dtype)))
    replace_value(graph, node.outputs[0], operand)
    graph.remove_node(node)
    return True


@dataclass(frozen=True)
class FoldProjection(Pass):
    """Split a packed dense projection at its constant gathers; fold scalar muls behind data
    movement into the dense layer's weights."""

    name: ClassVar[str] = "fold-projection"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.op == "dense":
                changed |= _split_packed(graph, node)
        for node in list(graph.nodes):
            changed |= _fold_scale(graph, node)
        return changed
