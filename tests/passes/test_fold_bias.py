"""fold-bias: a constant per-feature add after a bias-less dense layer becomes its bias."""

from __future__ import annotations

import numpy as np
from onnx import helper

from passes.base import PassManager
from passes.pipeline import canonicalisation
from s2c.frontend import load_onnx
from tests.s2c.test_sequence_ops import _check, _init, _model, _random, _value


def _ops(model, mode: str = "float") -> list[str]:
    graph = load_onnx(model)
    PassManager(canonicalisation(mode)).run(graph)
    return [n.op for n in graph.nodes]


def _linear(bias_shape: tuple[int, ...], relu: bool = False):
    """x [2, 3, 8] @ w [8, 5] + c, optionally then Relu."""
    rng = np.random.default_rng(1)
    weight = _init("w", rng.standard_normal((8, 5)).astype(np.float32))
    bias = _init("c", rng.standard_normal(bias_shape).astype(np.float32))
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Add", ["c", "m"], ["a" if relu else "y"]),
    ]
    if relu:
        nodes.append(helper.make_node("Relu", ["a"], ["y"]))
    return _model(nodes, [_value("x", (2, 3, 8))], [_value("y", (2, 3, 5))], [weight, bias])


def test_matmul_add_relu_becomes_one_dense_layer_with_the_same_values() -> None:
    model = _linear((1, 5), relu=True)
    assert _ops(model) == ["dense"]
    _check(model, {"x": _random(2, 3, 8)})


def test_a_constant_that_varies_over_rows_is_not_a_bias() -> None:
    model = _linear((3, 5))
    assert _ops(model) == ["dense", "add"]
    _check(model, {"x": _random(2, 3, 8)})


def test_int8_keeps_the_add_and_its_requantisation() -> None:
    assert _ops(_linear((5,)), mode="int8") == ["dense", "add"]
