"""Fold inference BatchNormalization into the preceding conv or dense layer.

With k = gamma / sqrt(var + eps) per output channel:
    w'[c] = w[c] * k[c]            (conv: output channel is weight axis 0; dense: weight axis 1)
    b'[c] = (b[c] - mean[c]) * k[c] + beta[c]
The producer must have constant weights, no fused activation yet, and no other user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ir.graph import Graph, Node
from ir.types import TensorType
from passes.base import Pass
from passes.rewrite import replace_value, single_use


def _foldable_producer(graph: Graph, node: Node) -> Node | None:
    producer = node.inputs[0].producer
    if producer is None or producer.op not in ("conv", "dense"):
        return None
    if single_use(graph, node.inputs[0]) is not node:
        return None
    if producer.attrs.get("activation", "none") != "none":
        return None
    if not all(v.is_constant for v in producer.inputs[1:]):
        return None
    if not all(v.is_constant for v in node.inputs[1:]):
        return None
    if producer.op == "dense" and producer.outputs[0].type.rank != 2:
        return None
    return producer


@dataclass(frozen=True)
class FoldBatchNorm(Pass):
    """Fold batch_norm into a conv/dense producer."""

    name: ClassVar[str] = "fold-batchnorm"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.op != "batch_norm":
                continue
            producer = _foldable_producer(graph, node)
            if producer is None:
                continue
            _fold(graph, node, producer)
            changed = True
        return changed


def _fold(graph: Graph, node: Node, producer: Node) -> None:
    gamma, beta, mean, var = (v.constant_data.astype(np.float64) for v in node.inputs[1:])
    k = gamma / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
    weight = producer.inputs[1].constant_data.astype(np.float64)
    channels = weight.shape[0] if producer.op == "conv" else weight.shape[1]
    if producer.op == "conv":
        weight = weight * k.reshape(-1, *([1] * (weight.ndim - 1)))
    else:
        weight = weight * k.reshape(1, -1)
    bias = np.zeros(channels)
    if len(producer.inputs) == 3:
        bias = producer.inputs[2].constant_data.astype(np.float64)
    bias = (bias - mean) * k + beta
    new_weight = graph.constant(producer.inputs[1].name + "_bn", weight.astype(np.float32))
    new_bias = graph.constant(producer.name + "_bias_bn", bias.astype(np.float32))
    graph.set_input(producer, 1, new_weight)
    if len(producer.inputs) == 3:
        graph.set_input(producer, 2, new_bias)
    else:
        producer.inputs.append(new_bias)
        new_bias.uses.append((producer, 2))
    replace_value(graph, node.outputs[0], producer.outputs[0])
    graph.remove_node(node)


@dataclass(frozen=True)
class DecomposeBatchNorm(Pass):
    """Turn a batch_norm that could not be folded into mul and add by per-channel constants.

    y = x * k + (beta - mean * k), k = gamma / sqrt(var + eps), constants shaped [C, 1, ...].
    """

    name: ClassVar[str] = "decompose-batchnorm"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.op != "batch_norm" or not all(v.is_constant for v in node.inputs[1:]):
                continue
            _decompose(graph, node)
            changed = True
        return changed


def _decompose(graph: Graph, node: Node) -> None:
    gamma, beta, mean, var = (v.constant_data.astype(np.float64) for v in node.inputs[1:])
    k = gamma / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
    x = node.inputs[0]
    shape = (-1, *([1] * (x.type.rank - 2)))
    scale = graph.constant(node.name + "_scale", k.reshape(shape).astype(np.float32))
    shift = graph.constant(
        node.name + "_shift", (beta - mean * k).reshape(shape).astype(np.float32)
    )
    index = graph.nodes.index(node)
    out_type = TensorType(x.type.shape, x.type.dtype)
    mul = graph.add_node("mul", [x, scale], [out_type], name=node.name + "_mul", index=index)
    add = graph.add_node(
        "add", [mul.outputs[0], shift], [out_type], name=node.name + "_add", index=index + 1
    )
    replace_value(graph, node.outputs[0], add.outputs[0])
    graph.remove_node(node)
