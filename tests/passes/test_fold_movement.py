"""fold-movement: unit-axis transposes become reshapes, reshape and transpose pairs fold."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from passes.base import PassManager
from passes.pipeline import canonicalisation
from s2c.frontend import load_onnx
from tests.s2c.test_sequence_ops import _check, _init, _model, _random, _value


def _ops(model) -> list[str]:
    """The ops after float canonicalisation without fuse-permute (which would fuse what is left)."""
    graph = load_onnx(model)
    PassManager([p for p in canonicalisation() if p.name != "fuse-permute"]).run(graph)
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


def _linear(name: str, features_in: int, features_out: int) -> list:
    rng = np.random.default_rng(2)
    return [
        _init(f"{name}_w", rng.standard_normal((features_in, features_out)).astype(np.float32)),
        _init(f"{name}_b", rng.standard_normal(features_out).astype(np.float32)),
    ]


def test_a_row_regrouping_reshape_before_dense_folds_into_the_reshape_after_it() -> None:
    # [1, 16, 64] -> [16, 1, 64] (keeps the last axis) -> dense -> [16, 1, 12] -> [1, 16, 3, 4]
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0, 2]),
        helper.make_node("MatMul", ["t", "in_w"], ["m"]),
        helper.make_node("Add", ["m", "in_b"], ["a"]),
        helper.make_node("Reshape", ["a", "shape"], ["y"]),
    ]
    shape = _init("shape", np.array([1, 16, 3, 4], dtype="int64"))
    initializers = [*_linear("in", 64, 12), shape]
    model = _model(nodes, [_value("x", (1, 16, 64))], [_value("y", (1, 16, 3, 4))], initializers)
    assert _ops(model) == ["activation", "dense", "reshape"]
    _check(model, {"x": _random(1, 16, 64)})


def test_a_row_regrouping_reshape_after_dense_folds_into_the_reshape_before_it() -> None:
    # heads [1, 4, 16, 16] -> [16, 1, 4, 16] -> [16, 64] -> dense -> [1, 16, 64] (last axis kept)
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 1, 3]),
        helper.make_node("Reshape", ["t", "flat"], ["f"]),
        helper.make_node("Gemm", ["f", "out_w", "out_b"], ["g"]),
        helper.make_node("Reshape", ["g", "shape"], ["y"]),
    ]
    flat = _init("flat", np.array([16, 64], dtype="int64"))
    shape = _init("shape", np.array([1, 16, 64], dtype="int64"))
    initializers = [*_linear("out", 64, 64), flat, shape]
    model = _model(nodes, [_value("x", (1, 4, 16, 16))], [_value("y", (1, 16, 64))], initializers)
    assert _ops(model) == ["activation", "transpose", "reshape", "dense"]
    _check(model, {"x": _random(1, 4, 16, 16)})


@pytest.mark.parametrize(
    ("target", "ops"),
    [
        ((1, 4, 16, 16), ["activation", "reshape", "transpose"]),  # only adds a unit axis: folds
        ((4, 256), ["activation", "reshape", "transpose", "reshape"]),  # regroups: stays
    ],
)
def test_a_unit_axis_reshape_after_a_transpose_folds_into_the_reshape_before_it(
    target: tuple[int, ...], ops: list[str]
) -> None:
    # [16, 1, 64] -> [16, 4, 16] -> transpose -> [4, 16, 16] -> target
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Reshape", ["r", "heads"], ["h"]),
        helper.make_node("Transpose", ["h"], ["t"], perm=[1, 0, 2]),
        helper.make_node("Reshape", ["t", "shape"], ["y"]),
    ]
    heads = _init("heads", np.array([16, 4, 16], dtype="int64"))
    shape = _init("shape", np.array(target, dtype="int64"))
    model = _model(nodes, [_value("x", (16, 1, 64))], [_value("y", target)], [heads, shape])
    assert _ops(model) == ops
    _check(model, {"x": _random(16, 1, 64)})
