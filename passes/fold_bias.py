"""Fold the constant added to a dense layer's result into the layer's bias.

    %y = dense(%x, %w)                %z = dense(%x, %w, %b)
    %z = add(%y, %c)          ->      (b[n] = c[..., n]; %y had no other use)

Exporters write Linear layers as MatMul then Add. The add must only broadcast `c` over the
dense result's leading axes: `c` holds one value per output feature N (its other axes are 1)
and the result keeps the dense result's shape. The dense layer must have no bias and no fused
activation yet (the add comes after the activation would). Each fold removes one kernel; the
sum then takes the bias before its single rounding to float32 (docs/numerics.md), a difference
of at most one rounding from adding in float32 afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ir.graph import Graph, Node, Value
from passes.base import Pass
from passes.rewrite import replace_value, single_use


def _operands(node: Node) -> tuple[Value, Value] | None:
    """(dense result, constant) of an add of a constant to a dense result, in either order."""
    if node.op != "add":
        return None
    first, second = node.inputs
    if second.is_constant and first.producer is not None and first.producer.op == "dense":
        return first, second
    if first.is_constant and second.producer is not None and second.producer.op == "dense":
        return second, first
    return None


def _foldable(graph: Graph, node: Node) -> tuple[Node, np.ndarray] | None:
    """(dense producer, bias [N]) when `node` adds a per-feature constant to it."""
    operands = _operands(node)
    if operands is None:
        return None
    result, constant = operands
    producer = result.producer
    assert producer is not None
    if len(producer.inputs) != 2 or producer.attrs.get("activation", "none") != "none":
        return None
    if single_use(graph, result) is not node or node.outputs[0].type.shape != result.type.shape:
        return None
    data = constant.constant_data
    if not np.issubdtype(data.dtype, np.floating):
        return None
    features = result.type.shape[-1]
    if data.ndim > result.type.rank or data.size != features or data.shape[-1] != features:
        return None
    return producer, data.reshape(features).astype(np.float32)


@dataclass(frozen=True)
class FoldBias(Pass):
    """Fold constant adds after bias-less dense layers into their bias."""

    name: ClassVar[str] = "fold-bias"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            found = _foldable(graph, node)
            if found is None:
                continue
            producer, bias = found
            value = graph.constant(producer.name + "_bias", bias)
            producer.inputs.append(value)
            value.uses.append((producer, 2))
            replace_value(graph, node.outputs[0], producer.outputs[0])
            graph.remove_node(node)
            changed = True
        return changed
