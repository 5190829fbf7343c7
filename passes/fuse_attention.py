"""Fuse attention's head split, two matmuls, softmax and head merge into one node (float only).

    %Q = movement(%q);  %K = movement(%k);  %V = movement(%v)     (head splits, K transposed)
    %s = matmul(%Q, %K);  %p = softmax(%s) {axis = last};  %o = matmul(%p, %V)
    %y = movement(%o)                                               (head merge)
        ->  %y = attention(%q, %k, %v) {heads, axis}

`movement` is a chain of permute, transpose and reshape nodes (possibly empty). The match is
decided on the data the chains move, not on their attributes: each chain is run on the index
tensor arange(size) of its source, and the result must be, position for position, the head
split that `attention` applies (`ir.reference.sequence.split_heads`: positions along `axis`,
features split into `heads` columns blocks; for K the split transposed), and the output chain
the head merge. Then every batch entry of the two matmuls pairs the same (batch, head) block of
q, k and v, and the fused node computes the same values in the same float32 steps.

The matmuls, the softmax and the movement nodes between them must have no other use (a chain
node read elsewhere stays for its other readers). A softmax over another axis, or anything
between the first matmul and the softmax (a mask, a scale not folded into the projections),
leaves the graph unchanged. The key count is at most MAX_KEYS: the PE computes one query row
at a time, its row of scores (4 bytes a key) on the 4 KiB stack.

Each fusion is five to seven kernels fewer per attention layer (their PEs' work and packets):
the interpreter then runs the transformer's attention as one kernel per slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ir.graph import Graph, Node, Value
from ir.reference import evaluate
from ir.reference.sequence import merge_heads, split_heads
from passes.base import Pass
from passes.rewrite import attrs_of, is_graph_output, replace_value, single_use

MOVEMENT = frozenset({"permute", "transpose", "reshape"})
MAX_KEYS = 512  # a row of scores, 4 bytes a key, takes at most half the PE's 4 KiB stack


def _source(value: Value) -> tuple[Value, list[Node]]:
    """The value a chain of movement nodes starts from, and the chain in the order it runs."""
    chain: list[Node] = []
    while value.producer is not None and value.producer.op in MOVEMENT:
        chain.append(value.producer)
        value = value.producer.inputs[0]
    return value, chain[::-1]


def _result(graph: Graph, value: Value) -> tuple[Value, list[Node]]:
    """The value a chain of single-use movement nodes after `value` ends at, and the chain."""
    chain: list[Node] = []
    while True:
        node = single_use(graph, value)
        if node is None or node.op not in MOVEMENT:
            return value, chain
        chain.append(node)
        value = node.outputs[0]


def _positions(shape: tuple[int, ...]) -> np.ndarray:
    """Each element's row-major position in a tensor of `shape`: arange(size) in that shape."""
    return np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)


def _moved(chain: list[Node], shape: tuple[int, ...]) -> np.ndarray:
    """Where each element of the chain's result comes from: the chain run on `_positions`."""
    index = _positions(shape)
    for node in chain:
        (index,) = evaluate(node.op, attrs_of(node), [index])
    return index


def _same(moved: np.ndarray, expected: np.ndarray) -> bool:
    """Equal positions in row-major order, and equal matrix axes (the batch axes may be
    grouped differently)."""
    return moved.shape[-2:] == expected.shape[-2:] and np.array_equal(
        moved.reshape(-1), expected.reshape(-1)
    )


@dataclass
class _Match:
    """One attention: the three matmul operands traced to their sources, and the output."""

    first: Node  # q @ k^T
    softmax: Node
    second: Node  # p @ v
    sources: list[tuple[Value, list[Node]]]  # q, k, v and their head-split chains
    result: Value  # y, after the head-merge chain
    merge: list[Node]

    def heads_and_axis(self) -> tuple[int, int] | None:
        """The (heads, positions axis) under which the chains are attention's head split and
        merge, or None."""
        q, k = self.sources[0][0], self.sources[1][0]
        first_q, first_k = self.first.inputs[0].type.shape, self.first.inputs[1].type.shape
        queries, d_k, keys = first_q[-2], first_q[-1], first_k[-1]
        if q.type.shape[-1] % d_k or keys > MAX_KEYS:
            return None
        heads = q.type.shape[-1] // d_k
        for axis in range(q.type.rank - 1):
            if q.type.shape[axis] != queries or k.type.shape[axis] != keys:
                continue
            if self._splits(heads, axis) and self._merges(heads, axis):
                return heads, axis
        return None

    def _splits(self, heads: int, axis: int) -> bool:
        for position, (value, chain) in enumerate(self.sources):
            shape = tuple(value.type.shape)
            if value.type.rank != self.sources[0][0].type.rank or shape[-1] % heads:
                return False
            expected = split_heads(_positions(shape), heads, axis)
            if position == 1:  # k arrives transposed: q @ k^T
                expected = expected.swapaxes(-2, -1)
            if not _same(_moved(chain, shape), expected):
                return False
        return True

    def _merges(self, heads: int, axis: int) -> bool:
        q = self.sources[0][0].type.shape
        v = self.sources[2][0].type.shape
        output = self.second.outputs[0].type.shape
        expected_shape = (*q[:-1], v[-1])
        if tuple(self.result.type.shape) != expected_shape:
            return False
        batch = [d for a, d in enumerate(q[:-1]) if a != axis]
        blocks = (*batch, heads, q[axis], v[-1] // heads)
        if tuple(output[-2:]) != blocks[-2:] or int(np.prod(blocks)) != int(np.prod(output)):
            return False
        moved = _moved(self.merge, tuple(output))
        expected = merge_heads(_positions(blocks), axis)
        return moved.shape == expected.shape and np.array_equal(moved, expected)


def _match(graph: Graph, softmax: Node) -> _Match | None:
    """The attention around `softmax`, when its neighbours have attention's form."""
    if attrs_of(softmax)["log"] or softmax.attrs["axis"] != softmax.outputs[0].type.rank - 1:
        return None
    first = softmax.inputs[0].producer
    second = single_use(graph, softmax.outputs[0])
    if first is None or first.op != "matmul" or single_use(graph, first.outputs[0]) is not softmax:
        return None
    if second is None or second.op != "matmul" or second.inputs[0] is not softmax.outputs[0]:
        return None
    operands = [first.inputs[0], first.inputs[1], second.inputs[1]]
    shapes = [tuple(value.type.shape) for value in operands]
    if min(len(shape) for shape in shapes) < 3 or len({shape[:-2] for shape in shapes}) != 1:
        return None
    if any(value.is_constant or value.type.dtype != "float32" for value in operands):
        return None
    result, merge = _result(graph, second.outputs[0])
    return _Match(first, softmax, second, [_source(v) for v in operands], result, merge)


def _remove_unused(graph: Graph, chain: list[Node]) -> None:
    """Remove the chain's nodes, last first, while their results have no use left."""
    for node in reversed(chain):
        if node not in graph.nodes:  # another operand's chain removed it
            continue
        if node.outputs[0].uses or is_graph_output(graph, node.outputs[0]):
            return
        graph.remove_node(node)


def _fuse(graph: Graph, softmax: Node) -> bool:
    match = _match(graph, softmax)
    found = match.heads_and_axis() if match is not None else None
    if match is None or found is None:
        return False
    heads, axis = found
    last = match.merge[-1] if match.merge else match.second
    node = graph.add_node(
        "attention",
        [value for value, _ in match.sources],
        [match.result.type],
        {"heads": heads, "axis": axis},
        name=softmax.name,
        index=graph.nodes.index(last),
    )
    replace_value(graph, match.result, node.outputs[0])
    for done in [*match.merge[::-1], match.second, softmax, match.first]:
        graph.remove_node(done)
    for _, chain in match.sources:
        _remove_unused(graph, chain)
    return True


@dataclass(frozen=True)
class FuseAttention(Pass):
    """Fuse attention's head splits, matmuls, softmax and head merge into attention nodes."""

    name: ClassVar[str] = "fuse-attention"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.op == "softmax":
                changed |= _fuse(graph, node)
        return changed
