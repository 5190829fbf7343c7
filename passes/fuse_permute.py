"""Fuse a transpose and the reshapes around it into one `permute` node (float only).

    %v = reshape(%x) {view};  %t = transpose(%v) {perm};  %y = reshape(%t) {shape}
        ->  %y = permute(%x) {view, perm, shape}

Either reshape may be missing (view is then the transpose's operand's shape, shape its result's).
Exporters split attention heads as reshape then transpose and merge them as transpose then
reshape; each fused pair is one kernel fewer (one PE's work and its packets) and changes no
value. The first nodes of the chain must have no other use and not be graph outputs. A chain
that feeds a recurrent layer through data movement stays, so that `s2c run` can still trace the
layer's time axis to a graph input (`backend.recurrent.sequence_axes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ir.graph import Graph, Node, Value
from passes.base import Pass
from passes.rewrite import replace_value, single_use

MOVEMENT = frozenset({"reshape", "transpose"})
RECURRENT = frozenset({"gru", "lstm"})


def _feeds_recurrent(value: Value) -> bool:
    """Whether `value` reaches a recurrent layer through reshapes and transposes."""
    for node, _ in value.uses:
        if node.op in RECURRENT:
            return True
        if node.op in MOVEMENT and _feeds_recurrent(node.outputs[0]):
            return True
    return False


def _fuse(graph: Graph, transpose: Node) -> bool:
    """Replace `transpose` and the reshapes before and after it by one permute node."""
    before = transpose.inputs[0].producer
    if before is not None and (
        before.op != "reshape" or single_use(graph, before.outputs[0]) is not transpose
    ):
        before = None
    after = single_use(graph, transpose.outputs[0])
    if after is not None and after.op != "reshape":
        after = None
    if before is None and after is None:
        return False
    last = after if after is not None else transpose
    if _feeds_recurrent(last.outputs[0]):
        return False
    source = before.inputs[0] if before is not None else transpose.inputs[0]
    attrs = {
        "view": tuple(transpose.inputs[0].type.shape),
        "perm": tuple(int(axis) for axis in transpose.attrs["perm"]),
        "shape": tuple(last.outputs[0].type.shape),
    }
    node = graph.add_node(
        "permute",
        [source],
        [last.outputs[0].type],
        attrs,
        name=transpose.name,
        index=graph.nodes.index(transpose),
    )
    replace_value(graph, last.outputs[0], node.outputs[0])
    for done in (after, transpose, before):
        if done is not None:
            graph.remove_node(done)
    return True


@dataclass(frozen=True)
class FusePermute(Pass):
    """Fuse transposes with the reshapes before and after them into permute nodes."""

    name: ClassVar[str] = "fuse-permute"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.op == "transpose":
                changed |= _fuse(graph, node)
        return changed
