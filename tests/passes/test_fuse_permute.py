"""fuse-permute: a transpose and the reshapes around it become one permute node (float only),
which the backend runs as one positional reshape kernel."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from passes.base import PassManager
from passes.pipeline import canonicalisation
from s2c.frontend import load_onnx
from tests.s2c.test_sequence_ops import _check, _init, _model, _random, _value


def _ops(model, mode: str = "float") -> list[str]:
    graph = load_onnx(model)
    PassManager(canonicalisation(mode)).run(graph)
    return [n.op for n in graph.nodes]


def _head_merge(shape: tuple[int, ...], perm: list[int], target: tuple[int, ...]):
    """Relu, Transpose(perm), Reshape(target): attention's head merge when shape is [1, H, T, D]."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=perm),
        helper.make_node("Reshape", ["t", "target"], ["y"]),
    ]
    initializers = [_init("target", np.array(target, dtype="int64"))]
    return _model(nodes, [_value("x", shape)], [_value("y", target)], initializers)


@pytest.mark.parametrize(
    ("shape", "perm", "target"),
    [
        ((1, 4, 16, 16), [2, 0, 1, 3], (1, 16, 64)),  # heads merged back into features
        ((1, 24, 64, 32), [0, 2, 1, 3], (1, 64, 768)),  # 192 KiB: cut over several PEs
        # 256 KiB: a middle slice reads a larger bounding box than the first and last
        ((1, 32, 64, 32), [0, 2, 1, 3], (1, 64, 1024)),
    ],
)
def test_a_transpose_and_the_reshape_after_it_become_one_permute(shape, perm, target) -> None:
    model = _head_merge(shape, perm, target)
    assert _ops(model) == ["activation", "permute"]
    assert _ops(model, mode="int8") == ["activation", "transpose", "reshape"]
    _check(model, {"x": _random(*shape)})


def test_a_head_split_fuses_and_a_reshape_read_twice_stays() -> None:
    # [1, 16, 64] -> [1, 16, 4, 16] -> transpose -> [1, 4, 16, 16]; the reshape is also an output
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Reshape", ["r", "heads"], ["h"]),
        helper.make_node("Transpose", ["h"], ["q"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["r", "heads"], ["k"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 3, 1]),
    ]
    heads = _init("heads", np.array([1, 16, 4, 16], dtype="int64"))
    outputs = [
        _value("q", (1, 4, 16, 16)),
        _value("k", (1, 16, 4, 16)),
        _value("kt", (1, 4, 16, 16)),
    ]
    model = _model(nodes, [_value("x", (1, 16, 64))], outputs, [heads])
    assert _ops(model) == ["activation", "permute", "reshape", "transpose"]
    _check(model, {"x": _random(1, 16, 64)})
