"""Fuse the decomposed layer normalisation exporters emit back into one layer_norm node.

    %m = reduce(%x) {mean, axes A, keepdims 1}
    %d = sub(%x, %m)
    %p = pow(%d, 2)
    %v = reduce(%p) {mean, axes A, keepdims 1}        %y = layer_norm(%x, %gamma, %beta)
    %e = add(%v, eps)                             ->        {axis = min(A), epsilon = eps}
    %s = activation(%e) {sqrt}
    %n = div(%d, %s)
    %g = mul(%n, %gamma)     (optional; gamma = 1 without it)
    %y = add(%g, %beta)      (optional; no bias without it)

A = axis..rank-1 (trailing axes); eps a constant scalar; gamma and beta constants that broadcast
to the normalised axes alone; every intermediate value has exactly the uses shown (%d two, the
others one) and is not a graph output. The result is the same function: mean and variance over
A, (x - mean) / sqrt(var + eps) * gamma + beta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ir.graph import Graph, Node, Value
from passes.base import Pass
from passes.rewrite import attrs_of, replace_value, single_use


def _mean_axes(node: Node | None) -> tuple[int, ...] | None:
    """The axes of a keepdims mean over trailing axes, or None when `node` is not one."""
    if node is None or node.op != "reduce":
        return None
    attrs = attrs_of(node)
    axes = tuple(sorted(attrs["axes"]))
    rank = node.inputs[0].type.rank
    if attrs["kind"] != "mean" or not attrs["keepdims"] or not axes:
        return None
    if axes != tuple(range(axes[0], rank)):
        return None
    return axes


def _constant_operand(node: Node, other: Value) -> np.ndarray | None:
    """The constant operand of a binary node whose other operand is `other`."""
    operands = node.inputs
    if len(operands) != 2 or not any(v is other for v in operands):
        return None
    constant = operands[1] if operands[0] is other else operands[0]
    return constant.constant_data if constant.is_constant else None


def _is_op(node: Node | None, op: str) -> bool:
    return node is not None and node.op == op


def _user(graph: Graph, value: Value, op: str) -> Node | None:
    node = single_use(graph, value)
    return node if _is_op(node, op) else None


@dataclass
class _Match:
    nodes: list[Node]
    x: Value
    axis: int
    epsilon: float
    gamma: np.ndarray | None
    beta: np.ndarray | None
    result: Value


def _parameter(data: np.ndarray | None, normalised: tuple[int, ...]) -> bool:
    """A gamma/beta that broadcasts to the normalised axes alone."""
    if data is None or data.ndim > len(normalised) or data.dtype != np.float32:
        return False
    try:
        return np.broadcast_shapes(data.shape, normalised) == normalised
    except ValueError:
        return False


def _match_statistics(graph: Graph, sub: Node) -> tuple[list[Node], int, float] | None:
    """mean, sub, pow, mean, add eps, sqrt, div from the sub node: (nodes, axis, eps) or None."""
    x, mean_value = sub.inputs
    mean = mean_value.producer
    axes = _mean_axes(mean)
    if mean is None or axes is None or mean.inputs[0] is not x:
        return None
    if single_use(graph, mean_value) is not sub:
        return None
    centred = sub.outputs[0]
    users = sorted(((n.op, n) for n, _ in centred.uses), key=lambda u: u[0])
    if [op for op, _ in users] != ["div", "pow"] or any(v is centred for v in graph.outputs):
        return None
    div, power = users[0][1], users[1][1]
    exponent = power.inputs[1]
    if power.inputs[0] is not centred or not exponent.is_constant:
        return None
    if exponent.constant_data.size != 1 or float(exponent.constant_data.reshape(-1)[0]) != 2.0:
        return None
    var = _user(graph, power.outputs[0], "reduce")
    if var is None or _mean_axes(var) != axes:
        return None
    add = _user(graph, var.outputs[0], "add")
    epsilon = _constant_operand(add, var.outputs[0]) if add else None
    if add is None or epsilon is None or epsilon.size != 1:
        return None
    sqrt = _user(graph, add.outputs[0], "activation")
    if sqrt is None or sqrt.attrs["function"] != "sqrt":
        return None
    if div.inputs[0] is not centred or div.inputs[1] is not sqrt.outputs[0]:
        return None
    return [mean, sub, power, var, add, sqrt, div], axes[0], float(epsilon.reshape(-1)[0])


def _match(graph: Graph, sub: Node) -> _Match | None:
    found = _match_statistics(graph, sub)
    if found is None:
        return None
    nodes, axis, epsilon = found
    x = sub.inputs[0]
    normalised = x.type.shape[axis:]
    result, gamma, beta = nodes[-1].outputs[0], None, None
    mul = _user(graph, result, "mul")
    if mul is not None and _parameter(_constant_operand(mul, result), normalised):
        gamma = _constant_operand(mul, result)
        nodes.append(mul)
        result = mul.outputs[0]
        add = _user(graph, result, "add")
        if add is not None and _parameter(_constant_operand(add, result), normalised):
            beta = _constant_operand(add, result)
            nodes.append(add)
            result = add.outputs[0]
    return _Match(nodes, x, axis, epsilon, gamma, beta, result)


@dataclass(frozen=True)
class FuseLayerNorm(Pass):
    """Fuse the decomposed layer-norm pattern into layer_norm."""

    name: ClassVar[str] = "fuse-layer-norm"

    def run(self, graph: Graph) -> bool:
        changed = False
        for node in list(graph.nodes):
            if node.op != "sub" or not any(n is node for n in graph.nodes):
                continue
            match = _match(graph, node)
            if match is None:
                continue
            _rewrite(graph, match)
            changed = True
        return changed


def _rewrite(graph: Graph, match: _Match) -> None:
    normalised = match.x.type.shape[match.axis :]
    gamma = match.gamma if match.gamma is not None else np.ones(normalised, np.float32)
    operands = [match.x, graph.constant(f"{match.nodes[-1].name}/scale", gamma)]
    if match.beta is not None:
        operands.append(graph.constant(f"{match.nodes[-1].name}/bias", match.beta))
    index = graph.nodes.index(match.nodes[-1])
    fused = graph.add_node(
        "layer_norm",
        operands,
        [match.result.type],
        {"axis": match.axis, "epsilon": match.epsilon},
        name=match.nodes[0].name,
        index=index + 1,
    )
    replace_value(graph, match.result, fused.outputs[0])
    for node in reversed(match.nodes):
        graph.remove_node(node)
