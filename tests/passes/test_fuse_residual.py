"""fuse-residual: a residual add and the layer norm after it become one add_layer_norm node
(float only), run as the layer_norm kernel with two ports."""

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


def _residual(sum_is_output: bool):
    """y = LayerNorm(relu(x) + x) over the last axis; the sum optionally an output too."""
    rng = np.random.default_rng(5)
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Add", ["r", "x"], ["h"]),
        helper.make_node("LayerNormalization", ["h", "scale", "bias"], ["y"], axis=-1),
    ]
    initializers = [
        _init("scale", rng.standard_normal(32).astype(np.float32)),
        _init("bias", rng.standard_normal(32).astype(np.float32)),
    ]
    outputs = [_value("y", (2, 8, 32))] + ([_value("h", (2, 8, 32))] if sum_is_output else [])
    return _model(nodes, [_value("x", (2, 8, 32))], outputs, initializers)


def test_a_residual_add_and_its_layer_norm_become_one_node() -> None:
    model = _residual(sum_is_output=False)
    assert _ops(model) == ["activation", "add_layer_norm"]
    assert _ops(model, mode="int8") == ["activation", "add", "layer_norm"]
    _check(model, {"x": _random(2, 8, 32)})


def test_a_sum_used_elsewhere_stays() -> None:
    model = _residual(sum_is_output=True)
    assert _ops(model) == ["activation", "add", "layer_norm"]
    _check(model, {"x": _random(2, 8, 32)})
