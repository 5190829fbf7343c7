"""fold-movement: unit-axis transposes become reshapes, reshape and transpose pairs fold."""

from __future__ import annotations

import numpy as np
from onnx import helper

from passes.base import PassManager
from passes.pipeline import canonicalisation
from s2c.frontend import load_onnx
from tests.s2c.test_sequence_ops import _check, _init, _model, _random, _value


def _ops(model) -> list[str]:
    graph = load_onnx(model)
    PassManager(canonicalisation()).run(graph)
    return [n.op for n in graph.nodes]


def test_unit_axis_transpose_and_reshapes_fold_into_one_reshape() -> None:
    # [16, 1, 64] -> transpose (1, 0, 2) moves only the unit axis -> [1, 16, 64] -> [16, 4, 16]
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0, 2]),
        helper.make_node("Reshape", ["t", "shape"], ["y"]),
    ]
    shape = _init("shape", np.array([16, 4, 16], dtype="int64"))
    model = _model(nodes, [_value("x", (16, 1, 64))], [_value("y", (16, 4, 16))], [shape])
    assert _ops(model) == ["activation", "reshape"]
    _check(model, {"x": _random(16, 1, 64)})


def test_two_transposes_compose_and_a_real_transpose_stays() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 1]),
        helper.make_node("Transpose", ["t"], ["y"], perm=[0, 2, 1]),
    ]
    model = _model(nodes, [_value("x", (2, 3, 4))], [_value("y", (4, 3, 2))])
    assert _ops(model) == ["activation", "transpose"]
    _check(model, {"x": _random(2, 3, 4)})


def test_a_reshape_read_twice_is_not_folded() -> None:
    shape = _init("shape", np.array([6, 4], dtype="int64"))
    flat = _init("flat", np.array([24], dtype="int64"))
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["a"]),
        helper.make_node("Reshape", ["a", "flat"], ["y"]),
    ]
    outputs = [_value("a", (6, 4)), _value("y", (24,))]
    model = _model(nodes, [_value("x", (2, 3, 4))], outputs, [shape, flat])
    assert _ops(model) == ["activation", "reshape", "reshape"]
    _check(model, {"x": _random(2, 3, 4)})
