"""fold-projection: a packed projection's constant gathers become narrower dense layers, and a
scalar mul behind data movement joins the dense layer's weights."""

from __future__ import annotations

import numpy as np
from onnx import helper

from passes.base import PassManager
from passes.pipeline import canonicalisation
from s2c.frontend import load_onnx
from tests.s2c.test_sequence_ops import _check, _init, _model, _random, _value

TOKENS, WIDTH, HEADS = 8, 16, 2  # x [1, TOKENS, WIDTH]; packed projection [1, TOKENS, 3 WIDTH]


def _ops(model, mode: str = "float") -> list[str]:
    graph = load_onnx(model)
    PassManager(canonicalisation(mode)).run(graph)
    return [n.op for n in graph.nodes]


def _packed(split_axis_nodes: list, outputs: list, extra: tuple = ()):
    """x -> MatMul + Add (3 WIDTH features) -> Reshape [1, T, 3, W] -> Transpose -> `nodes`."""
    rng = np.random.default_rng(3)
    initializers = [
        _init("w", rng.standard_normal((WIDTH, 3 * WIDTH)).astype(np.float32)),
        _init("b", rng.standard_normal(3 * WIDTH).astype(np.float32)),
        _init("packed", np.array([1, TOKENS, 3, WIDTH], dtype="int64")),
        _init("heads", np.array([TOKENS, HEADS, WIDTH // HEADS], dtype="int64")),
        _init("scale", np.array([0.5], dtype=np.float32)),
        *[_init(f"i{index}", np.array(index, dtype="int64")) for index in range(3)],
        *extra,
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["p"]),
        helper.make_node("Reshape", ["p", "packed"], ["r"]),
        *split_axis_nodes,
    ]
    return _model(nodes, [_value("x", (1, TOKENS, WIDTH))], outputs, initializers)


def test_the_gathers_of_a_packed_projection_become_three_dense_layers_and_the_scale_folds():
    # [1, T, 3, W] -> [3, 1, T, W] -> gather 0/1/2; q and k scaled; q split into heads
    nodes = [
        helper.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 1, 3]),
        *[helper.make_node("Gather", ["t", f"i{i}"], [f"g{i}"], axis=0) for i in range(3)],
        helper.make_node("Reshape", ["g0", "heads"], ["h"]),
        helper.make_node("Transpose", ["h"], ["ht"], perm=[1, 0, 2]),
        helper.make_node("Mul", ["ht", "scale"], ["q"]),
        helper.make_node("Mul", ["scale", "g1"], ["k"]),
    ]
    per_head = WIDTH // HEADS
    outputs = [
        _value("q", (HEADS, TOKENS, per_head)),
        _value("k", (1, TOKENS, WIDTH)),
        _value("g2", (1, TOKENS, WIDTH)),
    ]
    model = _packed(nodes, outputs)
    assert sorted(_ops(model)) == ["dense", "dense", "dense", "permute"]
    assert _ops(model, mode="int8").count("gather") == 3  # int8 keeps the QDQ graph's ops
    _check(model, {"x": _random(1, TOKENS, WIDTH)})


def test_a_gather_of_tokens_is_not_a_column_selection_and_stays():
    # [1, T, 3, W] -> [T, 1, 3, W] (a reshape: only the unit axis moves) -> gather of token 1
    nodes = [
        helper.make_node("Transpose", ["r"], ["t"], perm=[1, 0, 2, 3]),
        helper.make_node("Gather", ["t", "i1"], ["y"], axis=0),
    ]
    model = _packed(nodes, [_value("y", (1, 3, WIDTH))])
    assert _ops(model) == ["dense", "reshape", "gather"]
    _check(model, {"x": _random(1, TOKENS, WIDTH)})


def test_a_projection_with_another_reader_is_not_split():
    nodes = [
        helper.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 1, 3]),
        helper.make_node("Gather", ["t", "i0"], ["y"], axis=0),
        helper.make_node("Relu", ["r"], ["z"]),
    ]
    outputs = [_value("y", (1, TOKENS, WIDTH)), _value("z", (1, TOKENS, 3, WIDTH))]
    model = _packed(nodes, outputs)
    assert _ops(model).count("gather") == 1
    _check(model, {"x": _random(1, TOKENS, WIDTH)})


def test_a_mul_by_a_vector_or_after_an_activation_stays():
    rng = np.random.default_rng(4)
    vector = _init("vector", rng.standard_normal(3 * WIDTH).astype(np.float32))
    nodes = [
        helper.make_node("Mul", ["p", "vector"], ["y"]),
        helper.make_node("Relu", ["p"], ["a"]),
        helper.make_node("Mul", ["a", "scale"], ["z"]),
    ]
    outputs = [_value("y", (1, TOKENS, 3 * WIDTH)), _value("z", (1, TOKENS, 3 * WIDTH))]
    model = _packed(nodes, outputs, extra=(vector,))
    assert _ops(model).count("mul") == 2
    _check(model, {"x": _random(1, TOKENS, WIDTH)})
